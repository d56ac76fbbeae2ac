//! Helpers shared by this module's tests.

use super::{Cell, CompiledFields};
use crate::config::{ExtractSpec, FieldSpec, FieldType};

/// A field with only a name and a type.
pub(crate) fn field(name: &str, field_type: FieldType) -> FieldSpec {
    FieldSpec {
        name: name.to_owned(),
        label: None,
        required: false,
        field_type,
        synonyms: Vec::new(),
        pattern: None,
        min: None,
        max: None,
        allowed_values: None,
    }
}

/// `fields`, compiled.
pub(crate) fn compile(fields: Vec<FieldSpec>) -> CompiledFields {
    CompiledFields::compile(&ExtractSpec { fields, output_format: Default::default() }).expect("a valid configuration")
}

/// A text cell, or [`Cell::Empty`] for `""`.
pub(crate) fn t(text: &str) -> Cell {
    if text.is_empty() { Cell::Empty } else { Cell::Text(text.to_owned()) }
}

/// A row of text cells (`""` → empty).
pub(crate) fn row(texts: &[&str]) -> Vec<Cell> {
    texts.iter().map(|text| t(text)).collect()
}

/// The members configuration of the tests: `member_id` (integer, required, synonym `member`),
/// `name` (label `Full name`), `email` (email, synonym `e-mail address`), `joined` (date).
pub(crate) fn members() -> CompiledFields {
    let mut member_id = field("member_id", FieldType::Integer);
    member_id.required = true;
    member_id.synonyms = vec!["member".to_owned(), "member no".to_owned()];
    let mut name = field("name", FieldType::String);
    name.label = Some("Full name".to_owned());
    let mut email = field("email", FieldType::Email);
    email.synonyms = vec!["e-mail address".to_owned()];
    let joined = field("joined", FieldType::Date);
    compile(vec![member_id, name, email, joined])
}
