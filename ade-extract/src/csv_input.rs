//! Reading a CSV file into a grid of [`Cell`]s.
//!
//! - A leading UTF-8 byte order mark is dropped.
//! - Records may have any number of fields (flexible); there is no header record: every record
//!   is a row, and table detection decides what the header is.
//! - Every field becomes [`Cell::Text`] as written, or [`Cell::Empty`] when it is empty.
//! - Empty lines, which the `csv` crate skips, are put back as empty rows, so that row numbers
//!   are the ones a spreadsheet application shows (a quoted field spanning several lines is still
//!   one row).
//! - Bytes that are not UTF-8 are an error naming the row, never a panic.
//! - More than [`MAX_SHEET_CELLS`] fields in all is an error.

use super::cell::{Cell, MAX_SHEET_CELLS};

/// Why a CSV file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CsvError(String);

/// How many line breaks (`\r\n`, `\n` or `\r`) `bytes` starts with.
fn leading_line_breaks(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    loop {
        bytes = match bytes {
            [b'\r', b'\n', rest @ ..] | [b'\n' | b'\r', rest @ ..] => rest,
            _ => return count,
        };
        count += 1;
    }
}

/// Reads `bytes` as CSV (see the module docs).
///
/// # Errors
/// [`CsvError`] when a field is not valid UTF-8 or the CSV cannot be parsed.
pub fn read_csv(bytes: &[u8]) -> Result<Vec<Vec<Cell>>, CsvError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut cells = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => return Err(CsvError(format!("row {} cannot be read: {error}", rows.len() + 1))),
        }
        // The reader skips empty lines and counts them into the next record's span.
        let start = record.position().map_or(0, csv::Position::byte);
        let mut start = usize::try_from(start).unwrap_or(usize::MAX);
        // After a `\r\n` terminator the span may start at its `\n`.
        if start > 0 && bytes.get(start - 1..=start) == Some(b"\r\n") {
            start += 1;
        }
        for _ in 0..leading_line_breaks(bytes.get(start..).unwrap_or_default()) {
            rows.push(Vec::new());
        }
        cells += record.len();
        if cells > MAX_SHEET_CELLS {
            return Err(CsvError(too_many_cells()));
        }
        let mut row = Vec::with_capacity(record.len());
        for field in &record {
            match std::str::from_utf8(field) {
                Ok("") => row.push(Cell::Empty),
                Ok(text) => row.push(Cell::Text(text.to_owned())),
                Err(_) => return Err(CsvError(format!("row {} is not valid UTF-8", rows.len() + 1))),
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The message for a sheet over [`MAX_SHEET_CELLS`].
pub(crate) fn too_many_cells() -> String {
    format!("has more than {MAX_SHEET_CELLS} cells, the limit per sheet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::row;

    #[test]
    fn empty_lines_keep_their_row_numbers() {
        let rows = read_csv(b"\xEF\xBB\xBFTitle\n\r\n\nA,B\n\"x\ny\",,z\r\n1\r\n\r\n2\n").expect("valid");
        assert_eq!(
            rows,
            vec![
                row(&["Title"]),
                Vec::new(),
                Vec::new(),
                row(&["A", "B"]),
                row(&["x\ny", "", "z"]),
                row(&["1"]),
                Vec::new(),
                row(&["2"])
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let error = read_csv(b"a,b\nc,\xff\xfe\n").expect_err("not UTF-8");
        assert_eq!(error.to_string(), "row 2 is not valid UTF-8");
        assert_eq!(read_csv(b""), Ok(Vec::new()));
        assert_eq!(read_csv(b"\n\na\n\n"), Ok(vec![Vec::new(), Vec::new(), row(&["a"])]));
    }
}
