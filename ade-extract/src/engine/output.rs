//! The `writing_output` phase: `normalized.xlsx` (sheets `normalized` and `issues`) or
//! `normalized.csv` and `issues.csv`, streamed from the sheets' cells on a blocking thread.

use std::path::Path;
use std::sync::Arc;

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use super::{IssueRecord, Progress, Sheet, XLSX_MAX_DATA_ROWS, data_rows, severity_text, thousands, to_u64};
use crate::cell::Cell;
use crate::fields::CompiledFields;

/// The columns of `issues.csv` and of the `issues` sheet.
pub(super) const ISSUE_COLUMNS: [&str; 10] =
    ["table_id", "source_file", "source_sheet", "row", "field", "column", "severity", "code", "value", "message"];

/// What writing the outputs did, beyond the files themselves.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Written {
    /// Texts cut to Excel's limit of [`MAX_XLSX_TEXT`] characters in `normalized.xlsx`.
    pub(super) cut: u64,
    /// Issues beyond Excel's row limit, left out of the `issues` sheet of `normalized.xlsx`.
    pub(super) issues_left_out: u64,
}

/// Writes the outputs into `output_dir`: `normalized.xlsx` (sheets `normalized` and `issues`)
/// when `xlsx`, else `normalized.csv` and `issues.csv`, on a blocking thread, straight from the
/// sheets' cells (no copy of the records), counting records and issues in `progress`. Returns
/// their paths relative to the run's directory and what [`Written`] says, or `None` when the run
/// was cancelled.
pub(super) async fn write_outputs(
    output_dir: &Path,
    sheets: Vec<Sheet>,
    fields: Arc<CompiledFields>,
    issues: Vec<IssueRecord>,
    xlsx: bool,
    mut progress: Progress,
) -> Result<Option<(Vec<String>, Written)>, String> {
    tokio::fs::create_dir_all(output_dir).await.map_err(|error| format!("{}: {error}", output_dir.display()))?;
    let dir = output_dir.to_owned();
    let names: &[&str] = if xlsx { &["normalized.xlsx"] } else { &["normalized.csv", "issues.csv"] };
    let written = tokio::task::spawn_blocking(move || {
        if xlsx {
            let path = dir.join("normalized.xlsx");
            write_xlsx(&path, &sheets, &fields, &issues, &mut progress, XLSX_MAX_DATA_ROWS)
                .map_err(|error| format!("normalized.xlsx: {error}"))
        } else {
            let path = dir.join("normalized.csv");
            let written = write_normalized_csv(&path, &sheets, &fields, &mut progress)
                .map_err(|error| format!("normalized.csv: {error}"))?;
            if written.is_none() {
                return Ok(None);
            }
            write_issues_csv(&dir.join("issues.csv"), &sheets, &issues, &mut progress)
                .map(|finished| finished.map(|()| Written::default()))
                .map_err(|error| format!("issues.csv: {error}"))
        }
    })
    .await
    .map_err(|error| format!("writing the output failed: {error}"))??;
    Ok(written.map(|written| (names.iter().map(|name| format!("outputs/{name}")).collect(), written)))
}

/// A cell that holds nothing, to point at.
static EMPTY: Cell = Cell::Empty;

/// The normalized output's header: configured fields in order, then `raw_1…raw_n` for unmapped
/// columns (as many as the table with the most), then `source_file`, `source_sheet`,
/// `source_row`. Also returns `n`.
pub(super) fn normalized_header(sheets: &[Sheet], fields: &CompiledFields) -> (Vec<String>, usize) {
    let raw_count = sheets.iter().flat_map(|s| &s.tables).map(|t| t.mapping.unmapped_columns.len()).max().unwrap_or(0);
    let mut header: Vec<String> = fields.iter().map(|f| f.name().to_owned()).collect();
    header.extend((1..=raw_count).map(|n| format!("raw_{n}")));
    header.extend(["source_file", "source_sheet", "source_row"].map(str::to_owned));
    (header, raw_count)
}

/// The number of normalized records: one per non-blank data row of every table.
pub(super) fn record_count(sheets: &[Sheet]) -> u64 {
    sheets.iter().flat_map(|s| &s.tables).map(|t| t.row_count).sum()
}

/// Calls `write` with every normalized record (one per non-blank data row, under
/// [`normalized_header`]), borrowing the sheets' cells, and counts them in `progress`. Stops
/// with `Ok(false)` when the run was cancelled, or at `write`'s first error.
fn for_each_record<E>(
    sheets: &[Sheet],
    fields: &CompiledFields,
    raw_count: usize,
    progress: &mut Progress,
    mut write: impl FnMut(&[&Cell]) -> Result<(), E>,
) -> Result<bool, E> {
    progress.start("wrote", "rows", record_count(sheets));
    for sheet in sheets {
        let source_file = Cell::Text(sheet.source_file.clone());
        let source_sheet = Cell::Text(sheet.source_sheet.clone());
        for table in &sheet.tables {
            let field_columns = fields.iter().map(|field| {
                table
                    .mapping
                    .mapped_columns
                    .iter()
                    .find(|c| c.is_satisfied && c.field == field.name())
                    .and_then(|c| usize::try_from(c.source_column_index).ok())
            });
            let raw_columns = (0..raw_count).map(|n| {
                table.mapping.unmapped_columns.get(n).and_then(|c| usize::try_from(c.source_column_index).ok())
            });
            let columns: Vec<Option<usize>> = field_columns.chain(raw_columns).collect();
            for (index, row) in data_rows(&sheet.rows, &table.region) {
                if !progress.step() {
                    return Ok(false);
                }
                let source_row = Cell::Int(i64::try_from(index + 1).unwrap_or(i64::MAX));
                let mut record: Vec<&Cell> = Vec::with_capacity(columns.len() + 3);
                record.extend(columns.iter().map(|column| column.and_then(|c| row.get(c)).unwrap_or(&EMPTY)));
                record.extend([&source_file, &source_sheet, &source_row]);
                write(&record)?;
            }
        }
    }
    Ok(true)
}

/// One issue as cells under [`ISSUE_COLUMNS`].
fn issue_record(sheets: &[Sheet], record: &IssueRecord) -> Vec<Cell> {
    let text = |value: &str| if value.is_empty() { Cell::Empty } else { Cell::Text(value.to_owned()) };
    let issue = &record.issue;
    let sheet = sheets.get(record.sheet);
    vec![
        text(&issue.table_id),
        text(sheet.map_or("", |s| s.source_file.as_str())),
        text(sheet.map_or("", |s| s.source_sheet.as_str())),
        issue.row.map_or(Cell::Empty, |r| Cell::Int(i64::try_from(r).unwrap_or(i64::MAX))),
        text(issue.field.as_deref().unwrap_or_default()),
        text(issue.column.as_deref().unwrap_or_default()),
        text(severity_text(issue.severity)),
        text(&issue.code),
        text(issue.value.as_deref().unwrap_or_default()),
        text(&issue.message),
    ]
}

/// Writes one CSV record: each cell as a person sees it.
fn write_csv_record<W: std::io::Write>(writer: &mut csv::Writer<W>, cells: &[&Cell]) -> Result<(), csv::Error> {
    for cell in cells {
        writer.write_field(cell.text().as_bytes())?;
    }
    writer.write_record(None::<&[u8]>)
}

/// `normalized.csv`; `None` when cancelled.
pub(super) fn write_normalized_csv(
    path: &Path,
    sheets: &[Sheet],
    fields: &CompiledFields,
    progress: &mut Progress,
) -> Result<Option<()>, csv::Error> {
    let (header, raw_count) = normalized_header(sheets, fields);
    let mut writer = csv::WriterBuilder::new().flexible(false).from_path(path)?;
    writer.write_record(&header)?;
    let finished =
        for_each_record(sheets, fields, raw_count, progress, |record| write_csv_record(&mut writer, record))?;
    writer.flush()?;
    Ok(finished.then_some(()))
}

/// `issues.csv`: every issue (CSV has no row limit); `None` when cancelled.
pub(super) fn write_issues_csv(
    path: &Path,
    sheets: &[Sheet],
    issues: &[IssueRecord],
    progress: &mut Progress,
) -> Result<Option<()>, csv::Error> {
    let mut writer = csv::WriterBuilder::new().flexible(false).from_path(path)?;
    writer.write_record(ISSUE_COLUMNS)?;
    progress.start("wrote", "issues", to_u64(issues.len()));
    for record in issues {
        if !progress.step() {
            return Ok(None);
        }
        let cells = issue_record(sheets, record);
        let cells: Vec<&Cell> = cells.iter().collect();
        write_csv_record(&mut writer, &cells)?;
    }
    writer.flush()?;
    Ok(Some(()))
}

/// The number formats of the output workbook.
#[derive(Debug)]
struct Formats {
    bold: Format,
    date: Format,
    datetime: Format,
}

/// Adds a sheet named `name` with a bold `header` row (frozen).
fn add_sheet<'a>(
    workbook: &'a mut Workbook,
    name: &str,
    header: &[String],
    formats: &Formats,
) -> Result<&'a mut Worksheet, XlsxError> {
    // Constant-memory mode: rows (written in order) go to a temporary file beside the output, so
    // the output costs no memory per row.
    let worksheet = workbook.add_worksheet_with_constant_memory()?;
    worksheet.set_name(name)?;
    for (column, title) in header.iter().enumerate() {
        worksheet.write_string_with_format(0, column_number(column)?, title, &formats.bold)?;
    }
    worksheet.set_freeze_panes(1, 0)?;
    Ok(worksheet)
}

/// Excel's limit on the text of a cell, in UTF-16 code units.
pub(super) const MAX_XLSX_TEXT: usize = 32_767;

/// `text` cut to [`MAX_XLSX_TEXT`] UTF-16 code units (on a character boundary) when it is longer.
pub(super) fn cut_for_xlsx(text: &str) -> Option<&str> {
    // A character has at least as many UTF-8 bytes as UTF-16 units.
    if text.len() <= MAX_XLSX_TEXT {
        return None;
    }
    let mut units = 0;
    for (at, c) in text.char_indices() {
        units += c.len_utf16();
        if units > MAX_XLSX_TEXT {
            return text.get(..at);
        }
    }
    None
}

/// Writes `cells` into row `row`, types kept (numbers, booleans, dates; text otherwise). Text
/// longer than Excel allows is cut (see [`cut_for_xlsx`]) and counted in `cut`.
fn write_xlsx_row(
    worksheet: &mut Worksheet,
    row: u32,
    cells: &[&Cell],
    formats: &Formats,
    cut: &mut u64,
) -> Result<(), XlsxError> {
    for (column, cell) in cells.iter().enumerate() {
        let column = column_number(column)?;
        match cell {
            Cell::Empty => {}
            // Beyond 2^53 a float loses digits: keep such integers as text.
            Cell::Int(n) if n.unsigned_abs() < (1 << 53) => {
                worksheet.write_number(row, column, *n as f64)?;
            }
            Cell::Float(f) if f.is_finite() => {
                worksheet.write_number(row, column, *f)?;
            }
            Cell::Bool(b) => {
                worksheet.write_boolean(row, column, *b)?;
            }
            Cell::Date(d) => {
                let value = excel_datetime(d.and_time(chrono::NaiveTime::MIN))?;
                worksheet.write_datetime_with_format(row, column, value, &formats.date)?;
            }
            Cell::DateTime(dt) => {
                worksheet.write_datetime_with_format(row, column, excel_datetime(*dt)?, &formats.datetime)?;
            }
            Cell::Text(text) => match cut_for_xlsx(text) {
                None => {
                    worksheet.write_string(row, column, text)?;
                }
                Some(start) => {
                    *cut += 1;
                    worksheet.write_string(row, column, start)?;
                }
            },
            other => {
                worksheet.write_string(row, column, other.text())?;
            }
        }
    }
    Ok(())
}

/// Why `normalized.xlsx` could not be written.
#[derive(Debug, thiserror::Error)]
pub(super) enum XlsxWriteError {
    /// More records than a sheet holds. Cutting them would lose data silently, so the run fails
    /// before anything is written and says what to do instead.
    #[error(
        "{} rows do not fit in the 'normalized' sheet: Excel allows {} data rows per sheet; use output_format: csv for larger outputs",
        thousands(*rows),
        thousands(u64::from(*limit))
    )]
    TooManyRows { rows: u64, limit: u32 },
    #[error(transparent)]
    Xlsx(#[from] XlsxError),
}

/// `normalized.xlsx`: sheets `normalized` and `issues`, each with a bold header row, then the
/// records with their types kept, at most `max_rows` data rows per sheet (Excel's limit,
/// [`XLSX_MAX_DATA_ROWS`], outside tests). More records than that fail before anything is
/// written ([`XlsxWriteError::TooManyRows`]); more issues than that fill the `issues` sheet and
/// the rest are counted in [`Written::issues_left_out`] (the summaries count them;
/// `output_format: csv` writes them all). Zip compression level 1: the fastest, for files
/// ~10–20% larger than the default level. `None` when cancelled.
pub(super) fn write_xlsx(
    path: &Path,
    sheets: &[Sheet],
    fields: &CompiledFields,
    issues: &[IssueRecord],
    progress: &mut Progress,
    max_rows: u32,
) -> Result<Option<Written>, XlsxWriteError> {
    let rows = record_count(sheets);
    if rows > u64::from(max_rows) {
        return Err(XlsxWriteError::TooManyRows { rows, limit: max_rows });
    }
    let mut workbook = Workbook::new();
    workbook.set_zip_compression_level(1);
    // The run's directory (the parent of `outputs/`): temporary files never show as outputs.
    if let Some(dir) = path.parent().and_then(Path::parent).or_else(|| path.parent()) {
        workbook.set_tempdir(dir)?;
    }
    let formats = Formats {
        bold: Format::new().set_bold(),
        date: Format::new().set_num_format("yyyy-mm-dd"),
        datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
    };
    let (header, raw_count) = normalized_header(sheets, fields);
    let worksheet = add_sheet(&mut workbook, "normalized", &header, &formats)?;
    let (mut row, mut cut) = (0u32, 0u64);
    let finished = for_each_record(sheets, fields, raw_count, progress, |record| {
        row = row.checked_add(1).ok_or(XlsxError::RowColumnLimitError)?;
        write_xlsx_row(worksheet, row, record, &formats, &mut cut)
    })?;
    if !finished {
        return Ok(None);
    }
    let worksheet = add_sheet(&mut workbook, "issues", &ISSUE_COLUMNS.map(str::to_owned), &formats)?;
    let fitting = issues.len().min(usize::try_from(max_rows).unwrap_or(usize::MAX));
    progress.start("wrote", "issues", to_u64(fitting));
    for (row, record) in (1..=max_rows).zip(issues) {
        if !progress.step() {
            return Ok(None);
        }
        let cells = issue_record(sheets, record);
        let cells: Vec<&Cell> = cells.iter().collect();
        write_xlsx_row(worksheet, row, &cells, &formats, &mut cut)?;
    }
    if progress.cancel.is_cancelled() {
        return Ok(None);
    }
    workbook.save(path)?;
    Ok(Some(Written { cut, issues_left_out: to_u64(issues.len().saturating_sub(fitting)) }))
}

pub(super) fn column_number(column: usize) -> Result<u16, XlsxError> {
    u16::try_from(column).map_err(|_| XlsxError::RowColumnLimitError)
}

pub(super) fn excel_datetime(datetime: chrono::NaiveDateTime) -> Result<ExcelDateTime, XlsxError> {
    use chrono::{Datelike, Timelike};
    let year = u16::try_from(datetime.year()).map_err(|_| XlsxError::DateTimeRangeError(datetime.to_string()))?;
    let month = u8::try_from(datetime.month()).unwrap_or(1);
    let day = u8::try_from(datetime.day()).unwrap_or(1);
    let hour = u16::try_from(datetime.hour()).unwrap_or(0);
    let minute = u8::try_from(datetime.minute()).unwrap_or(0);
    let seconds = f64::from(datetime.second()) + f64::from(datetime.nanosecond()) / 1e9;
    ExcelDateTime::from_ymd(year, month, day)?.and_hms(hour, minute, seconds)
}
