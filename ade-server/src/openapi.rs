//! The OpenAPI 3.1 description of the API (`GET /openapi.json`, committed as
//! `schemas/openapi.json`).
//!
//! Component schemas come from the same schemars types the server reads and writes (the core's
//! `schemas/` files, and the server's own request and answer types); each is a self-contained JSON
//! Schema 2020-12 resource with an `$id`, so its internal `#/$defs/…` references resolve inside it.
//! The paths are written here, next to nothing else, so that a route added to the router without
//! a description here is caught by the test that compares the two.

use ade_core::config::Configuration;
use ade_core::store::Document;
use serde_json::{Map, Value, json};

use crate::error::Problem;
use crate::routes::{CreateRunBody, Output};

/// The OpenAPI document, as served and committed.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "ade",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs and their event streams: create a run, follow its ordered, typed, persisted \
                event log as JSON pages, NDJSON or Server-Sent Events, and read its summary and outputs.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths(),
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token bound to a set of workspaces. On `GET /runs/{id}/events` with \
                        `Accept: text/event-stream` it may be given as `?access_token=` instead.",
                },
            },
        },
    })
}

/// Every component schema, self-contained, with an `$id`.
fn components() -> Map<String, Value> {
    let mut components = Map::new();
    let core: Vec<(String, String)> = ade_core::schema::generate();
    for (file, name) in [("envelope.json", "Envelope"), ("run.json", "Run"), ("run_summary.json", "RunSummary")] {
        if let Some(schema) =
            core.iter().find(|(path, _)| path == file).and_then(|(_, text)| serde_json::from_str(text).ok())
        {
            components.insert(name.to_owned(), resource(name, schema));
        }
    }
    let owned: [(&str, Value); 6] = [
        ("Configuration", ade_core::schema::output_schema_for::<Configuration>("Configuration")),
        ("ConfigurationInput", ade_core::schema::input_schema_for::<Configuration>("ConfigurationInput")),
        ("Document", ade_core::schema::output_schema_for::<Document>("Document")),
        ("CreateRunRequest", ade_core::schema::input_schema_for::<CreateRunBody>("CreateRunRequest")),
        ("Problem", ade_core::schema::output_schema_for::<Problem<'static>>("Problem")),
        ("Output", ade_core::schema::output_schema_for::<Output>("Output")),
    ];
    for (name, schema) in owned {
        components.insert(name.to_owned(), resource(name, schema));
    }
    let lists = [
        (
            "RunPage",
            json!({
                "type": "object",
                "description": "One page of runs, newest first; `next_cursor` is `null` on the last page.",
                "properties": {
                    "runs": { "type": "array", "items": { "$ref": "#/components/schemas/Run" } },
                    "next_cursor": { "type": ["string", "null"] },
                },
                "required": ["runs", "next_cursor"],
            }),
        ),
        (
            "EventPage",
            json!({
                "type": "object",
                "description": "Events after the cursor; `next_after_sequence` is the last returned sequence when \
                    more events exist now, else `null`.",
                "properties": {
                    "events": { "type": "array", "items": { "$ref": "#/components/schemas/Envelope" } },
                    "next_after_sequence": { "type": ["integer", "null"], "minimum": 1 },
                },
                "required": ["events", "next_after_sequence"],
            }),
        ),
        (
            "ConfigurationList",
            json!({
                "type": "object",
                "properties": {
                    "configurations": { "type": "array", "items": { "$ref": "#/components/schemas/Configuration" } },
                },
                "required": ["configurations"],
            }),
        ),
        (
            "OutputList",
            json!({
                "type": "object",
                "properties": { "outputs": { "type": "array", "items": { "$ref": "#/components/schemas/Output" } } },
                "required": ["outputs"],
            }),
        ),
        (
            "Status",
            json!({
                "type": "object",
                "properties": { "status": { "type": "string" } },
                "required": ["status"],
            }),
        ),
    ];
    for (name, schema) in lists {
        components.insert(name.to_owned(), schema);
    }
    components
}

/// A schema as a component: its own resource (`$id`), without `$schema` (the document names the
/// dialect once).
fn resource(name: &str, mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.insert("$id".to_owned(), json!(format!("urn:ade:schema:{name}")));
    }
    schema
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(name: &str, description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema(name) } } })
}

/// The error answers an operation can give, each a problem.
fn problems(statuses: &[(&str, &str)]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|(status, description)| {
            let body = json!({
                "description": description,
                "content": { "application/problem+json": { "schema": schema("Problem") } },
            });
            ((*status).to_owned(), body)
        })
        .collect()
}

fn responses(success: &[(&str, Value)], errors: &[(&str, &str)]) -> Value {
    let mut all = Map::new();
    for (status, body) in success {
        all.insert((*status).to_owned(), body.clone());
    }
    all.extend(problems(errors));
    Value::Object(all)
}

fn path_id(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// A public part of the run viewer (a page for people; its data comes through the API).
fn page(summary: &str, media_type: &str) -> Value {
    json!({
        "summary": summary,
        "security": [],
        "responses": { "200": { "description": summary, "content": { media_type: { "schema": { "type": "string" } } } } },
    })
}

const AUTH: [(&str, &str); 1] = [("401", "No token, or an unknown one.")];

fn paths() -> Value {
    let run_id = path_id("id", "The run (`run_…`).");
    let not_found = ("404", "No such run in the caller's workspaces.");
    let full = ("507", "The server's storage is full; retry once space is freed.");
    let sse = json!({ "type": "string", "description": "`retry: 2000`, then one `id:`/`event: ade.event`/`data:` frame per event; `: keepalive` comments; ends after `run.completed`." });
    json!({
        "/documents": {
            "post": {
                "summary": "Upload an input file",
                "description": "Multipart field `file`, or the raw body with `?filename=`.",
                "parameters": [
                    query("filename", "The file's name, for a raw body.", json!({ "type": "string" })),
                    query("workspace_id", "The document's workspace (default `default`).", json!({ "type": "string" })),
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "multipart/form-data": { "schema": { "type": "object", "properties": { "file": { "type": "string", "contentMediaType": "application/octet-stream" } }, "required": ["file"] } },
                        "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } },
                    },
                },
                "responses": responses(
                    &[("201", json_body("Document", "Stored; `Location` names it."))],
                    &[AUTH[0], ("400", "No file, or no file name."), ("403", "The token may not use that workspace."), ("408", "The body did not arrive in time (the body read timeout); the connection is closed."), ("413", "Larger than the upload limit."), ("415", "Neither multipart nor a raw body."), full],
                ),
            },
        },
        "/documents/{id}": {
            "get": {
                "summary": "A document's metadata",
                "parameters": [path_id("id", "The document (`doc_…`).")],
                "responses": responses(&[("200", json_body("Document", "The document."))], &[AUTH[0], ("404", "No such document in the caller's workspaces.")]),
            },
        },
        "/configurations": {
            "get": {
                "summary": "The configurations the server knows",
                "responses": responses(&[("200", json_body("ConfigurationList", "Every configuration."))], &AUTH),
            },
        },
        "/configurations/{id}": {
            "get": {
                "summary": "A configuration",
                "parameters": [path_id("id", "The configuration's id.")],
                "responses": responses(&[("200", json_body("Configuration", "The configuration."))], &[AUTH[0], ("404", "No such configuration.")]),
            },
            "put": {
                "summary": "Create or replace an `extract` configuration",
                "parameters": [path_id("id", "The configuration's id.")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema("ConfigurationInput") } } },
                "responses": responses(
                    &[("200", json_body("Configuration", "Replaced.")), ("201", json_body("Configuration", "Created."))],
                    &[AUTH[0], ("403", "Only a token for every workspace may change configurations."), ("409", "A configuration of the server's configuration directory (any `process` one included) cannot be replaced over HTTP."), ("408", "The body did not arrive in time (the body read timeout); the connection is closed."), ("413", "Body too large."), ("415", "Not JSON."), ("422", "Invalid configuration, naming the field (also fields the `extract` engine could not compile)."), full],
                ),
            },
        },
        "/runs": {
            "post": {
                "summary": "Create a run",
                "description": "With `?stream=true` or `Accept: text/event-stream`, the answer is the run's event stream from sequence 1 to `run.completed`.",
                "parameters": [
                    query("stream", "Answer with the run's SSE stream.", json!({ "type": "boolean" })),
                    { "name": "Idempotency-Key", "in": "header", "required": false, "description": "Same key and body within 24 h: the original run (200); same key, other body: 422.", "schema": { "type": "string", "minLength": 1, "maxLength": 255 } },
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema("CreateRunRequest") } } },
                "responses": responses(
                    &[
                        ("201", json!({ "description": "Created; `Location` names the run.", "content": { "application/json": { "schema": schema("Run") }, "text/event-stream": { "schema": sse } } })),
                        ("200", json!({ "description": "The run an earlier request with the same `Idempotency-Key` created.", "content": { "application/json": { "schema": schema("Run") }, "text/event-stream": { "schema": sse } } })),
                    ],
                    &[AUTH[0], ("400", "A malformed body or query."), ("403", "The token may not use that workspace."), ("408", "The body did not arrive in time (the body read timeout); the connection is closed."), ("413", "Body too large."), ("415", "Not JSON."), ("422", "Unknown configuration or document, unknown fields, or an `Idempotency-Key` reused with another body."), full],
                ),
            },
            "get": {
                "summary": "List runs, newest first",
                "parameters": [
                    query("workspace_id", "Only this workspace (required for a token of several workspaces).", json!({ "type": "string" })),
                    query("status", "Only runs in this status.", json!({ "type": "string" })),
                    query("configuration_id", "Only runs of this configuration.", json!({ "type": "string" })),
                    query("limit", "Page size.", json!({ "type": "integer", "minimum": 1, "maximum": crate::routes::MAX_RUNS_LIMIT })),
                    query("cursor", "`next_cursor` of the previous page.", json!({ "type": "string" })),
                ],
                "responses": responses(&[("200", json_body("RunPage", "One page."))], &[AUTH[0], ("400", "A bad filter, limit or cursor."), ("403", "The token may not use that workspace.")]),
            },
        },
        "/runs/{id}": {
            "get": {
                "summary": "A run",
                "parameters": [run_id.clone()],
                "responses": responses(&[("200", json_body("Run", "The run; an active run's summary so far."))], &[AUTH[0], not_found]),
            },
        },
        "/runs/{id}/cancel": {
            "post": {
                "summary": "Cancel a run",
                "parameters": [run_id.clone()],
                "responses": responses(&[("202", json_body("Run", "Accepted: the run ends `cancelled` soon after."))], &[AUTH[0], not_found, ("409", "The run has already ended."), full]),
            },
        },
        "/runs/{id}/events": {
            "get": {
                "summary": "A run's events: one JSON page, NDJSON, or a live SSE stream, by `Accept`",
                "description": "Events with `sequence` greater than the cursor: the larger of `after_sequence` and `Last-Event-ID`.",
                "parameters": [
                    run_id.clone(),
                    query("after_sequence", "The cursor.", json!({ "type": "integer", "minimum": 0 })),
                    query("limit", "Page size (JSON only).", json!({ "type": "integer", "minimum": 1, "maximum": 10000, "default": 1000 })),
                    query("access_token", "The token, for SSE only (browsers' EventSource cannot send headers).", json!({ "type": "string" })),
                    { "name": "Last-Event-ID", "in": "header", "required": false, "description": "The cursor a reconnecting SSE client sends.", "schema": { "type": "integer", "minimum": 0 } },
                ],
                "responses": responses(
                    &[
                        ("200", json!({
                            "description": "The events.",
                            "content": {
                                "application/json": { "schema": schema("EventPage") },
                                "application/x-ndjson": { "schema": { "type": "string", "description": "One envelope per line, every event after the cursor that exists at request time." } },
                                "text/event-stream": { "schema": sse },
                            },
                        })),
                        ("204", json!({ "description": "SSE on a finished run with nothing after the cursor." })),
                    ],
                    &[AUTH[0], ("400", "A cursor or limit that is not a non-negative integer."), not_found, ("406", "An `Accept` that allows none of the three formats.")],
                ),
            },
        },
        "/runs/{id}/outputs": {
            "get": {
                "summary": "A run's output files",
                "parameters": [run_id.clone()],
                "responses": responses(&[("200", json_body("OutputList", "The files."))], &[AUTH[0], not_found]),
            },
        },
        "/runs/{id}/outputs/{name}": {
            "get": {
                "summary": "Download an output file",
                "parameters": [run_id, path_id("name", "The file's name.")],
                "responses": responses(
                    &[("200", json!({ "description": "The file, with its media type.", "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } }))],
                    &[AUTH[0], ("404", "No such run or file.")],
                ),
            },
        },
        "/healthz": { "get": { "summary": "Liveness", "security": [], "responses": { "200": json_body("Status", "Alive.") } } },
        "/readyz": { "get": { "summary": "Readiness", "security": [], "responses": responses(&[("200", json_body("Status", "Ready."))], &[("503", "Not ready: shutting down, or the stores refuse writes (a full disk), naming the cause.")]) } },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": responses(&[("200", json!({ "description": "Prometheus text format.", "content": { "text/plain": { "schema": { "type": "string" } } } }))], &[("404", "The host installed no metrics recorder.")]),
            },
        },
        "/": { "get": page("The run viewer", "text/html") },
        "/viewer.js": { "get": page("The run viewer's script", "text/javascript") },
        "/viewer.css": { "get": page("The run viewer's style sheet", "text/css") },
        "/openapi.json": {
            "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } } } },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_points_at_a_component() {
        let document = document();
        let components = document["components"]["schemas"].as_object().expect("components").clone();
        let mut stack = vec![document["paths"].clone()];
        stack.extend(components.values().cloned());
        let mut seen = 0;
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref")
                        && let Some(name) = target.strip_prefix("#/components/schemas/")
                    {
                        assert!(components.contains_key(name), "dangling reference {target}");
                        seen += 1;
                    }
                    stack.extend(map.into_iter().map(|(_, v)| v));
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(seen > 20, "the paths use the components ({seen} references)");
    }

    #[test]
    fn every_operation_names_its_answers() {
        let document = document();
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let responses = operation["responses"].as_object().expect("responses");
                assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} has no success answer");
                assert!(operation["summary"].is_string(), "{method} {path} has no summary");
            }
        }
    }
}
