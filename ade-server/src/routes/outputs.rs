//! `GET /runs/{id}/outputs` and `GET /runs/{id}/outputs/{name}`: the files of the run's
//! `outputs/` directory, never anything outside it.

use ade_core::orchestrate::content_type_for;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio_util::io::ReaderStream;

use super::{excerpt, parse_run_id, visible_run};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::ApiPath;
use crate::state::AppState;

/// One output file.
#[derive(Debug, Serialize)]
struct Output {
    name: String,
    byte_size: u64,
    content_type: &'static str,
    href: String,
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>> {
    let id = parse_run_id(&id)?;
    let run = visible_run(&state, &caller, id).await?;
    let dir = state.runtime().run_dir(&run.workspace_id, id).join("outputs");
    let mut outputs = Vec::new();
    match tokio::fs::read_dir(&dir).await {
        Ok(mut entries) => {
            while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(&e))? {
                // Regular files only: a symbolic link could point anywhere.
                let metadata = entry.metadata().await.map_err(|e| io_error(&e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                if metadata.is_file() && valid_name(&name) {
                    outputs.push(Output {
                        content_type: content_type_for(&name),
                        href: format!("/runs/{id}/outputs/{name}"),
                        byte_size: metadata.len(),
                        name,
                    });
                }
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(&error)),
    }
    outputs.sort_by(|a, b| a.name.cmp(&b.name));
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
    if !valid_name(&name) {
        return Err(not_found());
    }
    let path = state.runtime().run_dir(&run.workspace_id, id).join("outputs").join(&name);
    // `symlink_metadata`: a link is not followed, so it is not an output.
    match tokio::fs::symlink_metadata(&path).await {
        Ok(metadata) if metadata.is_file() => {}
        Ok(_) => return Err(not_found()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(error) => return Err(io_error(&error)),
    }
    let file = tokio::fs::File::open(&path).await.map_err(|e| io_error(&e))?;
    let length = file.metadata().await.map_err(|e| io_error(&e))?.len();
    let disposition = format!("attachment; filename=\"{}\"", header_safe(&name));
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type_for(&name))),
        (header::CONTENT_LENGTH, HeaderValue::from(length)),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        ),
    ];
    Ok((headers, Body::from_stream(ReaderStream::new(file))).into_response())
}

/// A single, plain path segment: no separators, no `.`/`..`, no control characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// The name as it can stand in a quoted header parameter.
fn header_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect()
}

fn io_error(error: &std::io::Error) -> Error {
    Error::Internal(format!("reading outputs: {error}"))
}
