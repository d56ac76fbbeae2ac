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
        let body = event_schema(&mut defs, json!({ "const": event_type }), payload_schema(event_type, payload));
        let description = describe(&definitions, payload);
        let mut root = root(&format!("{}Event", pascal_case(event_type)), &description, body);
        root.insert("$defs".to_owned(), Value::Object(defs));
        files.push((format!("events/{event_type}.json"), Value::Object(root)));
    }

    // The envelope: one of the catalog types, or an extension.
    let mut defs = definitions.clone();
    let mut one_of = Vec::new();
    for (event_type, payload) in &catalog {
        let body = event_schema(&mut defs, json!({ "const": event_type }), payload_schema(event_type, payload));
        let mut titled = Map::from_iter([("title".to_owned(), json!(format!("{}Event", pascal_case(event_type))))]);
        titled.extend(body);
        defs.insert((*event_type).to_owned(), Value::Object(titled));
        one_of.push(json!({ "$ref": format!("#/$defs/{event_type}") }));
    }
    // `tsType` is json-schema-to-typescript's keyword for a TypeScript type of its own: a template
    // literal type, so that `switch (e.type)` narrows the catalog types away from extensions.
    let extension = event_schema(
        &mut defs,
        json!({ "type": "string", "pattern": EXTENSION_TYPE_PATTERN, "tsType": "`x.${string}`" }),
        json!({
            "type": "object",
            "additionalProperties": true,
            "description": "Any object; extension events pass through untouched.",
        }),
    );
    let mut titled = Map::from_iter([("title".to_owned(), json!("ExtensionEvent"))]);
    titled.extend(extension);
    defs.insert("extension".to_owned(), Value::Object(titled));
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
    for (_, schema) in &mut files {
        omit_null_for_optional(schema);
        close_known_objects(schema);
    }
    // What users write: an optional field may be `null` wherever serde takes that for omitted.
    files.push(("configuration.json".to_owned(), root_schema_for::<Configuration>(input_generator(), "Configuration")));

    files
        .into_iter()
        .map(|(path, mut schema)| {
            refs_stand_alone(&mut schema);
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
    close_known_objects(&mut schema);
    refs_stand_alone(&mut schema);
    schema
}

/// The schema of a type users write: fields with defaults are optional, and an optional field may
/// be `null` where serde takes that for omitted (the schema accepts what the server reads).
pub fn input_schema_for<T: JsonSchema>(title: &str) -> Value {
    let mut schema = root_schema_for::<T>(input_generator(), title);
    refs_stand_alone(&mut schema);
    schema
}

fn root_schema_for<T: JsonSchema>(generator: SchemaGenerator, title: &str) -> Value {
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        map.insert("title".to_owned(), json!(title));
    }
    schema
}

/// `run.validation.summary` → `RunValidationSummary`: the stem of an event type's schema titles.
fn pascal_case(event_type: &str) -> String {
    event_type
        .split(['.', '_'])
        .flat_map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase()).into_iter().chain(chars)
        })
        .collect()
}

/// The `payload` of a catalog event: the payload type, titled `<Type>Payload` (e.g.
/// `RunCompletedPayload`), which code generators use as its name even where two event types share
/// a payload type (`build.phase.started`, `run.phase.started`).
fn payload_schema(event_type: &str, payload: &Schema) -> Value {
    let mut schema = Map::from_iter([("title".to_owned(), json!(format!("{}Payload", pascal_case(event_type))))]);
    if let Some(payload) = payload.as_object() {
        schema.extend(payload.clone());
    }
    Value::Object(schema)
}

/// Objects ade writes keep the fields a newer version added (`#[serde(flatten)] extra`), which
/// schemars spells `additionalProperties: true`. That is JSON Schema's default already, and left
/// out it does not make code generators give every payload an index signature, under which a
/// misspelt field would compile. Maps (objects without `properties`) keep it.
fn close_known_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && map.get("additionalProperties") == Some(&Value::Bool(true)) {
                map.remove("additionalProperties");
            }
            map.values_mut().for_each(close_known_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_known_objects),
        _ => {}
    }
}

/// A `$ref` with other keywords beside it (a field's `description`, `default`, a payload's `title`)
/// becomes `allOf: [{ "$ref": … }]` beside them, which validates the same. Code generators
/// (json-schema-to-typescript) copy a `$ref` that has siblings into a new type each time, named
/// `BuildEnv1`, `BuildEnv2`…; a `$ref` alone is one type, named after its definition.
fn refs_stand_alone(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.values_mut().for_each(refs_stand_alone);
            if map.len() > 1
                && let Some(reference) = map.remove("$ref")
                && let Value::Array(all_of) = map.entry("allOf").or_insert_with(|| json!([]))
            {
                all_of.insert(0, json!({ "$ref": reference }));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(refs_stand_alone),
        _ => {}
    }
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
