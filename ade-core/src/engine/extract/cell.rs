//! [`Cell`]: one value of a grid, as a reader (CSV, calamine) hands it over.

use chrono::{NaiveDate, NaiveDateTime};

/// The most characters of a value quoted in a validation issue (SPEC §2.1, `value`).
pub const MAX_VALUE_CHARS: usize = 256;

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
        match self {
            Cell::Empty => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Float(f) => display_float(*f),
            Cell::Bool(b) => b.to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::DateTime(dt) => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
            Cell::Error(code) => code.clone(),
        }
    }

    /// [`Cell::display`] cut to at most [`MAX_VALUE_CHARS`] characters: the `value` of an issue.
    pub fn issue_value(&self) -> String {
        let text = self.display();
        if text.chars().count() <= MAX_VALUE_CHARS { text } else { text.chars().take(MAX_VALUE_CHARS).collect() }
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
