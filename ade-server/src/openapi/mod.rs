//! The OpenAPI 3.1 description of the API (`GET /openapi.json`, committed as
//! `schemas/openapi.json`).
//!
//! Component schemas come from the same schemars types the server reads and writes (the core's
//! `schemas/` files, and the server's own request and answer types); their `$defs` are moved up
//! into `components/schemas` ([`hoist`]), so every `$ref` of the document is a
//! `#/components/schemas/…` that resolves within it, for tools that know no embedded `$id`.
//! The paths are written here, next to nothing else, so that a route added to the router without
//! a description here is caught by the test that compares the two.

mod hoist;

use ade_core::config::Configuration;
use ade_core::store::Document;
use serde_json::{Map, Value, json};

use crate::error::Problem;
use crate::routes::{CreateRunBody, CreateWebhookBody, Output};

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

/// Every component schema, their definitions moved up beside them.
fn components() -> Map<String, Value> {
    let mut components = Map::new();
    let core: Vec<(String, String)> = ade_core::schema::generate();
    for (file, name) in [("envelope.json", "Envelope"), ("run.json", "Run"), ("run_summary.json", "RunSummary")] {
        if let Some(schema) =
            core.iter().find(|(path, _)| path == file).and_then(|(_, text)| serde_json::from_str(text).ok())
        {
            components.insert(name.to_owned(), schema);
        }
    }
    let owned: [(&str, Value); 9] = [
        ("Webhook", ade_core::schema::output_schema_for::<ade_webhooks::Webhook>("Webhook")),
        ("Delivery", ade_core::schema::output_schema_for::<ade_webhooks::Delivery>("Delivery")),
        ("CreateWebhookRequest", ade_core::schema::input_schema_for::<CreateWebhookBody>("CreateWebhookRequest")),
        ("Configuration", ade_core::schema::output_schema_for::<Configuration>("Configuration")),
        ("ConfigurationInput", configuration_input()),
        ("Document", ade_core::schema::output_schema_for::<Document>("Document")),
        ("CreateRunRequest", create_run_request()),
        ("Problem", ade_core::schema::output_schema_for::<Problem<'static>>("Problem")),
        ("Output", ade_core::schema::output_schema_for::<Output>("Output")),
    ];
    for (name, schema) in owned {
        components.insert(name.to_owned(), schema);
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
            "WebhookList",
            json!({
                "type": "object",
                "properties": { "webhooks": { "type": "array", "items": { "$ref": "#/components/schemas/Webhook" } } },
                "required": ["webhooks"],
            }),
        ),
        (
            "DeliveryList",
            json!({
                "type": "object",
                "description": "The latest deliveries, newest first.",
                "properties": { "deliveries": { "type": "array", "items": { "$ref": "#/components/schemas/Delivery" } } },
                "required": ["deliveries"],
            }),
        ),
        (
            "WebhookId",
            json!({ "type": "string", "pattern": "^wh_[0-7][0-9A-HJKMNP-TV-Z]{25}$", "description": "A webhook's id: `wh_` and a ULID." }),
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
    hoist::hoist(components)
}

/// The body of `PUT /configurations/{id}`: a configuration as users write it (optional fields
/// may be `null`), whose `id` may be left out (the path's), of the `extract` engine only (the
/// others come from the server's configuration directory: 422).
fn configuration_input() -> Value {
    let mut configuration = ade_core::schema::input_schema_for::<Configuration>("Configuration");
    let mut wrapper = Map::new();
    wrapper.insert("title".to_owned(), json!("ConfigurationInput"));
    wrapper.insert(
        "description".to_owned(),
        json!("An `extract` configuration. `id` may be left out; when given it must be the path's (else 422)."),
    );
    if let Value::Object(map) = &mut configuration {
        for key in ["$defs", "$schema"] {
            if let Some(value) = map.remove(key) {
                wrapper.insert(key.to_owned(), value);
            }
        }
        map.remove("title");
    }
    optional_id(&mut configuration);
    wrapper.insert(
        "allOf".to_owned(),
        json!([configuration, { "type": "object", "properties": { "engine": { "const": "extract" } }, "required": ["engine"] }]),
    );
    Value::Object(wrapper)
}

/// `id` no longer required: neither at the schema's root nor in its root's alternatives (one per
/// engine, each a whole object).
fn optional_id(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|name| name != "id");
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(branches)) = map.get_mut(key) {
            branches.iter_mut().for_each(optional_id);
        }
    }
}

/// The body of `POST /runs`. Its `options` take only the fields the server knows (an unknown
/// one is refused, 422), where a run's `options` as ade writes them pass other fields through.
fn create_run_request() -> Value {
    let mut schema = ade_core::schema::input_schema_for::<CreateRunBody>("CreateRunRequest");
    if let Some(Value::Object(options)) = schema.pointer_mut("/$defs/RunOptions") {
        options.insert("additionalProperties".to_owned(), Value::Bool(false));
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

/// A path parameter holding an id of the component `id_schema`: a value that is not such an id
/// names nothing (404).
fn path_id(name: &str, description: &str, id_schema: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema(id_schema) })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// A public part of the run viewer (a page for people; its data comes through the API).
fn page(operation_id: &str, summary: &str, media_type: &str) -> Value {
    json!({
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "responses": { "200": { "description": summary, "content": { media_type: { "schema": { "type": "string" } } } } },
    })
}

/// An NDJSON body: a string to OpenAPI 3.1, whose items (lines) are described by `x-item-schema`
/// (what OpenAPI 3.2 calls `itemSchema`): each an event envelope.
fn ndjson(description: &str) -> Value {
    json!({ "schema": { "type": "string", "description": description }, "x-item-schema": schema("Envelope") })
}

/// An SSE body. As OpenAPI 3.1 has it (and fuzzers read it), the schema is that of one event:
/// its `data` is an envelope as JSON; `x-item-schema` names the envelope as for NDJSON.
fn sse(description: &str) -> Value {
    json!({
        "schema": {
            "type": "object",
            "description": description,
            "properties": {
                "id": { "type": "string", "pattern": "^[1-9][0-9]*$", "description": "The event's `sequence`." },
                "event": { "const": "ade.event" },
                "data": { "type": "string", "contentMediaType": "application/json", "contentSchema": schema("Envelope") },
            },
            "required": ["id", "event", "data"],
        },
        "x-item-schema": schema("Envelope"),
    })
}

/// What `GET /runs` makes its cursors of: a time in microseconds, then the last run's id.
const CURSOR_PATTERN: &str = "^-?[0-9]{1,18}\\.run_[0-7][0-9A-HJKMNP-TV-Z]{25}$";

const UNAUTHORIZED: (&str, &str) = ("401", "No token, an unknown one, or `access_token` where it is not accepted.");
const URI_TOO_LONG: (&str, &str) = ("414", "The path and query are longer than the server takes.");
const TIMEOUT: (&str, &str) =
    ("408", "The body did not arrive in time (the body read timeout); the connection is closed.");
const FULL: (&str, &str) = ("507", "The server's storage is full; retry once space is freed.");

fn paths() -> Value {
    let mut paths = api_paths();
    if let (Value::Object(paths), Value::Object(webhooks)) = (&mut paths, webhook_paths()) {
        paths.extend(webhooks);
    }
    paths
}

/// `/webhooks`: subscriptions to a workspace's events (Standard Webhooks).
fn webhook_paths() -> Value {
    let id = path_id("id", "The webhook (`wh_…`); anything else names no webhook (404).", "WebhookId");
    let not_found = ("404", "No such webhook in the caller's workspaces.");
    json!({
        "/webhooks": {
            "post": {
                "operationId": "createWebhook",
                "summary": "Subscribe a URL to a workspace's events",
                "description": "Every event of the workspace's runs persisted from now on that `event_types` lets through is POSTed to `url`, one request per event, signed per Standard Webhooks (`webhook-id` = the event id, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` with the answer's `secret`); at least once, in order per run.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema("CreateWebhookRequest") } } },
                "responses": responses(
                    &[("201", json_body("Webhook", "Created, with its signing secret; `Location` names it."))],
                    &[UNAUTHORIZED, ("400", "A malformed body: empty, or not JSON."), ("403", "The token may not use that workspace."), TIMEOUT, ("413", "Body too large."), URI_TOO_LONG, ("415", "Not JSON."), ("422", "Unknown fields, a URL that is not http(s), names a private or loopback address the server does not allow, or a bad event type filter."), FULL],
                ),
            },
            "get": {
                "operationId": "listWebhooks",
                "summary": "List webhooks",
                "parameters": [query("workspace_id", "Only this workspace (required for a token of several workspaces).", schema("WorkspaceId"))],
                "responses": responses(&[("200", json_body("WebhookList", "The webhooks, by id."))], &[UNAUTHORIZED, ("400", "A bad `workspace_id`, an unknown query parameter, or a token of several workspaces that names none."), ("403", "The token may not use that workspace."), URI_TOO_LONG]),
            },
        },
        "/webhooks/{id}": {
            "get": {
                "operationId": "getWebhook",
                "summary": "A webhook",
                "parameters": [id.clone()],
                "responses": responses(&[("200", json_body("Webhook", "The webhook."))], &[UNAUTHORIZED, not_found, URI_TOO_LONG]),
            },
            "delete": {
                "operationId": "deleteWebhook",
                "summary": "Delete a webhook",
                "parameters": [id.clone()],
                "responses": responses(&[("204", json!({ "description": "Deleted: nothing more is sent." }))], &[UNAUTHORIZED, not_found, URI_TOO_LONG, FULL]),
            },
        },
        "/webhooks/{id}/deliveries": {
            "get": {
                "operationId": "listWebhookDeliveries",
                "summary": "A webhook's latest deliveries",
                "parameters": [id.clone()],
                "responses": responses(&[("200", json_body("DeliveryList", "Status, attempts and last error of each."))], &[UNAUTHORIZED, not_found, URI_TOO_LONG]),
            },
        },
        "/webhooks/{id}/enable": {
            "post": {
                "operationId": "enableWebhook",
                "summary": "Enable a disabled webhook",
                "description": "Delivery resumes where it stopped: the events since are delivered, in order.",
                "parameters": [id],
                "responses": responses(&[("200", json_body("Webhook", "Enabled."))], &[UNAUTHORIZED, not_found, URI_TOO_LONG, FULL]),
            },
        },
    })
}

/// The paths of runs, documents, configurations, probes and the viewer.
fn api_paths() -> Value {
    let run_id = path_id("id", "The run (`run_…`); anything else names no run (404).", "RunId");
    let not_found = ("404", "No such run in the caller's workspaces.");
    let sse = sse("`retry: 2000`, then one `id:`/`event: ade.event`/`data:` frame per event, its data one envelope; \
        `: keepalive` comments; ends after `run.completed`.");
    let workspace = |description: &str| query("workspace_id", description, schema("WorkspaceId"));
    json!({
        "/documents": {
            "post": {
                "operationId": "uploadDocument",
                "summary": "Upload an input file",
                "description": "Multipart field `file`, or the raw body with `?filename=` (no body at all is an empty file).",
                "parameters": [
                    query("filename", "The file's name, for a raw body, where it is needed and may not be blank (400); ignored with multipart, whose part names the file.", json!({ "type": "string" })),
                    workspace("The document's workspace (default: the token's only workspace, else `default`)."),
                ],
                "requestBody": {
                    "required": false,
                    "content": {
                        "multipart/form-data": { "schema": { "type": "object", "properties": { "file": { "description": "The file: any bytes.", "contentMediaType": "application/octet-stream" } }, "required": ["file"] } },
                        "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } },
                    },
                },
                "responses": responses(
                    &[("201", json_body("Document", "Stored; `Location` names it."))],
                    &[UNAUTHORIZED, ("400", "No file, no file name, a malformed multipart body, a bad `workspace_id`, or a token of several workspaces that names none."), ("403", "The token may not use that workspace."), TIMEOUT, ("413", "Larger than the upload limit."), URI_TOO_LONG, FULL],
                ),
            },
        },
        "/documents/{id}": {
            "get": {
                "operationId": "getDocument",
                "summary": "A document's metadata",
                "parameters": [path_id("id", "The document (`doc_…`); anything else names no document (404).", "DocumentId")],
                "responses": responses(&[("200", json_body("Document", "The document."))], &[UNAUTHORIZED, ("404", "No such document in the caller's workspaces."), URI_TOO_LONG]),
            },
        },
        "/configurations": {
            "get": {
                "operationId": "listConfigurations",
                "summary": "The configurations the server knows",
                "responses": responses(&[("200", json_body("ConfigurationList", "Every configuration."))], &[UNAUTHORIZED, URI_TOO_LONG]),
            },
        },
        "/configurations/{id}": {
            "get": {
                "operationId": "getConfiguration",
                "summary": "A configuration",
                "parameters": [path_id("id", "The configuration's id; anything else names no configuration (404).", "ConfigurationId")],
                "responses": responses(&[("200", json_body("Configuration", "The configuration."))], &[UNAUTHORIZED, ("404", "No such configuration."), URI_TOO_LONG]),
            },
            "put": {
                "operationId": "putConfiguration",
                "summary": "Create or replace an `extract` configuration",
                "description": "The body's `id` may be left out; when given, it must be the path's.",
                "parameters": [path_id("id", "The configuration's id (422 if it is not a valid one).", "ConfigurationId")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema("ConfigurationInput") } } },
                "responses": responses(
                    &[("200", json_body("Configuration", "Replaced.")), ("201", json_body("Configuration", "Created."))],
                    &[UNAUTHORIZED, ("400", "A malformed body: empty, or not JSON."), ("403", "Only a token for every workspace may change configurations."), ("409", "A configuration of the server's configuration directory (any `process` one included) cannot be replaced over HTTP."), TIMEOUT, ("413", "Body too large."), URI_TOO_LONG, ("415", "Not JSON."), ("422", "An invalid id or configuration, naming the field (also fields the `extract` engine could not compile), a body `id` other than the path's, or a `process` configuration."), FULL],
                ),
            },
        },
        "/runs": {
            "post": {
                "operationId": "createRun",
                "summary": "Create a run",
                "description": "With `?stream=true` or `Accept: text/event-stream`, the answer is the run's event stream from sequence 1 to `run.completed`.",
                "parameters": [
                    query("stream", "Answer with the run's SSE stream.", json!({ "type": "boolean" })),
                    { "name": "Idempotency-Key", "in": "header", "required": false, "description": "1 to 255 visible ASCII characters, spaces inside allowed (else 400). Same key and body within 24 h: the original run (200); same key, other body: 422.", "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$" } },
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema("CreateRunRequest") } } },
                "responses": responses(
                    &[
                        ("201", json!({ "description": "Created; `Location` names the run.", "content": { "application/json": { "schema": schema("Run") }, "text/event-stream": sse.clone() } })),
                        ("200", json!({ "description": "The run an earlier request with the same `Idempotency-Key` created.", "content": { "application/json": { "schema": schema("Run") }, "text/event-stream": sse.clone() } })),
                    ],
                    &[UNAUTHORIZED, ("400", "A malformed body (empty, or not JSON), `stream` other than true or false, a bad `Idempotency-Key`, or a token of several workspaces that names none."), ("403", "The token may not use that workspace."), TIMEOUT, ("413", "Body too large."), URI_TOO_LONG, ("415", "Not JSON."), ("422", "Unknown configuration or document, unknown fields, or an `Idempotency-Key` reused with another body."), FULL],
                ),
            },
            "get": {
                "operationId": "listRuns",
                "summary": "List runs, newest first",
                "description": "Query parameters other than these are refused (400).",
                "parameters": [
                    workspace("Only this workspace (required for a token of several workspaces)."),
                    query("status", "Only runs in this status.", schema("RunStatus")),
                    query("configuration_id", "Only runs of this configuration.", schema("ConfigurationId")),
                    query("limit", "Page size (default 50).", json!({ "type": "integer", "minimum": 1, "maximum": crate::routes::MAX_RUNS_LIMIT })),
                    query("cursor", "`next_cursor` of the previous page, as given; another cursor is refused (400).", json!({ "type": "string", "pattern": CURSOR_PATTERN })),
                ],
                "responses": responses(&[("200", json_body("RunPage", "One page."))], &[UNAUTHORIZED, ("400", "A bad filter, limit or cursor, an unknown query parameter, or a token of several workspaces that names none."), ("403", "The token may not use that workspace."), URI_TOO_LONG]),
            },
        },
        "/runs/{id}": {
            "get": {
                "operationId": "getRun",
                "summary": "A run",
                "parameters": [run_id.clone()],
                "responses": responses(&[("200", json_body("Run", "The run; an active run's summary so far."))], &[UNAUTHORIZED, not_found, URI_TOO_LONG]),
            },
        },
        "/runs/{id}/cancel": {
            "post": {
                "operationId": "cancelRun",
                "summary": "Cancel a run",
                "parameters": [run_id.clone()],
                "responses": responses(&[("202", json_body("Run", "Accepted: the run ends `cancelled` soon after."))], &[UNAUTHORIZED, not_found, ("409", "The run has already ended."), URI_TOO_LONG, FULL]),
            },
        },
        "/runs/{id}/events": {
            "get": {
                "operationId": "getRunEvents",
                "summary": "A run's events: one JSON page, NDJSON, or a live SSE stream, by `Accept`",
                "description": "Events with `sequence` greater than the cursor: the larger of `after_sequence` and `Last-Event-ID`.",
                "parameters": [
                    run_id.clone(),
                    query("after_sequence", "The cursor.", json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX })),
                    query("limit", "Page size (JSON only).", json!({ "type": "integer", "minimum": 1, "maximum": 10000, "default": 1000 })),
                    query("access_token", "The token, with `Accept: text/event-stream` only (browsers' EventSource cannot send headers); on any other request it is refused (401).", json!({ "type": "string" })),
                    { "name": "Last-Event-ID", "in": "header", "required": false, "description": "The cursor a reconnecting SSE client sends; empty (as a browser sends after an event without an id) is no cursor.", "schema": { "anyOf": [{ "type": "integer", "minimum": 0, "maximum": u64::MAX }, { "const": "" }] } },
                ],
                "responses": responses(
                    &[
                        ("200", json!({
                            "description": "The events.",
                            "content": {
                                "application/json": { "schema": schema("EventPage") },
                                "application/x-ndjson": ndjson("One envelope per line, every event after the cursor that exists at request time."),
                                "text/event-stream": sse,
                            },
                        })),
                        ("204", json!({ "description": "SSE on a finished run with nothing after the cursor." })),
                    ],
                    &[UNAUTHORIZED, ("400", "A cursor or limit that is not a non-negative integer, or an `Accept` header that is not text."), not_found, ("406", "An `Accept` that allows none of the three formats."), URI_TOO_LONG],
                ),
            },
        },
        "/runs/{id}/outputs": {
            "get": {
                "operationId": "listRunOutputs",
                "summary": "A run's output files",
                "parameters": [run_id.clone()],
                "responses": responses(&[("200", json_body("OutputList", "The files."))], &[UNAUTHORIZED, not_found, URI_TOO_LONG]),
            },
        },
        "/runs/{id}/outputs/{name}": {
            "get": {
                "operationId": "getRunOutput",
                "summary": "Download an output file",
                "parameters": [run_id, { "name": "name", "in": "path", "required": true, "description": "The file's name.", "schema": { "type": "string" } }],
                "responses": responses(
                    &[("200", json!({ "description": "The file, with its media type.", "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } }))],
                    &[UNAUTHORIZED, ("404", "No such run or file."), URI_TOO_LONG],
                ),
            },
        },
        "/healthz": { "get": { "operationId": "healthz", "summary": "Liveness", "security": [], "responses": { "200": json_body("Status", "Alive.") } } },
        "/readyz": { "get": { "operationId": "readyz", "summary": "Readiness", "security": [], "responses": responses(&[("200", json_body("Status", "Ready."))], &[("503", "Not ready: shutting down, or the stores refuse writes (a full disk), naming the cause.")]) } },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "security": [],
                "responses": responses(&[("200", json!({ "description": "Prometheus text format.", "content": { "text/plain": { "schema": { "type": "string" } } } }))], &[("404", "The host installed no metrics recorder.")]),
            },
        },
        "/": { "get": page("viewerPage", "The run viewer", "text/html") },
        "/viewer.js": { "get": page("viewerScript", "The run viewer's script", "text/javascript") },
        "/viewer.css": { "get": page("viewerStyle", "The run viewer's style sheet", "text/css") },
        "/openapi.json": {
            "get": { "operationId": "openapi", "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } } } },
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
        let mut ids = std::collections::BTreeSet::new();
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let responses = operation["responses"].as_object().expect("responses");
                assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} has no success answer");
                assert!(operation["summary"].is_string(), "{method} {path} has no summary");
                let id =
                    operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            }
        }
    }
}
