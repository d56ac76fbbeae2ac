//! Reading a workbook (XLSX, XLSM, XLS, ODS) into one grid of [`Cell`]s per sheet, with calamine.
//!
//! - The format comes from the file's extension ([`WorkbookFormat::from_extension`]); bytes that
//!   are not a workbook of that format (corrupt, encrypted, another format) are an error naming
//!   the format, never a panic.
//! - Only worksheets are read (chart sheets, macro sheets and VBA modules are skipped); each keeps
//!   its 0-based position in the workbook as its index.
//! - `rows[i][j]` is spreadsheet row `i + 1`, column `j + 1`: a used range that does not start at
//!   A1 is padded with empty rows and [`Cell::Empty`] columns.
//! - Values: integers, floats, booleans and text as they are; dates and date-times as
//!   [`Cell::Date`] (midnight) or [`Cell::DateTime`] when they convert, else their text;
//!   durations as text; error values as [`Cell::Error`] with their code (`#DIV/0!`, …).

use std::io::Cursor;
use std::str::FromStr;

use calamine::{Data, Ods, Range, Reader, SheetType, Xls, Xlsx, open_workbook_from_rs};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::cell::Cell;

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
    let not_readable =
        |error: &dyn std::fmt::Display| WorkbookError(format!("is not a readable {} workbook: {error}", format.name()));
    let cursor = Cursor::new(bytes);
    match format {
        WorkbookFormat::Xlsx => {
            let workbook = open_workbook_from_rs::<Xlsx<_>, _>(cursor).map_err(|e| not_readable(&e))?;
            read_sheets(workbook, sheet_names)
        }
        WorkbookFormat::Xls => {
            let workbook = open_workbook_from_rs::<Xls<_>, _>(cursor).map_err(|e| not_readable(&e))?;
            read_sheets(workbook, sheet_names)
        }
        WorkbookFormat::Ods => {
            let workbook = open_workbook_from_rs::<Ods<_>, _>(cursor).map_err(|e| not_readable(&e))?;
            read_sheets(workbook, sheet_names)
        }
    }
}

fn read_sheets<RS, R>(mut workbook: R, sheet_names: Option<&[String]>) -> Result<Vec<WorkbookSheet>, WorkbookError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
    R::Error: std::fmt::Display,
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
    let mut sheets = Vec::with_capacity(wanted.len());
    for (index, name) in wanted {
        let range = workbook
            .worksheet_range(&name)
            .map_err(|error| WorkbookError(format!("sheet '{name}' cannot be read: {error}")))?;
        sheets.push(WorkbookSheet { index, name, rows: grid(&range) });
    }
    Ok(sheets)
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
        row.extend(source.iter().map(to_cell));
        rows.push(row);
    }
    rows
}

/// A date-time, or a date when it is at midnight.
fn date_or_datetime(datetime: NaiveDateTime) -> Cell {
    if datetime.time() == NaiveTime::MIN { Cell::Date(datetime.date()) } else { Cell::DateTime(datetime) }
}

/// One calamine value as a [`Cell`].
fn to_cell(data: &Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::Int(n) => Cell::Int(*n),
        Data::Float(f) => Cell::Float(*f),
        Data::String(text) if text.is_empty() => Cell::Empty,
        Data::String(text) => Cell::Text(text.clone()),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(datetime) if datetime.is_datetime() => {
            datetime.as_datetime().map_or_else(|| Cell::Text(data.to_string()), date_or_datetime)
        }
        Data::DateTime(_) | Data::DurationIso(_) => Cell::Text(data.to_string()),
        Data::DateTimeIso(text) => NaiveDateTime::from_str(text)
            .map(date_or_datetime)
            .or_else(|_| NaiveDate::from_str(text).map(Cell::Date))
            .unwrap_or_else(|_| Cell::Text(text.clone())),
        Data::Error(error) => Cell::Error(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use calamine::{CellErrorType, ExcelDateTime, ExcelDateTimeType};

    use super::*;

    #[test]
    fn values_become_cells() {
        let date = NaiveDate::from_ymd_opt(2024, 3, 9).expect("valid date");
        assert_eq!(to_cell(&Data::Int(3)), Cell::Int(3));
        assert_eq!(to_cell(&Data::Float(2.5)), Cell::Float(2.5));
        assert_eq!(to_cell(&Data::String("a".to_owned())), Cell::Text("a".to_owned()));
        assert_eq!(to_cell(&Data::String(String::new())), Cell::Empty);
        assert_eq!(to_cell(&Data::Bool(true)), Cell::Bool(true));
        assert_eq!(to_cell(&Data::Error(CellErrorType::Div0)), Cell::Error("#DIV/0!".to_owned()));
        // 2024-03-09 is serial 45360.
        let serial = ExcelDateTime::new(45_360.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(to_cell(&Data::DateTime(serial)), Cell::Date(date));
        let serial = ExcelDateTime::new(45_360.5, ExcelDateTimeType::DateTime, false);
        let noon = date.and_hms_opt(12, 0, 0).expect("valid time");
        assert_eq!(to_cell(&Data::DateTime(serial)), Cell::DateTime(noon));
        assert_eq!(to_cell(&Data::DateTimeIso("2024-03-09".to_owned())), Cell::Date(date));
        assert_eq!(to_cell(&Data::DateTimeIso("2024-03-09T12:00:00".to_owned())), Cell::DateTime(noon));
        assert_eq!(to_cell(&Data::DateTimeIso("soon".to_owned())), Cell::Text("soon".to_owned()));
        assert_eq!(to_cell(&Data::DurationIso("PT1H".to_owned())), Cell::Text("PT1H".to_owned()));
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
