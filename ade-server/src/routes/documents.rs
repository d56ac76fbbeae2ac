//! `POST /documents` (multipart field `file`, or a raw body with `?filename=`) and
//! `GET /documents/{id}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ade_core::event::{DocumentId, WorkspaceId};
use ade_core::store::Document;
use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{Stream, TryStreamExt};
use tokio_util::io::StreamReader;

use super::excerpt;
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{ApiPath, ApiQuery, content_length};
use crate::mount::Mount;
use crate::state::AppState;

/// Room for multipart headers and boundaries around the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

pub(super) async fn upload(
    State(state): State<AppState>,
    mount: Mount,
    caller: Caller,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    request: Request,
) -> Result<Response> {
    let named = match query.get("workspace_id") {
        Some(text) => Some(
            WorkspaceId::new(text.as_str())
                .map_err(|_| Error::BadRequest(format!("`workspace_id` {:?} is not a workspace id", excerpt(text))))?,
        ),
        None => None,
    };
    let workspace_id = caller.workspace_or_default(named)?;
    let limit = state.config().max_upload;
    let media = media_type(request.headers());
    let multipart = media.as_deref() == Some("multipart/form-data");
    let overhead = if multipart { MULTIPART_OVERHEAD } else { 0 };
    if content_length(request.headers()).is_some_and(|length| length > limit.saturating_add(overhead)) {
        return Err(too_large(limit));
    }
    let document = if multipart {
        let mut form = Multipart::from_request(request, &state).await?;
        let mut stored = None;
        while let Some(field) = form.next_field().await? {
            if field.name() != Some("file") || stored.is_some() {
                continue;
            }
            let filename = field.file_name().unwrap_or("document").to_owned();
            let content_type = field.content_type().map(str::to_owned);
            stored = Some(store(&state, &workspace_id, &filename, content_type, field, limit).await?);
        }
        stored.ok_or_else(|| Error::BadRequest("the multipart body has no field named `file`".to_owned()))?
    } else {
        let filename = query.get("filename").filter(|f| !f.trim().is_empty()).cloned().ok_or_else(|| {
            Error::BadRequest(
                "a raw upload needs `?filename=`; or send multipart/form-data with a field named `file`".to_owned(),
            )
        })?;
        let body = request.into_body().into_data_stream();
        store(&state, &workspace_id, &filename, media, body, limit).await?
    };
    let location = HeaderValue::from_str(&mount.link(&format!("/documents/{}", document.id)))
        .map_err(|_| Error::Internal("a document link is not a header value".to_owned()))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(document)).into_response())
}

/// Streams `body` into the runtime's document store; errors of the body itself (a malformed
/// multipart, a client that went away) are the client's, not the server's.
async fn store<S, E>(
    state: &AppState,
    workspace_id: &WorkspaceId,
    filename: &str,
    content_type: Option<String>,
    body: S,
    limit: u64,
) -> Result<Document>
where
    S: Stream<Item = std::result::Result<axum::body::Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let body_error: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = body_error.clone();
    let reader = StreamReader::new(body.map_err(move |error| {
        let message = error.to_string();
        if let Ok(mut slot) = seen.lock() {
            slot.get_or_insert(message.clone());
        }
        std::io::Error::other(message)
    }));
    // `application/octet-stream` says nothing: the file name's extension says more.
    let content_type = content_type.filter(|t| t != "application/octet-stream");
    let stored = state.runtime().upload_document(workspace_id, filename, content_type.as_deref(), reader, limit).await;
    match stored {
        Ok(document) => Ok(document),
        Err(ade_core::Error::DocumentTooLarge { .. }) => Err(too_large(limit)),
        Err(error) => match body_error.lock().ok().and_then(|mut slot| slot.take()) {
            Some(cause) if cause.contains("length limit") => Err(too_large(limit)),
            Some(cause) => Err(Error::BadRequest(format!("could not read the upload: {}", excerpt(&cause)))),
            None => Err(error.into()),
        },
    }
}

fn too_large(limit: u64) -> Error {
    Error::PayloadTooLarge(format!("the document is larger than the upload limit of {limit} bytes"))
}

/// The request's media type, lower case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Document>> {
    let not_found = || Error::NotFound(format!("no document {}", excerpt(&id)));
    let document_id: DocumentId = id.parse().map_err(|_| not_found())?;
    match state.runtime().get_document(caller.single_workspace(), document_id).await? {
        Some(document) if caller.can_see(&document.workspace_id) => Ok(Json(document)),
        _ => Err(not_found()),
    }
}
