//! [`Cell`]: one value of a grid, as a reader (CSV, calamine) hands it over.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime};

/// The most characters of a value quoted in a validation issue (SPEC §2.1, `value`).
pub const MAX_VALUE_CHARS: usize = 256;

/// The most cells (row lengths summed, padding included) one sheet may have: 40,000,000, e.g.
/// Excel's 1,048,576 rows × 38 columns. Each cell takes 32 bytes plus its text, so a sheet at
/// the limit holds about 1.3 GB before its text; a larger sheet is an input error rather than
/// a run that exhausts memory.
pub const MAX_SHEET_CELLS: usize = 40_000_000;

/// One cell of a sheet.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Cell {
    /// No value.
    Empty,
    /// Text, as written.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time of day.
    DateTime(NaiveDateTime),
    /// A spreadsheet error value, e.g. `#DIV/0!`.
    Error(String),
}

impl Cell {
    /// Whether the cell holds nothing: [`Cell::Empty`] or text that is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(text) => text.trim().is_empty(),
            _ => false,
        }
    }

    /// The text a person sees: text as written; whole floats without a fraction (`42.0` → `42`);
    /// booleans as `true`/`false`; dates as `YYYY-MM-DD`; date-times as `YYYY-MM-DD HH:MM:SS`;
    /// errors as their code; [`Cell::Empty`] as `""`.
    pub fn display(&self) -> String {
        self.text().into_owned()
    }

    /// [`Cell::display`], borrowed when the cell holds text (or an error code): no copy.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Cell::Empty => Cow::Borrowed(""),
            Cell::Text(text) | Cell::Error(text) => Cow::Borrowed(text),
            Cell::Int(n) => Cow::Owned(n.to_string()),
            Cell::Float(f) => Cow::Owned(display_float(*f)),
            Cell::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Cell::Date(d) => Cow::Owned(d.format("%Y-%m-%d").to_string()),
            Cell::DateTime(dt) => Cow::Owned(dt.format("%Y-%m-%d %H:%M:%S").to_string()),
        }
    }

    /// [`Cell::display`] cut to at most [`MAX_VALUE_CHARS`] characters: the `value` of an issue.
    pub fn issue_value(&self) -> String {
        let text = self.text();
        match text.char_indices().nth(MAX_VALUE_CHARS) {
            None => text.into_owned(),
            Some((cut, _)) => text[..cut].to_owned(),
        }
    }
}

/// Whole, not-too-large floats print without a fraction; everything else in Rust's shortest form.
fn display_float(f: f64) -> String {
    if f == 0.0 {
        "0".to_owned()
    } else if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_cells() {
        assert!(Cell::Empty.is_blank());
        assert!(Cell::Text(String::new()).is_blank());
        assert!(Cell::Text(" \t ".to_owned()).is_blank());
        assert!(!Cell::Text(" x ".to_owned()).is_blank());
        assert!(!Cell::Int(0).is_blank());
        assert!(!Cell::Error("#N/A".to_owned()).is_blank());
    }

    #[test]
    fn display_is_what_a_person_sees() {
        let date = NaiveDate::from_ymd_opt(2024, 3, 9).expect("valid date");
        let time = date.and_hms_opt(14, 5, 0).expect("valid time");
        assert_eq!(Cell::Empty.display(), "");
        assert_eq!(Cell::Text("a b".to_owned()).display(), "a b");
        assert_eq!(Cell::Int(-7).display(), "-7");
        assert_eq!(Cell::Float(42.0).display(), "42");
        assert_eq!(Cell::Float(-0.0).display(), "0");
        assert_eq!(Cell::Float(2.5).display(), "2.5");
        assert_eq!(Cell::Float(1e20).display(), "100000000000000000000");
        assert_eq!(Cell::Bool(true).display(), "true");
        assert_eq!(Cell::Date(date).display(), "2024-03-09");
        assert_eq!(Cell::DateTime(time).display(), "2024-03-09 14:05:00");
        assert_eq!(Cell::Error("#DIV/0!".to_owned()).display(), "#DIV/0!");
    }

    #[test]
    fn issue_values_are_capped_in_characters() {
        let long = Cell::Text("é".repeat(300));
        assert_eq!(long.issue_value().chars().count(), MAX_VALUE_CHARS);
        assert_eq!(Cell::Text("short".to_owned()).issue_value(), "short");
    }
}
