//! Reading a workbook (XLSX, XLSM, XLS, ODS) into one grid of [`Cell`]s per sheet, with calamine.
//!
//! - The format comes from the file's extension ([`WorkbookFormat::from_extension`]); bytes that
//!   are not a workbook of that format (corrupt, another format) are an error naming the format,
//!   never a panic; a password-protected (encrypted) workbook is an error saying so.
//! - Only worksheets are read (chart sheets, macro sheets and VBA modules are skipped); each keeps
//!   its 0-based position in the workbook as its index.
//! - `rows[i][j]` is spreadsheet row `i + 1`, column `j + 1`: a used range that does not start at
//!   A1 is padded with empty rows and [`Cell::Empty`] columns.
//! - A sheet of more than [`MAX_SHEET_CELLS`] cells (row lengths summed, padding included; for
//!   XLSX each row counts one more) is an error.
//! - Values: integers, floats, booleans and text as they are; dates and date-times as
//!   [`Cell::Date`] (midnight) or [`Cell::DateTime`] when they convert, else their text;
//!   durations as text; error values as [`Cell::Error`] with their code (`#DIV/0!`, …).

use std::io::Cursor;
use std::str::FromStr;

use calamine::{Data, Ods, OdsError, Range, Reader, SheetType, Xls, XlsError, Xlsx, XlsxError, open_workbook_from_rs};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::cell::{Cell, MAX_SHEET_CELLS};
use super::csv_input::too_many_cells;

/// A workbook format calamine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkbookFormat {
    /// Office Open XML: `.xlsx`, `.xlsm`.
    Xlsx,
    /// Legacy Excel: `.xls`.
    Xls,
    /// OpenDocument: `.ods`.
    Ods,
}

impl WorkbookFormat {
    /// The format of a file with extension `ext` (any case), if it is a workbook format.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "xlsx" | "xlsm" => Some(Self::Xlsx),
            "xls" => Some(Self::Xls),
            "ods" => Some(Self::Ods),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Xlsx => "XLSX",
            Self::Xls => "XLS",
            Self::Ods => "ODS",
        }
    }
}

/// One worksheet of a workbook, read into a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkbookSheet {
    /// The sheet's 0-based position in the workbook.
    pub index: u32,
    /// The sheet's name.
    pub name: String,
    /// Its cells: `rows[i][j]` is spreadsheet row `i + 1`, column `j + 1`.
    pub rows: Vec<Vec<Cell>>,
}

/// Why a workbook could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorkbookError(String);

/// Rows of an XLSX sheet between two calls of [`read_workbook_with`]'s `on_rows`.
pub const ROWS_PER_REPORT: usize = 1_000;

/// Reads the worksheets of `bytes` as a workbook of `format` (see the module docs). When
/// `sheet_names` is given, only the worksheets with those names are read, in workbook order.
///
/// # Errors
/// [`WorkbookError`] when the bytes are not a readable workbook of `format`, a sheet cannot be
/// read, or `sheet_names` is given and names none of the workbook's worksheets.
pub fn read_workbook(
    bytes: Vec<u8>,
    format: WorkbookFormat,
    sheet_names: Option<&[String]>,
) -> Result<Vec<WorkbookSheet>, WorkbookError> {
    // `None` only when `on_rows` says stop, which this one never does.
    read_workbook_with(bytes, format, sheet_names, &mut |_, _| true).map(Option::unwrap_or_default)
}

/// [`read_workbook`], telling `on_rows` how far it got: the sheet's name and its rows so far,
/// every [`ROWS_PER_REPORT`] rows of an XLSX sheet (streamed), once per XLS or ODS sheet (read
/// whole). When `on_rows` returns `false` (the run was cancelled, say), reading stops and the
/// answer is `Ok(None)`: a large workbook takes seconds to read, and a person watching should
/// see it move and be able to stop it.
///
/// # Errors
/// As [`read_workbook`].
pub fn read_workbook_with(
    bytes: Vec<u8>,
    format: WorkbookFormat,
    sheet_names: Option<&[String]>,
    on_rows: &mut dyn FnMut(&str, usize) -> bool,
) -> Result<Option<Vec<WorkbookSheet>>, WorkbookError> {
    let not_readable =
        |error: &dyn std::fmt::Display| WorkbookError(format!("is not a readable {} workbook: {error}", format.name()));
    let protected = || WorkbookError("is password-protected (encrypted): save it without a password".to_owned());
    let cursor = Cursor::new(bytes);
    match format {
        WorkbookFormat::Xlsx => {
            let mut workbook = open_workbook_from_rs::<Xlsx<_>, _>(cursor).map_err(|e| match e {
                XlsxError::Password => protected(),
                e => not_readable(&e),
            })?;
            let wanted = worksheets(&workbook, sheet_names)?;
            let mut sheets = Vec::with_capacity(wanted.len());
            for (index, name) in wanted {
                let rows = match xlsx_grid(&mut workbook, &name, &mut |rows| on_rows(&name, rows)) {
                    Ok(rows) => rows,
                    Err(GridStop::Stopped) => return Ok(None),
                    Err(GridStop::TooManyCells) => {
                        return Err(WorkbookError(format!("sheet '{name}' {}", too_many_cells())));
                    }
                    Err(GridStop::Unreadable(error)) => {
                        return Err(WorkbookError(format!("sheet '{name}' cannot be read: {error}")));
                    }
                };
                sheets.push(WorkbookSheet { index, name, rows });
            }
            Ok(Some(sheets))
        }
        WorkbookFormat::Xls => {
            let workbook = open_workbook_from_rs::<Xls<_>, _>(cursor).map_err(|e| match e {
                XlsError::Password => protected(),
                e => not_readable(&e),
            })?;
            read_sheets(workbook, sheet_names, on_rows)
        }
        WorkbookFormat::Ods => {
            let workbook = open_workbook_from_rs::<Ods<_>, _>(cursor).map_err(|e| match e {
                OdsError::Password => protected(),
                e => not_readable(&e),
            })?;
            read_sheets(workbook, sheet_names, on_rows)
        }
    }
}

/// The worksheets to read, with their index in the workbook: all, or those named in
/// `sheet_names` (an error when it names none).
fn worksheets<RS, R>(workbook: &R, sheet_names: Option<&[String]>) -> Result<Vec<(u32, String)>, WorkbookError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
{
    let wanted: Vec<(u32, String)> = workbook
        .sheets_metadata()
        .iter()
        .enumerate()
        .filter(|(_, sheet)| sheet.typ == SheetType::WorkSheet)
        .filter(|(_, sheet)| sheet_names.is_none_or(|names| names.contains(&sheet.name)))
        .map(|(index, sheet)| (u32::try_from(index).unwrap_or(u32::MAX), sheet.name.clone()))
        .collect();
    if let Some(names) = sheet_names
        && wanted.is_empty()
    {
        let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
        return Err(WorkbookError(format!("has no worksheet named {}", quoted.join(", "))));
    }
    Ok(wanted)
}

fn read_sheets<RS, R>(
    mut workbook: R,
    sheet_names: Option<&[String]>,
    on_rows: &mut dyn FnMut(&str, usize) -> bool,
) -> Result<Option<Vec<WorkbookSheet>>, WorkbookError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
    R::Error: std::fmt::Display,
{
    let wanted = worksheets(&workbook, sheet_names)?;
    let mut sheets = Vec::with_capacity(wanted.len());
    for (index, name) in wanted {
        let range = workbook
            .worksheet_range(&name)
            .map_err(|error| WorkbookError(format!("sheet '{name}' cannot be read: {error}")))?;
        let (height, width) = range.get_size();
        if height.saturating_mul(width) > MAX_SHEET_CELLS {
            return Err(WorkbookError(format!("sheet '{name}' {}", too_many_cells())));
        }
        let rows = grid(&range);
        if !on_rows(&name, rows.len()) {
            return Ok(None);
        }
        sheets.push(WorkbookSheet { index, name, rows });
    }
    Ok(Some(sheets))
}

/// The cells of `range`, padded so that `rows[i][j]` is spreadsheet row `i + 1`, column `j + 1`.
fn grid(range: &Range<Data>) -> Vec<Vec<Cell>> {
    let Some((start_row, start_column)) = range.start() else { return Vec::new() };
    let start_row = usize::try_from(start_row).unwrap_or(0);
    let start_column = usize::try_from(start_column).unwrap_or(0);
    let mut rows: Vec<Vec<Cell>> = vec![Vec::new(); start_row];
    for source in range.rows() {
        let mut row = Vec::with_capacity(start_column + source.len());
        row.resize(start_column, Cell::Empty);
        row.extend(source.iter().map(|data| to_cell(data.clone())));
        rows.push(row);
    }
    rows
}

/// Why an XLSX sheet's grid stopped short.
enum GridStop {
    /// calamine could not read the sheet.
    Unreadable(XlsxError),
    /// The sheet has more than [`MAX_SHEET_CELLS`] cells.
    TooManyCells,
    /// `on_rows` said stop.
    Stopped,
}

impl From<XlsxError> for GridStop {
    fn from(error: XlsxError) -> Self {
        GridStop::Unreadable(error)
    }
}

/// An XLSX worksheet's cells, streamed from the sheet's XML straight into the grid (no
/// intermediate dense range): `rows[i][j]` is spreadsheet row `i + 1`, column `j + 1`. Tells
/// `on_rows` the row count every [`ROWS_PER_REPORT`] rows.
fn xlsx_grid<RS: std::io::Read + std::io::Seek>(
    workbook: &mut Xlsx<RS>,
    name: &str,
    on_rows: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<Vec<Cell>>, GridStop> {
    let mut reader = workbook.worksheet_cells_reader(name)?;
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut cells_in_all = 0usize;
    let mut next_report = ROWS_PER_REPORT;
    while let Some(cell) = reader.next_cell()? {
        let value = to_cell(Data::from(cell.get_value().clone()));
        if value == Cell::Empty {
            continue;
        }
        let (row, column) = cell.get_position();
        let (row, column) = (usize::try_from(row).unwrap_or(usize::MAX), usize::try_from(column).unwrap_or(usize::MAX));
        if rows.len() <= row {
            // Each row counts as a cell too, so a lone cell far down cannot allocate unbounded
            // empty rows.
            cells_in_all = cells_in_all.saturating_add(row.saturating_add(1) - rows.len());
            if cells_in_all > MAX_SHEET_CELLS {
                return Err(GridStop::TooManyCells);
            }
            rows.resize_with(row.saturating_add(1), Vec::new);
            if rows.len() >= next_report {
                if !on_rows(rows.len()) {
                    return Err(GridStop::Stopped);
                }
                next_report = rows.len().saturating_add(ROWS_PER_REPORT);
            }
        }
        let Some(cells) = rows.get_mut(row) else { continue };
        if cells.len() <= column {
            cells_in_all = cells_in_all.saturating_add(column.saturating_add(1) - cells.len());
            if cells_in_all > MAX_SHEET_CELLS {
                return Err(GridStop::TooManyCells);
            }
            cells.resize(column.saturating_add(1), Cell::Empty);
        }
        if let Some(slot) = cells.get_mut(column) {
            *slot = value;
        }
    }
    Ok(rows)
}

/// A date-time, or a date when it is at midnight.
fn date_or_datetime(datetime: NaiveDateTime) -> Cell {
    if datetime.time() == NaiveTime::MIN { Cell::Date(datetime.date()) } else { Cell::DateTime(datetime) }
}

/// One calamine value as a [`Cell`].
fn to_cell(data: Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::Int(n) => Cell::Int(n),
        Data::Float(f) => Cell::Float(f),
        Data::String(text) if text.is_empty() => Cell::Empty,
        Data::String(text) => Cell::Text(text),
        Data::Bool(b) => Cell::Bool(b),
        Data::DateTime(datetime) if datetime.is_datetime() => {
            datetime.as_datetime().map_or_else(|| Cell::Text(datetime.to_string()), date_or_datetime)
        }
        Data::DateTime(_) | Data::DurationIso(_) => Cell::Text(data.to_string()),
        Data::DateTimeIso(text) => NaiveDateTime::from_str(&text)
            .map(date_or_datetime)
            .or_else(|_| NaiveDate::from_str(&text).map(Cell::Date))
            .unwrap_or(Cell::Text(text)),
        Data::Error(error) => Cell::Error(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use calamine::{CellErrorType, ExcelDateTime, ExcelDateTimeType};

    use super::*;
    use crate::test_support::{encrypted_workbook, ods, stored_zip};

    #[test]
    fn values_become_cells() {
        let date = NaiveDate::from_ymd_opt(2024, 3, 9).expect("valid date");
        assert_eq!(to_cell(Data::Int(3)), Cell::Int(3));
        assert_eq!(to_cell(Data::Float(2.5)), Cell::Float(2.5));
        assert_eq!(to_cell(Data::String("a".to_owned())), Cell::Text("a".to_owned()));
        assert_eq!(to_cell(Data::String(String::new())), Cell::Empty);
        assert_eq!(to_cell(Data::Bool(true)), Cell::Bool(true));
        assert_eq!(to_cell(Data::Error(CellErrorType::Div0)), Cell::Error("#DIV/0!".to_owned()));
        // 2024-03-09 is serial 45360.
        let serial = ExcelDateTime::new(45_360.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(to_cell(Data::DateTime(serial)), Cell::Date(date));
        let serial = ExcelDateTime::new(45_360.5, ExcelDateTimeType::DateTime, false);
        let noon = date.and_hms_opt(12, 0, 0).expect("valid time");
        assert_eq!(to_cell(Data::DateTime(serial)), Cell::DateTime(noon));
        assert_eq!(to_cell(Data::DateTimeIso("2024-03-09".to_owned())), Cell::Date(date));
        assert_eq!(to_cell(Data::DateTimeIso("2024-03-09T12:00:00".to_owned())), Cell::DateTime(noon));
        assert_eq!(to_cell(Data::DateTimeIso("soon".to_owned())), Cell::Text("soon".to_owned()));
        assert_eq!(to_cell(Data::DurationIso("PT1H".to_owned())), Cell::Text("PT1H".to_owned()));
    }

    #[test]
    fn an_encrypted_workbook_is_reported_as_password_protected() {
        let error = read_workbook(encrypted_workbook(), WorkbookFormat::Xlsx, None).expect_err("encrypted");
        assert_eq!(error.to_string(), "is password-protected (encrypted): save it without a password");
    }

    #[test]
    fn a_hand_made_ods_is_read() {
        let bytes = ods("People", &[&["Title"], &[], &["Member #", "Full name"], &["1", "Ada"], &["", "Bob"]]);
        let sheets = read_workbook(bytes, WorkbookFormat::Ods, None).expect("a valid ODS");
        assert_eq!(sheets.len(), 1);
        assert_eq!((sheets[0].index, sheets[0].name.as_str()), (0, "People"));
        let texts: Vec<Vec<String>> = sheets[0].rows.iter().map(|r| r.iter().map(Cell::display).collect()).collect();
        let want: [&[&str]; 5] = [&["Title"], &[], &["Member #", "Full name"], &["1", "Ada"], &["", "Bob"]];
        let want: Vec<Vec<String>> = want.iter().map(|r| r.iter().map(|c| (*c).to_owned()).collect()).collect();
        // calamine pads rows to the sheet's width.
        let trimmed: Vec<Vec<String>> = texts
            .into_iter()
            .map(|mut r| {
                while r.last().is_some_and(String::is_empty) {
                    r.pop();
                }
                r
            })
            .collect();
        assert_eq!(trimmed, want);
        assert_eq!(sheets[0].rows[3][0], Cell::Float(1.0));
    }

    #[test]
    fn formula_errors_become_error_cells() {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let worksheet = workbook.add_worksheet();
        worksheet.write_formula(0, 0, rust_xlsxwriter::Formula::new("=1/0").set_result("#DIV/0!")).expect("write");
        worksheet.write_formula(0, 1, rust_xlsxwriter::Formula::new("=NA()").set_result("#N/A")).expect("write");
        worksheet.write_formula(0, 2, rust_xlsxwriter::Formula::new("=1+1").set_result("2")).expect("write");
        let bytes = workbook.save_to_buffer().expect("workbook");
        let sheets = read_workbook(bytes, WorkbookFormat::Xlsx, None).expect("readable");
        assert_eq!(
            sheets[0].rows,
            vec![vec![Cell::Error("#DIV/0!".to_owned()), Cell::Error("#N/A".to_owned()), Cell::Float(2.0)]]
        );
    }

    /// An XLSX workbook of one sheet, `Big`, with `rows` rows of two cells.
    fn big_xlsx(rows: u32) -> Vec<u8> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let worksheet = workbook.add_worksheet();
        worksheet.set_name("Big").expect("name");
        for row in 0..rows {
            worksheet.write_number(row, 0, f64::from(row)).expect("write");
            worksheet.write_string(row, 1, "x").expect("write");
        }
        workbook.save_to_buffer().expect("workbook")
    }

    #[test]
    fn reading_an_xlsx_sheet_reports_every_thousand_rows_and_stops_when_told() {
        let bytes = big_xlsx(3_500);
        let mut calls = Vec::new();
        let sheets = read_workbook_with(bytes.clone(), WorkbookFormat::Xlsx, None, &mut |sheet, rows| {
            calls.push((sheet.to_owned(), rows));
            true
        })
        .expect("readable")
        .expect("not stopped");
        assert_eq!(sheets[0].rows.len(), 3_500);
        assert_eq!(calls, [("Big".to_owned(), 1_000), ("Big".to_owned(), 2_000), ("Big".to_owned(), 3_000)]);

        // Told to stop at the second report: nothing is returned, and reading went no further.
        let mut reports = 0;
        let stopped = read_workbook_with(bytes, WorkbookFormat::Xlsx, None, &mut |_, _| {
            reports += 1;
            reports < 2
        })
        .expect("readable");
        assert!(stopped.is_none());
        assert_eq!(reports, 2);
    }

    #[test]
    fn an_ods_sheet_is_reported_once_it_is_read() {
        let bytes = ods("People", &[&["Name", "Age"], &["Ada", "36"]]);
        let mut calls = Vec::new();
        let sheets = read_workbook_with(bytes.clone(), WorkbookFormat::Ods, None, &mut |sheet, rows| {
            calls.push((sheet.to_owned(), rows));
            true
        })
        .expect("readable")
        .expect("not stopped");
        assert_eq!(sheets.len(), 1);
        assert_eq!(calls, [("People".to_owned(), 2)]);
        assert_eq!(read_workbook_with(bytes, WorkbookFormat::Ods, None, &mut |_, _| false), Ok(None));
    }

    /// A minimal XLSX package whose one sheet, `Sheet1`, has the cells `(reference, text)`.
    fn raw_xlsx(cells: &[(&str, &str)]) -> Vec<u8> {
        let cells: String =
            cells.iter().map(|(at, text)| format!(r#"<c r="{at}" t="inlineStr"><is><t>{text}</t></is></c>"#)).collect();
        let sheet = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row>{cells}</row></sheetData></worksheet>"#
        );
        let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#;
        let rels = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
        let workbook = r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
        let workbook_rels = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#;
        stored_zip(&[
            ("[Content_Types].xml", types.as_bytes()),
            ("_rels/.rels", rels.as_bytes()),
            ("xl/workbook.xml", workbook.as_bytes()),
            ("xl/_rels/workbook.xml.rels", workbook_rels.as_bytes()),
            ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ])
    }

    #[test]
    fn a_cell_far_away_is_an_error_not_an_unbounded_grid() {
        let near = read_workbook(raw_xlsx(&[("A1", "x"), ("C3", "y")]), WorkbookFormat::Xlsx, None).expect("valid");
        assert_eq!(near[0].rows.len(), 3);
        assert_eq!(near[0].rows[2], vec![Cell::Empty, Cell::Empty, Cell::Text("y".to_owned())]);
        // Beyond Excel's own limits, which calamine does not check: 50,000,000 rows down.
        let far = read_workbook(raw_xlsx(&[("A1", "x"), ("A50000000", "y")]), WorkbookFormat::Xlsx, None);
        assert_eq!(
            far.expect_err("too many cells").to_string(),
            "sheet 'Sheet1' has more than 40000000 cells, the limit per sheet"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for format in [WorkbookFormat::Xlsx, WorkbookFormat::Xls, WorkbookFormat::Ods] {
            let error = read_workbook(b"not a workbook".to_vec(), format, None).expect_err("garbage");
            assert!(error.to_string().starts_with(&format!("is not a readable {} workbook", format.name())));
        }
        assert_eq!(WorkbookFormat::from_extension("XLSM"), Some(WorkbookFormat::Xlsx));
        assert_eq!(WorkbookFormat::from_extension("csv"), None);
    }
}
