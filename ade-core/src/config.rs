//! Configurations (SPEC §8.3, §10): what a run executes.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::ConfigurationId;

/// A configuration: an id, a version, and what engine runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Configuration {
    /// The configuration's id.
    pub id: ConfigurationId,
    /// The author's version of it (reported as `config_version`).
    pub version: String,
    /// What it is for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Run timeout in seconds (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// The engine and its settings.
    #[serde(flatten)]
    pub engine: EngineSpec,
}

impl Configuration {
    /// The run timeout when a configuration sets none: one hour.
    pub const DEFAULT_TIMEOUT_S: u64 = 3600;
}

/// Which engine runs a configuration, with its settings; the JSON field `engine` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "engine", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EngineSpec {
    /// The reference spreadsheet engine.
    Extract(ExtractSpec),
    /// A command that speaks the subprocess wire (SPEC §8.2).
    Process(ProcessSpec),
}

/// Settings of the `extract` engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExtractSpec {
    /// The canonical fields, in output order.
    pub fields: Vec<FieldSpec>,
    /// Format of the normalized output.
    #[serde(default)]
    pub output_format: OutputFormat,
}

/// Format of the `extract` engine's normalized output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutputFormat {
    /// A workbook with sheets `normalized` and `issues`.
    #[default]
    Xlsx,
    /// `normalized.csv` and `issues.csv`.
    Csv,
}

/// One canonical field of an `extract` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The field's name, used in outputs and issues.
    pub name: String,
    /// A label for people; also matched against headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Whether every row needs a value.
    #[serde(default)]
    pub required: bool,
    /// The type values must have.
    #[serde(default, rename = "type")]
    pub field_type: FieldType,
    /// Other headers that mean this field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
    /// A regular expression values must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Smallest allowed number (or length, for strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed number (or length, for strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The only values allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
}

/// The type of a field's values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldType {
    /// Any text.
    #[default]
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// A calendar date.
    Date,
    /// An e-mail address.
    Email,
    /// True or false.
    Boolean,
}

/// Settings of the `process` engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessSpec {
    /// The engine's command line (argv); the first item is the program.
    pub command: Vec<String>,
    /// Build commands, run in order; each is an argv.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Vec<String>>,
    /// Extra environment for the build and engine commands.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_engines_and_rejects_typos() {
        let extract: Configuration = serde_json::from_value(serde_json::json!({
            "id": "members", "version": "1", "engine": "extract",
            "fields": [{"name": "email", "type": "email", "required": true, "synonyms": ["E-mail"]}]
        }))
        .expect("extract configuration");
        let EngineSpec::Extract(spec) = &extract.engine else { panic!("not extract: {extract:?}") };
        assert_eq!(spec.fields[0].field_type, FieldType::Email);
        assert_eq!(spec.output_format, OutputFormat::Xlsx);

        let process: Configuration = serde_json::from_value(serde_json::json!({
            "id": "script", "version": "2", "engine": "process", "timeout_s": 5,
            "command": ["python3", "engine.py"], "build": [["true"]]
        }))
        .expect("process configuration");
        assert!(matches!(process.engine, EngineSpec::Process(ref p) if p.command.len() == 2));

        let typo = serde_json::json!({
            "id": "members", "version": "1", "engine": "extract",
            "fields": [{"name": "email", "requried": true}]
        });
        assert!(serde_json::from_value::<Configuration>(typo).is_err());
        let unknown_engine = serde_json::json!({"id": "x", "version": "1", "engine": "magic"});
        assert!(serde_json::from_value::<Configuration>(unknown_engine).is_err());
    }
}
