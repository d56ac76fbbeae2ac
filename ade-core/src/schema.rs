//! JSON Schema export (schemars, draft 2020-12) of everything in `schemas/`.
//!
//! [`generate`] returns every file as `(relative path, JSON text)`; the repository's staleness test
//! compares them with the committed files, and `UPDATE_SCHEMAS=1 cargo test --test it schemas`
//! rewrites them.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::config::Configuration;
use crate::event::{BuildId, ConfigurationId, EventId, EventSource, RunId, Timestamp, WorkspaceId, catalog_schemas};
use crate::run::Run;
use crate::summary::RunSummary;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The pattern of extension event types.
pub const EXTENSION_TYPE_PATTERN: &str = "^x\\.[A-Za-z0-9_.-]+$";

/// A generator for what ade writes (events, runs, summaries): a field is `required` iff it is
/// always serialized, which is how SPEC §1 tells `null` from omitted.
fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().for_serialize().into_generator()
}

/// A generator for what users write (configurations): fields with defaults are optional.
fn input_generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().for_deserialize().into_generator()
}

/// Every schema file: `(path relative to schemas/, pretty JSON with a trailing newline)`.
pub fn generate() -> Vec<(String, String)> {
    let mut files: Vec<(String, Value)> = Vec::new();
    let mut catalog_generator = generator();
    let catalog = catalog_schemas(&mut catalog_generator);
    let definitions = catalog_generator.take_definitions(true);

    // One self-contained file per event type: the whole envelope with that type and payload.
    for (event_type, payload) in &catalog {
        let mut defs = definitions.clone();
        let body = event_schema(&mut defs, json!({ "const": event_type }), payload.clone().to_value());
        let description = describe(&definitions, payload);
        let mut root = root(event_type, &description, body);
        root.insert("$defs".to_owned(), Value::Object(defs));
        files.push((format!("events/{event_type}.json"), Value::Object(root)));
    }

    // The envelope: one of the catalog types, or an extension.
    let mut defs = definitions.clone();
    let mut one_of = Vec::new();
    for (event_type, payload) in &catalog {
        let body = event_schema(&mut defs, json!({ "const": event_type }), payload.clone().to_value());
        defs.insert((*event_type).to_owned(), Value::Object(body));
        one_of.push(json!({ "$ref": format!("#/$defs/{event_type}") }));
    }
    let extension = event_schema(
        &mut defs,
        json!({ "type": "string", "pattern": EXTENSION_TYPE_PATTERN }),
        json!({ "type": "object", "description": "Any object; extension events pass through untouched." }),
    );
    defs.insert("extension".to_owned(), Value::Object(extension));
    one_of.push(json!({ "$ref": "#/$defs/extension" }));
    let mut envelope = root(
        "Envelope",
        "One event of a run's log: a catalog type (SPEC §2) or an extension type `x.<name>`.",
        Map::from_iter([("oneOf".to_owned(), Value::Array(one_of))]),
    );
    envelope.insert("$defs".to_owned(), Value::Object(defs));
    files.push(("envelope.json".to_owned(), Value::Object(envelope)));

    files.push(("run.json".to_owned(), root_schema_for::<Run>(generator(), "Run")));
    files.push(("run_summary.json".to_owned(), root_schema_for::<RunSummary>(generator(), "RunSummary")));
    files.push(("configuration.json".to_owned(), root_schema_for::<Configuration>(input_generator(), "Configuration")));

    files
        .into_iter()
        .map(|(path, mut schema)| {
            omit_null_for_optional(&mut schema);
            // Serializing a `Value` cannot fail; an empty file would make the staleness test fail loudly.
            let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            text.push('\n');
            (path, text)
        })
        .collect()
}

/// The top of a schema file.
fn root(title: &str, description: &str, body: Map<String, Value>) -> Map<String, Value> {
    let mut root = Map::new();
    root.insert("$schema".to_owned(), json!(DIALECT));
    root.insert("title".to_owned(), json!(title));
    root.insert("description".to_owned(), json!(description));
    root.extend(body);
    root
}

/// The schema of a type ade writes (as `schemas/` has them): for hosts describing their own
/// responses, such as the server's OpenAPI document.
pub fn output_schema_for<T: JsonSchema>(title: &str) -> Value {
    let mut schema = root_schema_for::<T>(generator(), title);
    omit_null_for_optional(&mut schema);
    schema
}

/// The schema of a type users write (fields with defaults are optional).
///
/// Optional fields keep their `null` alternative: serde reads `null` as an absent `Option`, so a
/// request with `"options": null` is accepted, and a schema that said otherwise would tell
/// clients (and fuzzers) that valid requests are invalid. Only what ade writes omits `null`.
pub fn input_schema_for<T: JsonSchema>(title: &str) -> Value {
    root_schema_for::<T>(input_generator(), title)
}

fn root_schema_for<T: JsonSchema>(generator: SchemaGenerator, title: &str) -> Value {
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        map.insert("title".to_owned(), json!(title));
    }
    schema
}

/// The description of a payload: the doc comment of the type its `$ref` points to.
fn describe(definitions: &Map<String, Value>, payload: &Schema) -> String {
    payload
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .and_then(|def| def.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An envelope object whose `type` and `payload` have the given schemas; envelope field schemas
/// are added to `defs`.
fn event_schema(defs: &mut Map<String, Value>, event_type: Value, payload: Value) -> Map<String, Value> {
    let mut generator = generator();
    let mut properties = Map::new();
    properties.insert("type".to_owned(), event_type);
    properties.insert("event_id".to_owned(), generator.subschema_for::<EventId>().to_value());
    properties.insert("created_at".to_owned(), generator.subschema_for::<Timestamp>().to_value());
    properties.insert(
        "sequence".to_owned(),
        json!({ "type": "integer", "minimum": 1, "description": "Per-run position: starts at 1, +1 per event, no gaps." }),
    );
    properties.insert("source".to_owned(), generator.subschema_for::<EventSource>().to_value());
    properties.insert("workspace_id".to_owned(), generator.subschema_for::<WorkspaceId>().to_value());
    properties.insert("configuration_id".to_owned(), generator.subschema_for::<ConfigurationId>().to_value());
    properties.insert("run_id".to_owned(), generator.subschema_for::<RunId>().to_value());
    properties.insert("build_id".to_owned(), generator.subschema_for::<BuildId>().to_value());
    properties.insert("payload".to_owned(), payload);
    defs.extend(generator.take_definitions(true));
    let required = [
        "type",
        "event_id",
        "created_at",
        "sequence",
        "source",
        "workspace_id",
        "configuration_id",
        "run_id",
        "payload",
    ];
    Map::from_iter([
        ("type".to_owned(), json!("object")),
        ("properties".to_owned(), Value::Object(properties)),
        ("required".to_owned(), json!(required)),
    ])
}

/// Optional fields are omitted when absent, never written as `null` (SPEC §1): an `Option` that
/// may be omitted (not `required`) loses the `null` alternative schemars gives it, while required
/// fields shown as `null` in the SPEC (`failure`, `max_severity`, …) keep it.
fn omit_null_for_optional(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let required: Vec<String> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for (name, property) in properties.iter_mut() {
                    if !required.contains(name) {
                        drop_null_alternative(property);
                    }
                }
            }
            map.values_mut().for_each(omit_null_for_optional);
        }
        Value::Array(items) => items.iter_mut().for_each(omit_null_for_optional),
        _ => {}
    }
}

fn drop_null_alternative(property: &mut Value) {
    let Value::Object(map) = property else { return };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            let single = single.clone();
            map.insert("type".to_owned(), single);
        }
    }
    let mut only = None;
    if let Some(Value::Array(any_of)) = map.get_mut("anyOf") {
        any_of.retain(|alt| alt.get("type").and_then(Value::as_str) != Some("null"));
        if let [single] = any_of.as_slice() {
            only = Some(single.clone());
        }
    }
    if let Some(Value::Object(single)) = only {
        map.remove("anyOf");
        map.extend(single);
    }
}
