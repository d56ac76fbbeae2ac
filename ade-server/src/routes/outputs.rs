//! `GET /runs/{id}/outputs` and `GET /runs/{id}/outputs/{name}`: the blobs under the run's
//! outputs prefix in the runtime's blob store, never anything outside it.

use ade_core::blob::BlobKey;
use ade_core::orchestrate::content_type_for;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use tokio_util::io::ReaderStream;

use super::{excerpt, parse_run_id, visible_run};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::ApiPath;
use crate::mount::Mount;
use crate::state::AppState;

/// One output file of a run.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Output {
    /// The file's name in the run's `outputs/` directory.
    name: String,
    /// Its size.
    byte_size: u64,
    /// Its media type, from its extension.
    content_type: &'static str,
    /// Where to download it.
    href: String,
}

pub(super) async fn list(
    State(state): State<AppState>,
    mount: Mount,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>> {
    let id = parse_run_id(&id)?;
    let run = visible_run(&state, &caller, id).await?;
    let prefix = BlobKey::run_outputs(&run.workspace_id, id);
    // The store lists whole blobs only: no links, no files still being written, no odd names.
    let outputs: Vec<Output> = state
        .runtime()
        .blob_store()
        .list(&prefix)
        .await
        .map_err(io_error)?
        .into_iter()
        .map(|entry| {
            let name = entry.key.name().to_owned();
            Output {
                content_type: content_type_for(&name),
                href: mount.link(&format!("/runs/{id}/outputs/{name}")),
                byte_size: entry.size,
                name,
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "outputs": outputs })))
}

pub(super) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<Response> {
    let id = parse_run_id(&id)?;
    let run = visible_run(&state, &caller, id).await?;
    let not_found = || Error::NotFound(format!("run {id} has no output {:?}", excerpt(&name)));
    // A name that is not one plain segment (`..`, separators, …) names no output.
    let Ok(key) = BlobKey::output(&run.workspace_id, id, &name) else { return Err(not_found()) };
    let Some(blob) = state.runtime().blob_store().open(&key).await.map_err(io_error)? else {
        return Err(not_found());
    };
    let disposition = format!("attachment; filename=\"{}\"", header_safe(&name));
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type_for(&name))),
        (header::CONTENT_LENGTH, HeaderValue::from(blob.size())),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        ),
    ];
    Ok((headers, Body::from_stream(ReaderStream::new(blob))).into_response())
}

/// The name as it can stand in a quoted header parameter.
fn header_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect()
}

fn io_error(error: ade_core::Error) -> Error {
    Error::Internal(format!("reading outputs: {error}"))
}
