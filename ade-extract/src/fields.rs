//! [`CompiledFields`]: an `extract` configuration's fields, checked once and ready to match
//! headers and validate values.
//!
//! Checks made by [`CompiledFields::compile`], each failing with a [`FieldError`] naming the field:
//!
//! - at least one field;
//! - every name is non-empty (after trimming) and names are unique (exact comparison);
//! - `pattern` compiles; it is anchored (`^(?:pattern)$`), so the whole value must match;
//! - `min` and `max` are finite, `min <= max`, and only set on `integer` and `number` fields
//!   (compared with the value) or `string` fields (compared with the value's length in
//!   characters); `date`, `email` and `boolean` fields reject them;
//! - `allowed_values`, when present, is non-empty.
//!
//! Each field keeps its *match keys*: its name, label and synonyms [normalized](normalize)
//! (lowercase, every non-alphanumeric character removed), without duplicates or empty keys.

use std::fmt;

use regex::Regex;

use ade_core::config::{ExtractSpec, FieldSpec, FieldType};

/// A configuration field that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// The field's name; `""` when the problem is not about one field (no fields at all) or the
    /// name itself is empty.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "field '{}': {}", self.field, self.message)
        }
    }
}

/// Lowercases `text` and removes every non-alphanumeric character: `E-mail` → `email`,
/// `Member #` → `member`.
pub fn normalize(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The lowercase alphanumeric words of `text`: `First name` → `["first", "name"]`.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    let mut words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).map(str::to_lowercase).collect();
    words.sort();
    words.dedup();
    words
}

/// One match key of a field: its normalized text and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchKey {
    /// [`normalize`]d text.
    pub(crate) normalized: String,
    /// The characters of `normalized`.
    pub(crate) chars: Vec<char>,
    /// [`tokens`] of the original text.
    pub(crate) tokens: Vec<String>,
}

/// One checked field.
#[derive(Debug, Clone)]
pub struct CompiledField {
    spec: FieldSpec,
    keys: Vec<MatchKey>,
    pattern: Option<Regex>,
}

impl CompiledField {
    /// The field's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The field as configured.
    pub fn spec(&self) -> &FieldSpec {
        &self.spec
    }

    /// The type its values must have.
    pub fn field_type(&self) -> FieldType {
        self.spec.field_type
    }

    /// Whether every row needs a value.
    pub fn is_required(&self) -> bool {
        self.spec.required
    }

    /// The anchored pattern values must match, if any.
    pub fn pattern(&self) -> Option<&Regex> {
        self.pattern.as_ref()
    }

    /// The normalized match keys (name, label, synonyms), in that order, without duplicates.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.normalized.as_str())
    }

    pub(crate) fn match_keys(&self) -> &[MatchKey] {
        &self.keys
    }
}

/// The fields of an `extract` configuration, in configuration order, all checked.
#[derive(Debug, Clone)]
pub struct CompiledFields {
    fields: Vec<CompiledField>,
}

impl CompiledFields {
    /// Checks `spec`'s fields (see the module docs) and prepares them.
    pub fn compile(spec: &ExtractSpec) -> Result<CompiledFields, FieldError> {
        if spec.fields.is_empty() {
            return Err(FieldError {
                field: String::new(),
                message: "an extract configuration needs at least one field".to_owned(),
            });
        }
        let mut fields: Vec<CompiledField> = Vec::with_capacity(spec.fields.len());
        for (index, field) in spec.fields.iter().enumerate() {
            if field.name.trim().is_empty() {
                return Err(FieldError {
                    field: String::new(),
                    message: format!("field #{} has an empty name", index + 1),
                });
            }
            if fields.iter().any(|seen| seen.spec.name == field.name) {
                return Err(error(field, "the name is used by another field".to_owned()));
            }
            fields.push(compile_field(field)?);
        }
        Ok(CompiledFields { fields })
    }

    /// The fields, in configuration order.
    pub fn as_slice(&self) -> &[CompiledField] {
        &self.fields
    }

    /// The fields, in configuration order.
    pub fn iter(&self) -> std::slice::Iter<'_, CompiledField> {
        self.fields.iter()
    }

    /// The field at `index` (configuration order).
    pub fn get(&self, index: usize) -> Option<&CompiledField> {
        self.fields.get(index)
    }

    /// How many fields there are (at least one).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Always false: compiling rejects configurations without fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl<'a> IntoIterator for &'a CompiledFields {
    type Item = &'a CompiledField;
    type IntoIter = std::slice::Iter<'a, CompiledField>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// The configuration's name of a field type: `string`, `integer`, …
pub(crate) fn type_name(field_type: FieldType) -> &'static str {
    field_type.as_str()
}

fn error(field: &FieldSpec, message: String) -> FieldError {
    FieldError { field: field.name.clone(), message }
}

fn compile_field(field: &FieldSpec) -> Result<CompiledField, FieldError> {
    let pattern = match &field.pattern {
        None => None,
        Some(pattern) => match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => Some(regex),
            Err(err) => {
                return Err(error(field, format!("pattern \"{pattern}\" is not a valid regular expression: {err}")));
            }
        },
    };
    check_bounds(field)?;
    if field.allowed_values.as_ref().is_some_and(Vec::is_empty) {
        return Err(error(field, "allowed_values must not be empty".to_owned()));
    }
    let mut keys: Vec<MatchKey> = Vec::new();
    let texts = std::iter::once(field.name.as_str())
        .chain(field.label.as_deref())
        .chain(field.synonyms.iter().map(String::as_str));
    for text in texts {
        let normalized = normalize(text);
        if !normalized.is_empty() && !keys.iter().any(|key| key.normalized == normalized) {
            keys.push(MatchKey { chars: normalized.chars().collect(), normalized, tokens: tokens(text) });
        }
    }
    Ok(CompiledField { spec: field.clone(), keys, pattern })
}

fn check_bounds(field: &FieldSpec) -> Result<(), FieldError> {
    if field.min.is_none() && field.max.is_none() {
        return Ok(());
    }
    match field.field_type {
        FieldType::Integer | FieldType::Number | FieldType::String => {}
        other => {
            let name = type_name(other);
            return Err(error(
                field,
                format!("min/max apply only to integer, number and string (length) fields, not {name}"),
            ));
        }
    }
    for (what, bound) in [("min", field.min), ("max", field.max)] {
        if let Some(value) = bound
            && !value.is_finite()
        {
            return Err(error(field, format!("{what} must be a finite number")));
        }
    }
    if let (Some(min), Some(max)) = (field.min, field.max)
        && min > max
    {
        return Err(error(field, format!("min ({min}) is greater than max ({max})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> FieldSpec {
        FieldSpec::new(name)
    }

    fn spec(fields: Vec<FieldSpec>) -> ExtractSpec {
        ExtractSpec { fields, output_format: Default::default() }
    }

    fn compile_err(fields: Vec<FieldSpec>) -> FieldError {
        CompiledFields::compile(&spec(fields)).expect_err("the configuration is invalid")
    }

    #[test]
    fn normalizes_keys() {
        assert_eq!(normalize("E-mail"), "email");
        assert_eq!(normalize(" EMAIL "), "email");
        assert_eq!(normalize("Member #"), "member");
        assert_eq!(normalize("Date of Birth"), "dateofbirth");
        assert_eq!(tokens("First  name/Last"), vec!["first", "last", "name"]);
    }

    #[test]
    fn keeps_name_label_and_synonym_keys_without_duplicates() {
        let mut member = field("member_id");
        member.label = Some("Member ID".to_owned());
        member.synonyms = vec!["Member #".to_owned(), "member-id".to_owned(), "#".to_owned()];
        let compiled = CompiledFields::compile(&spec(vec![member])).expect("valid");
        assert_eq!(compiled.len(), 1);
        assert!(!compiled.is_empty());
        let first = compiled.get(0).expect("one field");
        assert_eq!(first.keys().collect::<Vec<_>>(), vec!["memberid", "member"]);
        assert_eq!(first.name(), "member_id");
        assert!(compiled.get(1).is_none());
    }

    #[test]
    fn pattern_is_anchored() {
        let mut code = field("code");
        code.pattern = Some("[A-Z]{3}".to_owned());
        let compiled = CompiledFields::compile(&spec(vec![code])).expect("valid");
        let regex = compiled.get(0).and_then(CompiledField::pattern).expect("a pattern");
        assert!(regex.is_match("ABC"));
        assert!(!regex.is_match("xABC"));
        assert!(!regex.is_match("ABCD"));
    }

    #[test]
    fn needs_at_least_one_field() {
        let err = compile_err(Vec::new());
        assert_eq!(err.field, "");
        assert!(err.to_string().contains("at least one field"), "{err}");
    }

    #[test]
    fn empty_name_is_rejected() {
        let err = compile_err(vec![field("a"), field("  ")]);
        assert!(err.to_string().contains("field #2"), "{err}");
    }

    #[test]
    fn duplicate_name_names_the_field() {
        let err = compile_err(vec![field("email"), field("email")]);
        assert_eq!(err.field, "email");
        assert!(err.to_string().starts_with("field 'email': "), "{err}");
    }

    #[test]
    fn bad_pattern_names_the_field() {
        let mut email = field("email");
        email.pattern = Some("([a-z".to_owned());
        let err = compile_err(vec![email]);
        assert!(
            err.to_string().starts_with("field 'email': pattern \"([a-z\" is not a valid regular expression: "),
            "{err}"
        );
    }

    #[test]
    fn min_above_max_names_the_field() {
        let mut age = field("age");
        age.field_type = FieldType::Integer;
        age.min = Some(10.0);
        age.max = Some(5.0);
        let err = compile_err(vec![age]);
        assert_eq!(err.to_string(), "field 'age': min (10) is greater than max (5)");
    }

    #[test]
    fn non_finite_bound_names_the_field() {
        let mut age = field("age");
        age.field_type = FieldType::Number;
        age.max = Some(f64::NAN);
        let err = compile_err(vec![age]);
        assert_eq!(err.to_string(), "field 'age': max must be a finite number");
    }

    #[test]
    fn bounds_on_other_types_name_the_field() {
        let mut born = field("born");
        born.field_type = FieldType::Date;
        born.min = Some(0.0);
        let err = compile_err(vec![born]);
        assert_eq!(err.field, "born");
        assert!(err.message.contains("not date"), "{err}");
        let mut name = field("name");
        name.min = Some(1.0);
        name.max = Some(1.0);
        CompiledFields::compile(&spec(vec![name])).expect("string lengths may be bounded");
    }

    #[test]
    fn empty_allowed_values_names_the_field() {
        let mut status = field("status");
        status.allowed_values = Some(Vec::new());
        let err = compile_err(vec![status]);
        assert_eq!(err.to_string(), "field 'status': allowed_values must not be empty");
    }
}
