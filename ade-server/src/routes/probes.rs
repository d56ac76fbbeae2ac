//! `GET /healthz`, `GET /readyz`, `GET /metrics`.

use ade_core::store::RunFilter;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::state::AppState;

/// Liveness: the process serves HTTP.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: not shutting down, the run store answers, and the data directory takes writes (a
/// full disk is 503 until space is freed).
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>> {
    if state.shutdown_token().is_cancelled() {
        return Err(Error::Unavailable("the server is shutting down".to_owned()));
    }
    state
        .runtime()
        .list_runs(&RunFilter::default(), 1, None)
        .await
        .map_err(|error| Error::Unavailable(format!("the run store does not answer: {error}")))?;
    state
        .runtime()
        .check_writable()
        .await
        .map_err(|error| Error::Unavailable(format!("the data directory refuses writes: {error}")))?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus text exposition of the recorder the host installed; every SPEC §11 name is in it,
/// those without a series yet as `# HELP` and `# TYPE` lines.
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let handle = state
        .config()
        .metrics
        .as_ref()
        .ok_or_else(|| Error::NotFound("metrics are not enabled on this server".to_owned()))?;
    let mut text = handle.render();
    text += &crate::http_metrics::missing_families(&text);
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}
