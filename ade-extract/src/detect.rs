//! Table detection (SPEC §10): where the tables of a sheet are.
//!
//! Rules:
//!
//! - A *blank row* has no cell or only [blank](Cell::is_blank) cells.
//! - A *header row* ([`is_header_row`]) is a row whose non-blank cells are mostly text (at least
//!   half of them are [`Cell::Text`]) and where at least `min(2, number of fields)` text cells
//!   have a [`header_score`](super::header_score) of at least [`HEADER_CELL_THRESHOLD`] for some
//!   field (two cells may match the same field). With one configured field one matching cell is
//!   enough.
//! - Rows above a header row (titles, notes, blank rows) are skipped.
//! - The table's data rows start right after its header row and run until two consecutive blank
//!   rows, the next header row, or the end of the sheet. Inside a table, a row is the next header
//!   only when it is a header row *and* more than half of its non-blank text cells name a field:
//!   data values that happen to contain a field's name (`Company 12` under a `company` field,
//!   `1 Main Street` under `street`) do not cut a table. A single blank row between data rows
//!   stays inside the table's range (the engine skips blank rows when reading it and does not
//!   count them); blank rows after the last data row are not part of the table.
//! - The next table is searched after the end of the previous one; a header row that ends a
//!   table starts the next.
//! - Columns: from the header row's first non-blank cell to the last non-blank cell of the header
//!   row or of any data row, whichever is further right (ragged data rows that stick out get
//!   header-less columns rather than losing values). Cells left of the header's first cell are
//!   not part of the table. Tables are stacked vertically: two tables side by side in the same
//!   rows are read as one.
//! - A header row followed by no data rows is a table with 0 rows.
//!
//! Each row is looked at at most twice, so detection is `O(rows × columns)` for a given
//! configuration; rows may have any length (ragged rows never panic).

use std::collections::HashMap;
use std::ops::Range;

use super::cell::Cell;
use super::fields::CompiledFields;
use super::mapping::PreparedHeader;

/// The least [`header_score`](super::header_score) for a cell to count as naming a field when
/// detecting header rows.
pub const HEADER_CELL_THRESHOLD: f64 = 0.6;

/// Where one table sits in a sheet; every index is 0-based into the grid's rows and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRegion {
    /// The header row.
    pub header_row: usize,
    /// The first data row: always `header_row + 1`.
    pub first_data_row: usize,
    /// The last data row, inclusive; `header_row` (so before `first_data_row`) when the table
    /// has no data rows.
    pub last_data_row: usize,
    /// The first column (the header row's first non-blank cell).
    pub first_column: usize,
    /// The last column, inclusive.
    pub last_column: usize,
}

impl TableRegion {
    /// Whether the table has no data rows.
    pub fn is_empty(&self) -> bool {
        self.last_data_row < self.first_data_row
    }

    /// The data rows' indexes, blank rows inside the table included; empty when the table has
    /// no data rows.
    pub fn data_rows(&self) -> Range<usize> {
        self.first_data_row..self.last_data_row.saturating_add(1).max(self.first_data_row)
    }

    /// The number of physical columns: `last_column - first_column + 1`.
    pub fn column_count(&self) -> usize {
        self.last_column.saturating_sub(self.first_column) + 1
    }
}

/// Whether `row` has no non-blank cell.
pub fn is_blank_row(row: &[Cell]) -> bool {
    row.iter().all(Cell::is_blank)
}

/// Whether `row` is a header row for `fields` (see the module docs).
pub fn is_header_row(row: &[Cell], fields: &CompiledFields) -> bool {
    judge_header(row, &mut CellJudge::new(fields), false)
}

/// The most answers a [`CellJudge`] remembers (then it starts over).
const MEMO_LIMIT: usize = 16_384;
/// The longest text (in bytes) a [`CellJudge`] remembers: the memo stays under ~4 MiB of text.
const MEMO_TEXT_LIMIT: usize = 256;

/// Decides whether a text cell names a field (a [`header_score`](super::header_score) of at least
/// [`HEADER_CELL_THRESHOLD`]), cheaply on data rows: texts without a letter are ruled out at
/// once when no match key has a digit (they can match no key in any way), and recent answers
/// are remembered (repeated values: cities, categories, …).
struct CellJudge<'a> {
    fields: &'a CompiledFields,
    keys_have_digits: bool,
    memo: HashMap<String, bool>,
}

impl<'a> CellJudge<'a> {
    fn new(fields: &'a CompiledFields) -> Self {
        let keys_have_digits =
            fields.iter().flat_map(|field| field.keys()).any(|key| key.chars().any(char::is_numeric));
        CellJudge { fields, keys_have_digits, memo: HashMap::new() }
    }

    fn names_a_field(&mut self, text: &str) -> bool {
        if !self.keys_have_digits && !text.chars().any(char::is_alphabetic) {
            return false;
        }
        if let Some(known) = self.memo.get(text) {
            return *known;
        }
        let names = PreparedHeader::new(text).names_any(self.fields, HEADER_CELL_THRESHOLD);
        if text.len() <= MEMO_TEXT_LIMIT {
            if self.memo.len() >= MEMO_LIMIT {
                self.memo.clear();
            }
            self.memo.insert(text.to_owned(), names);
        }
        names
    }
}

/// Whether `row` is a header row; with `strong`, also whether more than half of its non-blank text
/// cells name a field (the test for a header inside a table).
fn judge_header(row: &[Cell], judge: &mut CellJudge<'_>, strong: bool) -> bool {
    let non_blank = row.iter().filter(|cell| !cell.is_blank()).count();
    let texts = row.iter().filter(|cell| matches!(cell, Cell::Text(_)) && !cell.is_blank());
    let text_count = texts.clone().count();
    let needed = judge.fields.len().min(2);
    if needed == 0 || text_count < needed || text_count * 2 < non_blank {
        return false;
    }
    // With `strong`, this many cells that name no field rule the row out.
    let too_many_misses = if strong { text_count.div_ceil(2) } else { usize::MAX };
    let (mut matching, mut misses) = (0usize, 0usize);
    for cell in texts {
        let Cell::Text(text) = cell else { continue };
        if judge.names_a_field(text) {
            matching += 1;
            if matching >= needed && !strong {
                return true;
            }
        } else {
            misses += 1;
            if misses >= too_many_misses {
                return false;
            }
        }
    }
    matching >= needed
}

/// The tables of a sheet, top to bottom (see the module docs for the rules). Empty when no row
/// is a header row.
pub fn find_tables(rows: &[Vec<Cell>], fields: &CompiledFields) -> Vec<TableRegion> {
    let mut tables = Vec::new();
    let mut judge = CellJudge::new(fields);
    let mut index = 0;
    while let Some(row) = rows.get(index) {
        if !judge_header(row, &mut judge, false) {
            index += 1;
            continue;
        }
        let header_row = index;
        let first_column = first_non_blank(row).unwrap_or(0);
        let mut last_column = last_non_blank(row).unwrap_or(first_column);
        let mut last_data_row = header_row;
        let mut blank_run = 0;
        index += 1;
        while let Some(row) = rows.get(index) {
            if is_blank_row(row) {
                blank_run += 1;
                if blank_run >= 2 {
                    break;
                }
            } else {
                if judge_header(row, &mut judge, true) {
                    break;
                }
                blank_run = 0;
                last_data_row = index;
                if let Some(last) = last_non_blank(row) {
                    last_column = last_column.max(last);
                }
            }
            index += 1;
        }
        tables.push(TableRegion {
            header_row,
            first_data_row: header_row + 1,
            last_data_row,
            first_column,
            last_column,
        });
    }
    tables
}

fn first_non_blank(row: &[Cell]) -> Option<usize> {
    row.iter().position(|cell| !cell.is_blank())
}

fn last_non_blank(row: &[Cell]) -> Option<usize> {
    row.iter().rposition(|cell| !cell.is_blank())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{compile, field, members, row};
    use ade_core::config::FieldType;

    fn region(header: usize, last: usize, columns: (usize, usize)) -> TableRegion {
        TableRegion {
            header_row: header,
            first_data_row: header + 1,
            last_data_row: last,
            first_column: columns.0,
            last_column: columns.1,
        }
    }

    #[test]
    fn skips_title_blank_and_note_rows_above_the_header() {
        let rows = vec![
            row(&["Members 2024"]),
            row(&[]),
            row(&["Note: exported by the membership office", "", "draft"]),
            row(&["Member #", "Full name", "E-mail", "Joined"]),
            row(&["1", "Ada", "ada@example.org", "2024-01-02"]),
            row(&["2", "Grace", "grace@example.org", "2024-02-03"]),
            row(&["", "", "", ""]),
            row(&[]),
        ];
        let tables = find_tables(&rows, &members());
        assert_eq!(tables, vec![region(3, 5, (0, 3))]);
        let table = tables.first().expect("one table");
        assert_eq!(table.data_rows(), 4..6);
        assert_eq!(table.column_count(), 4);
        assert!(!table.is_empty());
    }

    #[test]
    fn finds_two_tables_separated_by_blank_rows() {
        let rows = vec![
            row(&["Member #", "Full name"]),
            row(&["1", "Ada"]),
            row(&[]),
            row(&["2", "Grace"]),
            row(&[]),
            row(&[]),
            row(&["Second list"]),
            row(&["", "E-mail", "Full name", "Joined"]),
            row(&["", "x@y.io", "Linus", "2020-01-01"]),
        ];
        let tables = find_tables(&rows, &members());
        assert_eq!(tables, vec![region(0, 3, (0, 1)), region(7, 8, (1, 3))]);
        let first = tables.first().expect("two tables");
        assert_eq!(first.data_rows(), 1..4, "a single blank row stays inside the table");
    }

    #[test]
    fn a_header_without_data_is_an_empty_table() {
        let rows = vec![row(&["Member #", "E-mail"]), row(&[]), row(&[]), row(&["1", "a@b.co"])];
        let tables = find_tables(&rows, &members());
        assert_eq!(tables, vec![region(0, 0, (0, 1))]);
        let table = tables.first().expect("one table");
        assert!(table.is_empty());
        assert_eq!(table.data_rows(), 1..1);

        let at_the_end = vec![row(&["x"]), row(&["Member #", "E-mail"])];
        let tables = find_tables(&at_the_end, &members());
        assert_eq!(tables, vec![region(1, 1, (0, 1))]);
        assert!(tables.first().is_some_and(TableRegion::is_empty));
    }

    #[test]
    fn a_header_row_ends_the_table_above_it() {
        let rows = vec![row(&["Member #", "E-mail"]), row(&["Full name", "Joined"]), row(&["Ada", "2024-01-01"])];
        let tables = find_tables(&rows, &members());
        assert_eq!(tables, vec![region(0, 0, (0, 1)), region(1, 2, (0, 1))]);
    }

    #[test]
    fn data_values_containing_field_names_do_not_cut_a_table() {
        let fields = compile(vec![
            field("member_id", FieldType::Integer),
            field("name", FieldType::String),
            field("street", FieldType::String),
            field("company", FieldType::String),
        ]);
        let rows = vec![
            row(&["Member ID", "Name", "Street", "Company"]),
            row(&["1", "Ada", "1 Main Street", "Company 12"]),
            row(&["2", "Grace", "2 Main Street", "Company 13"]),
            row(&["Member ID", "Name", "Street", "Notes"]),
            row(&["3", "Alan", "3 High Street", "x"]),
        ];
        assert!(is_header_row(&rows[1], &fields), "on its own, the row would start a table");
        let tables = find_tables(&rows, &fields);
        assert_eq!(tables, vec![region(0, 2, (0, 3)), region(3, 4, (0, 3))]);
    }

    #[test]
    fn ragged_rows() {
        let rows = vec![
            Vec::new(),
            row(&["Member #", "Full name", "E-mail"]),
            row(&["1"]),
            Vec::new(),
            row(&["2", "Grace", "g@example.org", "", "extra"]),
            row(&["", ""]),
        ];
        let tables = find_tables(&rows, &members());
        assert_eq!(tables, vec![region(1, 4, (0, 4))]);
        assert_eq!(tables.first().map(TableRegion::column_count), Some(5));
        assert!(find_tables(&[], &members()).is_empty());
        assert!(find_tables(&[Vec::new(), Vec::new()], &members()).is_empty());
    }

    #[test]
    fn no_table_when_nothing_matches() {
        let rows = vec![
            row(&["Quarterly report"]),
            row(&["Region", "Revenue", "Cost"]),
            row(&["North", "10", "4"]),
            vec![Cell::Int(1), Cell::Float(2.5), Cell::Bool(true)],
        ];
        assert!(find_tables(&rows, &members()).is_empty());
    }

    #[test]
    fn a_header_row_is_mostly_text_with_two_matching_cells() {
        let fields = members();
        assert!(is_header_row(&row(&["Member #", "Full name", "Notes"]), &fields));
        assert!(!is_header_row(&row(&["Member #", "Notes"]), &fields), "only one cell matches");
        let mostly_numbers = vec![
            Cell::Text("E-mail".to_owned()),
            Cell::Text("Joined".to_owned()),
            Cell::Int(1),
            Cell::Int(2),
            Cell::Int(3),
        ];
        assert!(!is_header_row(&mostly_numbers, &fields));
        assert!(!is_header_row(&[], &fields));
    }

    #[test]
    fn one_field_needs_one_matching_cell() {
        let fields = compile(vec![field("email", FieldType::Email)]);
        let rows = vec![row(&["E-mail"]), row(&["a@b.co"]), row(&["c@d.co"])];
        assert_eq!(find_tables(&rows, &fields), vec![region(0, 2, (0, 0))]);
    }
}
