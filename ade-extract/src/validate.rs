//! [`validate`]: checks one value against one field and reports the first problem.
//!
//! Values are judged by their [display](Cell::display) text with surrounding whitespace trimmed
//! (typed cells — numbers, booleans, dates — are judged by their type first). Checks run in this
//! order and the first failure is reported:
//!
//! | Code                     | Severity | When                                                            |
//! |--------------------------|----------|-----------------------------------------------------------------|
//! | `missing_required_value` | error    | the field is required and the cell is [blank](Cell::is_blank)    |
//! | `invalid_type`           | error    | the value is not of the field's type (not for `email`), or is a spreadsheet error |
//! | `invalid_email`          | warning  | an `email` field's value is not an e-mail address               |
//! | `pattern_mismatch`       | error    | the text does not match the (anchored) `pattern` as a whole     |
//! | `below_minimum`          | error    | the number (integer/number) or the length in characters (string) is below `min` |
//! | `above_maximum`          | error    | … above `max`                                                   |
//! | `not_allowed_value`      | error    | the text is not exactly (case-sensitive) one of `allowed_values` |
//!
//! A blank value of a field that is not required passes every check.
//!
//! What each type accepts:
//!
//! - `string`: anything that is not a spreadsheet error;
//! - `integer`: [`Cell::Int`], a whole finite [`Cell::Float`] within `i64`, or text that is an
//!   optionally signed run of digits (`"42"`, `"-7"`, `"+3"`; not `"4.0"` nor `"1,000"`);
//! - `number`: [`Cell::Int`], a finite [`Cell::Float`], or text that parses as a finite decimal
//!   number with `.` as the decimal separator (`"3.14"`, `"-2"`, `"1e3"`; not `"1,5"`, `"NaN"`,
//!   `"inf"`);
//! - `date`: [`Cell::Date`], [`Cell::DateTime`], or text in ISO `YYYY-MM-DD` form that names a real
//!   day. Slashed forms (`03/04/2024`) are rejected: day-first and month-first are ambiguous;
//! - `email`: text with exactly one `@`, a non-empty local part, a domain containing a dot that
//!   neither starts nor ends with one nor has two in a row, and no whitespace;
//! - `boolean`: [`Cell::Bool`], [`Cell::Int`] 0 or 1, or text `true`/`false`/`yes`/`no`/`1`/`0`
//!   in any case.

use chrono::NaiveDate;

use super::cell::Cell;
use super::fields::{CompiledField, type_name};
use ade_core::config::FieldType;
use ade_core::event::Severity;

/// A required field's cell is blank (error).
pub const MISSING_REQUIRED_VALUE: &str = "missing_required_value";
/// The value is not of the field's type (error).
pub const INVALID_TYPE: &str = "invalid_type";
/// An `email` field's value is not an e-mail address (warning).
pub const INVALID_EMAIL: &str = "invalid_email";
/// The value does not match the field's pattern (error).
pub const PATTERN_MISMATCH: &str = "pattern_mismatch";
/// The value (or its length, for strings) is below `min` (error).
pub const BELOW_MINIMUM: &str = "below_minimum";
/// The value (or its length, for strings) is above `max` (error).
pub const ABOVE_MAXIMUM: &str = "above_maximum";
/// The value is not one of `allowed_values` (error).
pub const NOT_ALLOWED_VALUE: &str = "not_allowed_value";

/// Checks `value` against `field`; returns the first problem as (severity, code, message), or
/// `None` when the value is fine. See the module docs for the checks and their order.
pub fn validate(value: &Cell, field: &CompiledField) -> Option<(Severity, &'static str, String)> {
    if value.is_blank() {
        return field
            .is_required()
            .then(|| (Severity::Error, MISSING_REQUIRED_VALUE, "a value is required".to_owned()));
    }
    let spec = field.spec();
    let field_type = field.field_type();
    if let Cell::Error(code) = value {
        return Some((
            Severity::Error,
            INVALID_TYPE,
            format!("expected {}, found the spreadsheet error {code}", expected(field_type)),
        ));
    }
    if !parses_as(value, field_type) {
        return Some(if field_type == FieldType::Email {
            (Severity::Warning, INVALID_EMAIL, "not a valid e-mail address".to_owned())
        } else {
            (Severity::Error, INVALID_TYPE, format!("expected {}", expected(field_type)))
        });
    }
    let string_bounds = field_type == FieldType::String && (spec.min.is_some() || spec.max.is_some());
    if field.pattern().is_none() && spec.allowed_values.is_none() && !string_bounds {
        // Only numeric bounds are left, which look at the value, not at its text.
        return check_bounds(value, "", field);
    }
    let text = value.text();
    let text = text.trim();
    if let Some(pattern) = field.pattern()
        && !pattern.is_match(text)
    {
        let source = spec.pattern.as_deref().unwrap_or_default();
        return Some((Severity::Error, PATTERN_MISMATCH, format!("does not match the pattern \"{source}\"")));
    }
    if let Some(problem) = check_bounds(value, text, field) {
        return Some(problem);
    }
    if let Some(allowed) = &spec.allowed_values
        && !allowed.iter().any(|candidate| candidate == text)
    {
        return Some((
            Severity::Error,
            NOT_ALLOWED_VALUE,
            format!("not one of the allowed values: {}", allowed.join(", ")),
        ));
    }
    None
}

fn expected(field_type: FieldType) -> String {
    match field_type {
        FieldType::Integer => "an integer".to_owned(),
        FieldType::Number => "a number".to_owned(),
        FieldType::Date => "a date (YYYY-MM-DD)".to_owned(),
        FieldType::Email => "an e-mail address".to_owned(),
        FieldType::Boolean => "a boolean (true/false, yes/no, 1/0)".to_owned(),
        other => format!("a {}", type_name(other)),
    }
}

fn check_bounds(value: &Cell, text: &str, field: &CompiledField) -> Option<(Severity, &'static str, String)> {
    let spec = field.spec();
    let (measure, what) = match field.field_type() {
        FieldType::Integer | FieldType::Number => (as_number(value)?, "the value"),
        FieldType::String => (text.chars().count() as f64, "the length"),
        _ => return None,
    };
    if let Some(min) = spec.min
        && measure < min
    {
        return Some((Severity::Error, BELOW_MINIMUM, format!("{what} {measure} is below the minimum {min}")));
    }
    if let Some(max) = spec.max
        && measure > max
    {
        return Some((Severity::Error, ABOVE_MAXIMUM, format!("{what} {measure} is above the maximum {max}")));
    }
    None
}

/// Whether a non-blank `cell` is a value of `field_type` (see the module docs).
pub(crate) fn parses_as(cell: &Cell, field_type: FieldType) -> bool {
    match field_type {
        FieldType::Integer => as_integer(cell).is_some(),
        FieldType::Number => as_number(cell).is_some(),
        FieldType::Date => is_date(cell),
        FieldType::Email => matches!(cell, Cell::Text(text) if is_email(text.trim())),
        FieldType::Boolean => as_bool(cell).is_some(),
        _ => !matches!(cell, Cell::Error(_)) && !cell.is_blank(),
    }
}

/// The largest magnitude below which every whole `f64` converts to `i64` exactly: 2^63.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

fn as_integer(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(n) => Some(*n),
        Cell::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < I64_LIMIT => Some(*f as i64),
        Cell::Text(text) => {
            let text = text.trim();
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        }
        _ => None,
    }
}

fn as_number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Int(n) => Some(*n as f64),
        Cell::Float(f) if f.is_finite() => Some(*f),
        Cell::Text(text) => {
            let text = text.trim();
            let plain = text.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            if !plain || !text.bytes().any(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse::<f64>().ok().filter(|f| f.is_finite())
        }
        _ => None,
    }
}

fn as_bool(cell: &Cell) -> Option<bool> {
    match cell {
        Cell::Bool(b) => Some(*b),
        Cell::Int(0) => Some(false),
        Cell::Int(1) => Some(true),
        Cell::Text(text) => match text.trim().to_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn is_date(cell: &Cell) -> bool {
    match cell {
        Cell::Date(_) | Cell::DateTime(_) => true,
        Cell::Text(text) => {
            let text = text.trim();
            let shape = text.len() == 10
                && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
            shape && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        }
        _ => false,
    }
}

fn is_email(text: &str) -> bool {
    if text.chars().any(char::is_whitespace) {
        return false;
    }
    let mut parts = text.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CompiledFields;
    use ade_core::config::{ExtractSpec, FieldSpec};

    fn compiled(edit: impl FnOnce(&mut FieldSpec)) -> CompiledField {
        let mut spec = FieldSpec::new("f");
        edit(&mut spec);
        let fields = CompiledFields::compile(&ExtractSpec { fields: vec![spec], output_format: Default::default() })
            .expect("a valid field");
        fields.get(0).cloned().expect("one field")
    }

    fn typed(field_type: FieldType) -> CompiledField {
        compiled(|f| f.field_type = field_type)
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }

    fn code(value: &Cell, field: &CompiledField) -> Option<&'static str> {
        validate(value, field).map(|(_, code, _)| code)
    }

    #[test]
    fn missing_required_value() {
        let field = compiled(|f| f.required = true);
        let (severity, found, _) = validate(&Cell::Empty, &field).expect("a problem");
        assert_eq!((severity, found), (Severity::Error, MISSING_REQUIRED_VALUE));
        assert_eq!(code(&text("  "), &field), Some(MISSING_REQUIRED_VALUE));
        assert_eq!(code(&text("x"), &field), None);
    }

    #[test]
    fn blank_optional_values_pass_every_check() {
        let field = compiled(|f| {
            f.field_type = FieldType::Integer;
            f.pattern = Some("[0-9]+".to_owned());
            f.min = Some(1.0);
            f.allowed_values = Some(vec!["5".to_owned()]);
        });
        assert_eq!(validate(&Cell::Empty, &field), None);
        assert_eq!(validate(&text(" "), &field), None);
    }

    #[test]
    fn integers() {
        let field = typed(FieldType::Integer);
        for ok in [Cell::Int(-3), Cell::Float(42.0), text("42"), text(" -7 "), text("+3")] {
            assert_eq!(code(&ok, &field), None, "{ok:?}");
        }
        for bad in [
            Cell::Float(4.5),
            Cell::Float(f64::NAN),
            Cell::Float(1e300),
            text("4.0"),
            text("1,000"),
            text("-"),
            text("12a"),
            text("99999999999999999999"),
            Cell::Bool(true),
        ] {
            assert_eq!(code(&bad, &field), Some(INVALID_TYPE), "{bad:?}");
        }
        let (severity, _, message) = validate(&text("x"), &field).expect("a problem");
        assert_eq!(severity, Severity::Error);
        assert_eq!(message, "expected an integer");
    }

    #[test]
    fn numbers() {
        let field = typed(FieldType::Number);
        for ok in [Cell::Int(1), Cell::Float(2.5), text("3.14"), text("-2"), text("1e3"), text(".5")] {
            assert_eq!(code(&ok, &field), None, "{ok:?}");
        }
        for bad in [text("1,5"), text("NaN"), text("inf"), text("e"), text("."), text("1.2.3")] {
            assert_eq!(code(&bad, &field), Some(INVALID_TYPE), "{bad:?}");
        }
        assert_eq!(validate(&text("abc"), &field).map(|(_, _, m)| m).as_deref(), Some("expected a number"));
    }

    #[test]
    fn booleans() {
        let field = typed(FieldType::Boolean);
        for ok in [Cell::Bool(false), Cell::Int(1), Cell::Int(0), text("TRUE"), text("no"), text(" Yes "), text("0")] {
            assert_eq!(code(&ok, &field), None, "{ok:?}");
        }
        for bad in [Cell::Int(2), text("y"), text("maybe"), Cell::Float(0.5)] {
            assert_eq!(code(&bad, &field), Some(INVALID_TYPE), "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        let field = typed(FieldType::Date);
        let day = NaiveDate::from_ymd_opt(2024, 2, 29).expect("a leap day");
        let at = day.and_hms_opt(8, 0, 0).expect("a time");
        for ok in [Cell::Date(day), Cell::DateTime(at), text("2024-02-29"), text(" 2024-12-31 ")] {
            assert_eq!(code(&ok, &field), None, "{ok:?}");
        }
        for bad in [
            text("2023-02-29"),
            text("2024-13-01"),
            text("2024-1-5"),
            text("03/04/2024"),
            text("2024-01-01T00:00:00"),
            Cell::Int(45000),
        ] {
            assert_eq!(code(&bad, &field), Some(INVALID_TYPE), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_warnings() {
        let field = typed(FieldType::Email);
        for ok in ["a@b.co", " first.last+tag@mail.example.org "] {
            assert_eq!(code(&text(ok), &field), None, "{ok}");
        }
        for bad in ["ab.co", "@b.co", "a@b", "a@@b.co", "a@b@c.co", "a b@c.co", "a@.b.co", "a@b.", "a@b..co"] {
            let (severity, found, _) = validate(&text(bad), &field).expect("a problem");
            assert_eq!((severity, found), (Severity::Warning, INVALID_EMAIL), "{bad}");
        }
        assert_eq!(code(&Cell::Int(3), &field), Some(INVALID_EMAIL));
    }

    #[test]
    fn spreadsheet_errors_are_invalid_for_every_type() {
        for field_type in [FieldType::String, FieldType::Email, FieldType::Number] {
            let (_, found, message) =
                validate(&Cell::Error("#DIV/0!".to_owned()), &typed(field_type)).expect("a problem");
            assert_eq!(found, INVALID_TYPE);
            assert!(message.contains("#DIV/0!"), "{message}");
        }
    }

    #[test]
    fn pattern_must_match_the_whole_value() {
        let field = compiled(|f| f.pattern = Some("[A-Z]{2}[0-9]+".to_owned()));
        assert_eq!(code(&text("AB12"), &field), None);
        assert_eq!(code(&text(" AB12 "), &field), None, "surrounding whitespace is trimmed");
        assert_eq!(code(&text("AB12x"), &field), Some(PATTERN_MISMATCH));
        assert_eq!(code(&text("xAB12"), &field), Some(PATTERN_MISMATCH));
        let numeric = compiled(|f| {
            f.field_type = FieldType::Integer;
            f.pattern = Some("[0-9]{3}".to_owned());
        });
        assert_eq!(code(&Cell::Float(123.0), &numeric), None, "typed cells match their display");
        assert_eq!(code(&Cell::Int(12), &numeric), Some(PATTERN_MISMATCH));
    }

    #[test]
    fn numeric_bounds() {
        let field = compiled(|f| {
            f.field_type = FieldType::Number;
            f.min = Some(0.0);
            f.max = Some(10.0);
        });
        assert_eq!(code(&Cell::Int(0), &field), None);
        assert_eq!(code(&text("10"), &field), None);
        let (_, found, message) = validate(&text("-0.5"), &field).expect("a problem");
        assert_eq!(found, BELOW_MINIMUM);
        assert_eq!(message, "the value -0.5 is below the minimum 0");
        assert_eq!(code(&Cell::Float(10.5), &field), Some(ABOVE_MAXIMUM));
        let integer = compiled(|f| {
            f.field_type = FieldType::Integer;
            f.max = Some(5.0);
        });
        assert_eq!(code(&text("6"), &integer), Some(ABOVE_MAXIMUM));
        assert_eq!(code(&text("5"), &integer), None);
    }

    #[test]
    fn string_length_bounds() {
        let field = compiled(|f| {
            f.min = Some(2.0);
            f.max = Some(3.0);
        });
        assert_eq!(code(&text("ab"), &field), None);
        assert_eq!(code(&text("été"), &field), None, "characters, not bytes");
        let (_, below, message) = validate(&text("a"), &field).expect("a problem");
        assert_eq!(below, BELOW_MINIMUM);
        assert_eq!(message, "the length 1 is below the minimum 2");
        assert_eq!(code(&text("abcd"), &field), Some(ABOVE_MAXIMUM));
        assert_eq!(code(&Cell::Int(1234), &field), Some(ABOVE_MAXIMUM), "display length");
    }

    #[test]
    fn allowed_values_are_exact() {
        let field = compiled(|f| f.allowed_values = Some(vec!["gold".to_owned(), "silver".to_owned()]));
        assert_eq!(code(&text("gold"), &field), None);
        assert_eq!(code(&text(" silver "), &field), None);
        let (severity, found, message) = validate(&text("Gold"), &field).expect("a problem");
        assert_eq!((severity, found), (Severity::Error, NOT_ALLOWED_VALUE));
        assert_eq!(message, "not one of the allowed values: gold, silver");
        let numeric = compiled(|f| {
            f.field_type = FieldType::Integer;
            f.allowed_values = Some(vec!["1".to_owned(), "2".to_owned()]);
        });
        assert_eq!(code(&Cell::Float(2.0), &numeric), None);
        assert_eq!(code(&Cell::Int(3), &numeric), Some(NOT_ALLOWED_VALUE));
    }

    #[test]
    fn first_problem_only() {
        let field = compiled(|f| {
            f.field_type = FieldType::Integer;
            f.pattern = Some("[0-9]".to_owned());
            f.max = Some(5.0);
        });
        assert_eq!(code(&text("x"), &field), Some(INVALID_TYPE));
        assert_eq!(code(&text("77"), &field), Some(PATTERN_MISMATCH));
        assert_eq!(code(&text("7"), &field), Some(ABOVE_MAXIMUM));
    }
}
