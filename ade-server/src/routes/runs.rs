//! `POST /runs` (optionally streaming), `GET /runs`, `GET /runs/{id}`, `POST /runs/{id}/cancel`.

use std::collections::HashMap;

use ade_core::dispatch::After;
use ade_core::event::{ConfigurationId, DocumentId, QueuedBy, WorkspaceId};
use ade_core::run::{Run, RunMode, RunOptions, RunStatus};
use ade_core::store::{RunFilter, RunKey};
use ade_core::{CreateRun, Created};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{excerpt, parse_run_id, visible_run};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::mount::Mount;
use crate::negotiate::prefers_sse;
use crate::state::AppState;

pub use ade_core::api::MAX_RUNS_LIMIT;

use ade_core::api::MAX_IDEMPOTENCY_KEY;

// Also the OpenAPI document's `CreateRunRequest`: what is described is what is read.
/// The body of `POST /runs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRunBody {
    /// The run's workspace; default: the token's workspace if it has exactly one, else `default`.
    workspace_id: Option<WorkspaceId>,
    /// The configuration to run.
    configuration_id: ConfigurationId,
    /// The uploaded input files (`POST /documents`); default none.
    #[serde(default)]
    document_ids: Vec<DocumentId>,
    /// `execute` (default), `validate_only` or `dry_run`.
    #[serde(default)]
    mode: RunMode,
    /// Run options.
    options: Option<RunOptions>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    mount: Mount,
    caller: Caller,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: ApiJson<CreateRunBody>,
) -> Result<Response> {
    let stream = match query.get("stream").map(String::as_str) {
        None | Some("false") => prefers_sse(&headers),
        Some("true") => true,
        Some(other) => {
            return Err(Error::BadRequest(format!("`stream` must be true or false, not {:?}", excerpt(other))));
        }
    };
    let ApiJson { value: request, raw } = body;
    let options = request.options.unwrap_or_default();
    if !options.extra.is_empty() {
        let names: Vec<_> = options.extra.keys().map(String::as_str).collect();
        return Err(Error::Unprocessable(format!(
            "unknown field(s) in `options`: {}; expected input_sheet_names, force_rebuild, metadata",
            excerpt(&names.join(", "))
        )));
    }
    let workspace_id = caller.workspace_or_default(request.workspace_id)?;
    let mut create =
        CreateRun::new(request.configuration_id).workspace(workspace_id).mode(request.mode).options(options);
    for id in request.document_ids {
        create = create.document(id);
    }
    create.queued_by = caller.name.clone().map(|name| QueuedBy { token_name: Some(name) });
    if let Some(key) = idempotency_key(&headers)? {
        create = create.idempotency_key(key, request_hash(&raw));
    }
    let (status, run) = match state.runtime().create_run(create).await? {
        Created::New(run) => (StatusCode::CREATED, run),
        Created::Existing(run) => (StatusCode::OK, run),
        _ => return Err(Error::Internal("the runtime answered create_run with an unknown outcome".to_owned())),
    };
    let run = mount.run(run);
    let location = HeaderValue::from_str(&run.links.self_)
        .map_err(|_| Error::Internal("a run link is not a header value".to_owned()))?;
    let mut response = if stream {
        let key = RunKey::new(run.workspace_id.clone(), run.id);
        let events = state.runtime().dispatcher().subscribe_via(key, After(0), "sse").await?;
        let config = state.config();
        crate::sse::response(status, events, config.sse_retry, config.keepalive, state.shutdown_token().clone())
    } else {
        (status, Json(run)).into_response()
    };
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters, spaces inside allowed (no tab,
/// no control character: the OpenAPI document's pattern).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key =
        value.to_str().ok().map(str::trim).filter(|k| {
            !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| (0x20..=0x7e).contains(&b))
        });
    match key {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(Error::BadRequest(format!(
            "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        ))),
    }
}

/// The hash that says whether two requests with one key are the same: sha256 of the body as
/// canonical JSON (object keys sorted, no insignificant whitespace).
fn request_hash(raw: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(raw)
        .map(|body| ade_core::api::request_hash(&body))
        .unwrap_or_else(|_| ade_core::api::request_hash(&serde_json::Value::Null))
}

pub(super) async fn get(
    State(state): State<AppState>,
    mount: Mount,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Run>> {
    let id = parse_run_id(&id)?;
    Ok(Json(mount.run(visible_run(&state, &caller, id).await?)))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    mount: Mount,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Run>)> {
    let id = parse_run_id(&id)?;
    let run = visible_run(&state, &caller, id).await?;
    let run = state.runtime().cancel(Some(&run.workspace_id), id).await?;
    Ok((StatusCode::ACCEPTED, Json(mount.run(run))))
}

/// Query of `GET /runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    workspace_id: Option<String>,
    status: Option<String>,
    configuration_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// Read by the auth layer (and refused there on this route); not a filter.
    access_token: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    mount: Mount,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<serde_json::Value>> {
    let _ = &query.access_token;
    let mut filter = RunFilter::default();
    if let Some(workspace) = caller.listed_workspace(query.workspace_id.as_deref())? {
        filter = filter.workspace(workspace);
    }
    if let Some(text) = &query.status {
        let status: RunStatus = serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| {
            Error::BadRequest(format!(
                "`status` {:?} is not one of queued, building, running, succeeded, failed, cancelled",
                excerpt(text)
            ))
        })?;
        filter = filter.status(status);
    }
    if let Some(text) = &query.configuration_id {
        let configuration = ConfigurationId::new(text.as_str()).map_err(|_| {
            Error::BadRequest(format!("`configuration_id` {:?} is not a configuration id", excerpt(text)))
        })?;
        filter = filter.configuration(configuration);
    }
    let limit = ade_core::api::page_limit(query.limit.as_deref(), state.config().default_runs_limit, MAX_RUNS_LIMIT)?;
    let page = state.runtime().list_runs(&filter, limit, query.cursor.as_deref()).await?;
    let runs: Vec<Run> = page.runs.into_iter().map(|run| mount.run(run)).collect();
    Ok(Json(serde_json::json!({ "runs": runs, "next_cursor": page.next_cursor })))
}
