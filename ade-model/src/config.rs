//! Configurations (SPEC §8.3, §10): what a run executes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::event::ConfigurationId;
use crate::run::Extra;

/// Fields an `extract` configuration may have unless the runtime is told otherwise
/// (`ade_core::RuntimeBuilder::max_configuration_fields`).
/// Every run's summary lists each field (`breakdowns.by_field`), and `run.completed` carries the
/// summary in one event of at most 1 MiB: at this many fields the list fits whole within its
/// bound ([`MAX_BY_FIELD_BYTES`](crate::summary::bounds::MAX_BY_FIELD_BYTES)) unless the fields
/// have very long names or many distinct issue codes; past the bound it is cut and marked.
pub const DEFAULT_MAX_FIELDS: usize = 1_000;

/// A configuration: an id, a version, and what engine runs it.
// Its JSON Schema is a `oneOf` of one whole object per kind of engine, each with the common fields
// (see `configuration_schema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = configuration_schema)]
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

    /// The run timeout.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_s.unwrap_or(Self::DEFAULT_TIMEOUT_S))
    }

    /// Refuses a configuration with more than `max_fields` fields (see [`DEFAULT_MAX_FIELDS`]);
    /// the error says why, naming the limit.
    ///
    /// # Errors
    /// The reason, for an [`Error::Config`].
    pub fn check_field_count(&self, max_fields: usize) -> std::result::Result<(), String> {
        match &self.engine {
            EngineSpec::Extract(spec) if spec.fields.len() > max_fields => Err(format!(
                "it has {} fields, over the limit of {max_fields} fields per configuration \
                 (the setting max_configuration_fields; ade-server --max-configuration-fields), \
                 which keeps each run's summary within the 1 MiB event limit",
                spec.fields.len()
            )),
            _ => Ok(()),
        }
    }

    /// Reads one configuration file; a `process` configuration's commands run in its directory.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read or is not a configuration.
    pub fn from_file(path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::Config { path: path.to_owned(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let mut configuration: Self = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if let EngineSpec::Process(spec) = &mut configuration.engine {
            if spec.command.is_empty() {
                return Err(invalid("`command` must name a program".to_owned()));
            }
            spec.source_dir = path.parent().map(Path::to_path_buf);
        }
        Ok(configuration)
    }

    /// Reads every `*.json` file of a directory, sorted by file name; none may have more than
    /// `max_fields` fields (see [`check_field_count`](Self::check_field_count)).
    ///
    /// # Errors
    /// [`Error::Config`] for the first file that is not a configuration or is over the limit, or
    /// when two files share an id; [`Error::Io`] when the directory cannot be read.
    pub fn load_dir(dir: &Path, max_fields: usize) -> Result<Vec<Self>> {
        let entries =
            std::fs::read_dir(dir).map_err(|source| Error::Io { action: "read", path: dir.to_owned(), source })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json") && path.is_file())
            .collect();
        paths.sort();
        let mut configurations: Vec<Self> = Vec::with_capacity(paths.len());
        for path in paths {
            let configuration = Self::from_file(&path)?;
            if let Err(reason) = configuration.check_field_count(max_fields) {
                return Err(Error::Config { path, reason });
            }
            if configurations.iter().any(|c| c.id == configuration.id) {
                return Err(Error::Config {
                    path,
                    reason: format!("a second configuration with id {:?}", configuration.id.as_str()),
                });
            }
            configurations.push(configuration);
        }
        Ok(configurations)
    }
}

/// Which engine runs a configuration, with its settings; the JSON field `engine` names it.
///
/// `extract` and `process` are ade's own engines; any other name selects an engine registered with
/// the runtime by an embedding application, and its other fields are kept as its settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineSpec {
    /// The reference spreadsheet engine.
    Extract(ExtractSpec),
    /// A command that speaks the subprocess wire (SPEC §8.2).
    Process(ProcessSpec),
    /// An engine registered by the embedding application under `engine`.
    Custom {
        /// The engine's name.
        engine: String,
        /// The configuration's other fields, as written.
        settings: Extra,
    },
}

impl EngineSpec {
    /// The engine's name: `extract`, `process`, or a custom one.
    pub fn engine_name(&self) -> &str {
        match self {
            Self::Extract(_) => "extract",
            Self::Process(_) => "process",
            Self::Custom { engine, .. } => engine,
        }
    }
}

impl Serialize for EngineSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut map = match self {
            Self::Extract(spec) => to_object(spec).map_err(S::Error::custom)?,
            Self::Process(spec) => to_object(spec).map_err(S::Error::custom)?,
            Self::Custom { settings, .. } => settings.clone(),
        };
        map.insert("engine".to_owned(), self.engine_name().into());
        map.serialize(serializer)
    }
}

fn to_object<T: Serialize>(value: &T) -> Result<Extra, serde_json::Error> {
    match serde_json::to_value(value)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(serde::ser::Error::custom("engine settings must be an object")),
    }
}

impl<'de> Deserialize<'de> for EngineSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = Extra::deserialize(deserializer)?;
        let engine = match map.remove("engine") {
            Some(serde_json::Value::String(engine)) => engine,
            Some(_) => return Err(D::Error::custom("`engine` must be a string")),
            None => return Err(D::Error::missing_field("engine")),
        };
        let settings = serde_json::Value::Object(map);
        match engine.as_str() {
            "extract" => serde_json::from_value(settings).map(Self::Extract).map_err(D::Error::custom),
            "process" => serde_json::from_value(settings).map(Self::Process).map_err(D::Error::custom),
            "" => Err(D::Error::custom("`engine` must not be empty")),
            _ => match settings {
                serde_json::Value::Object(settings) => Ok(Self::Custom { engine, settings }),
                _ => Err(D::Error::custom("engine settings must be an object")),
            },
        }
    }
}

impl JsonSchema for EngineSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EngineSpec".into()
    }

    /// One whole object per engine, `engine` included: the built-in engines' settings are closed
    /// (`additionalProperties: false`, as serde denies unknown fields), a custom engine's are open.
    /// [`Configuration`]'s schema adds the common fields to each (see [`configuration_schema`]).
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let with_engine = |name: &str, mut spec: schemars::Schema| {
            if let Some(properties) = spec.ensure_object().get_mut("properties").and_then(Value::as_object_mut) {
                properties.insert("engine".to_owned(), json!({ "const": name }));
            }
            let required = spec.ensure_object().entry("required").or_insert_with(|| json!([]));
            if let Value::Array(required) = required {
                required.insert(0, json!("engine"));
            }
            spec
        };
        schemars::json_schema!({
            "description": "The engine (`engine`) and its settings.",
            "oneOf": [
                with_engine("extract", ExtractSpec::json_schema(generator)),
                with_engine("process", ProcessSpec::json_schema(generator)),
                {
                    "description": "An engine registered by the embedding application; other fields are its settings.",
                    "type": "object",
                    "properties": {
                        "engine": {
                            "description": "The registered engine's name: any but `extract` and `process`.",
                            "type": "string",
                            "minLength": 1,
                            "not": { "enum": ["extract", "process"] },
                        },
                    },
                    "required": ["engine"],
                    "additionalProperties": true,
                },
            ]
        })
    }
}

/// The title, description, and whether unknown fields are refused, of each of [`Configuration`]'s
/// `oneOf` branches, in [`EngineSpec`]'s order. [`ExtractSpec`] and [`ProcessSpec`] deny unknown
/// fields; a custom engine's other fields are its settings.
const CONFIGURATION_BRANCHES: [(&str, &str, bool); 3] = [
    ("ExtractConfiguration", "A configuration of the reference spreadsheet engine `extract` (SPEC §10).", true),
    (
        "ProcessConfiguration",
        "A configuration of the `process` engine: a command that speaks the subprocess wire (SPEC §8.2).",
        true,
    ),
    (
        "CustomEngineConfiguration",
        "A configuration of an engine registered by the embedding application; its other fields are the engine's settings.",
        false,
    ),
];

/// Turns the derived schema of [`Configuration`] (its common fields beside the flattened
/// [`EngineSpec`]'s `oneOf`) into a `oneOf` of three whole objects, each with the common fields:
/// a branch with `additionalProperties: false` must list every field it allows, or `id` and
/// `version` would count as unknown. (schemars drops `additionalProperties: false` from a flattened
/// schema's branches, so it is set here again.)
fn configuration_schema(schema: &mut schemars::Schema) {
    let root = schema.ensure_object();
    let common = match root.remove("properties") {
        Some(Value::Object(properties)) => properties,
        _ => Map::new(),
    };
    let common_required = match root.remove("required") {
        Some(Value::Array(required)) => required,
        _ => Vec::new(),
    };
    root.remove("type");
    let Some(Value::Array(branches)) = root.get_mut("oneOf") else { return };
    for (branch, (title, description, closed)) in branches.iter_mut().zip(CONFIGURATION_BRANCHES) {
        let Value::Object(branch) = branch else { continue };
        let mut properties = common.clone();
        if let Some(Value::Object(own)) = branch.remove("properties") {
            properties.extend(own);
        }
        let mut required = common_required.clone();
        if let Some(Value::Array(own)) = branch.remove("required") {
            required.extend(own);
        }
        let mut whole = Map::new();
        whole.insert("title".to_owned(), json!(title));
        whole.insert("description".to_owned(), json!(description));
        whole.insert("type".to_owned(), json!("object"));
        whole.insert("properties".to_owned(), Value::Object(properties));
        whole.insert("required".to_owned(), Value::Array(required));
        whole.insert("additionalProperties".to_owned(), json!(!closed));
        *branch = whole;
    }
}

/// Settings of the `extract` engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
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

impl FieldSpec {
    /// An optional `string` field named `name`, with no other rule.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            label: None,
            required: false,
            field_type: FieldType::String,
            synonyms: Vec::new(),
            pattern: None,
            min: None,
            max: None,
            allowed_values: None,
        }
    }
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

impl FieldType {
    /// The spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Date => "date",
            Self::Email => "email",
            Self::Boolean => "boolean",
        }
    }
}

/// Settings of the `process` engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// The engine's command line (argv); the first item is the program.
    pub command: Vec<String>,
    /// Build commands, run in order; each is an argv.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Vec<String>>,
    /// Extra environment for the build and engine commands.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The directory the configuration was loaded from: the commands' working directory, so a
    /// configuration can ship its script beside it. Not part of the JSON.
    #[serde(skip)]
    #[schemars(skip)]
    pub source_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_directory_with_too_many_fields_is_refused_naming_the_file_and_the_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fields: Vec<_> = (0..=DEFAULT_MAX_FIELDS).map(|i| serde_json::json!({ "name": format!("f{i}") })).collect();
        let wide = serde_json::json!({ "id": "wide", "version": "1", "engine": "extract", "fields": fields });
        std::fs::write(dir.path().join("wide.json"), wide.to_string()).expect("write");
        let Err(Error::Config { path, reason }) = Configuration::load_dir(dir.path(), DEFAULT_MAX_FIELDS) else {
            panic!("{DEFAULT_MAX_FIELDS} + 1 fields are refused")
        };
        assert_eq!(path, dir.path().join("wide.json"));
        assert!(reason.contains("1001 fields, over the limit of 1000 fields"), "{reason}");
        let loaded = Configuration::load_dir(dir.path(), DEFAULT_MAX_FIELDS + 1).expect("within a raised limit");
        assert_eq!(loaded.len(), 1);
    }

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
        let custom: Configuration =
            serde_json::from_value(serde_json::json!({"id": "x", "version": "1", "engine": "magic", "speed": 3}))
                .expect("custom engine");
        assert!(
            matches!(&custom.engine, EngineSpec::Custom { engine, settings } if engine == "magic" && settings["speed"] == 3)
        );
        assert_eq!(
            serde_json::to_value(&custom).ok().and_then(|v| v.get("speed").cloned()),
            Some(serde_json::json!(3))
        );
        let top_level_typo = serde_json::json!({"id": "x", "version": "1", "engine": "process", "comand": ["true"]});
        assert!(serde_json::from_value::<Configuration>(top_level_typo).is_err());
        let no_engine = serde_json::json!({"id": "x", "version": "1"});
        assert!(serde_json::from_value::<Configuration>(no_engine).is_err());
    }
}
