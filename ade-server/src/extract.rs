//! Extractors whose failures are this crate's [`Error`]s (and so problem+json).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::state::AppState;

/// A JSON body, read up to [`ServerConfig::max_json_body`](crate::ServerConfig::max_json_body):
/// a wrong content type is 415, a larger body 413, malformed JSON 400, and JSON of the wrong
/// shape (unknown fields included) 422.
#[derive(Debug)]
pub(crate) struct ApiJson<T> {
    pub(crate) value: T,
    /// The body as received.
    pub(crate) raw: Bytes,
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Error> {
        let limit = state.config().max_json_body;
        if !is_json(request.headers()) {
            return Err(Error::UnsupportedMediaType(
                "expected a body with `Content-Type: application/json`".to_owned(),
            ));
        }
        let too_large =
            || Error::PayloadTooLarge(format!("the request body is larger than the JSON body limit of {limit} bytes"));
        if content_length(request.headers()).is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let mut body = request.into_body().into_data_stream();
        let mut buffer = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|error| Error::BadRequest(format!("could not read the request body: {error}")))?;
            if buffer.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buffer.extend_from_slice(&chunk);
        }
        let raw = Bytes::from(buffer);
        if raw.is_empty() {
            return Err(Error::BadRequest("the request body is empty; expected a JSON object".to_owned()));
        }
        let value = serde_json::from_slice(&raw).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => Error::Unprocessable(format!("invalid request body: {error}")),
            _ => Error::BadRequest(format!("malformed JSON: {error}")),
        })?;
        Ok(Self { value, raw })
    }
}

/// `application/json` or `application/<something>+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let media = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// The declared `Content-Length`, if any.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// A query string, parsed as `T`; a failure is a 400 problem.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(Error::from)
    }
}

/// Path parameters, parsed as `T`; a failure (say, a segment that is not UTF-8) is a 404
/// problem: a malformed id names nothing.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(Error::from)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for crate::auth::Caller {
    type Rejection = Error;

    /// The caller the auth middleware found; its absence is a bug in the router, not the client's.
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Error> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| Error::Internal("a route that needs a caller has no auth layer".to_owned()))
    }
}

/// A number written as decimal digits only: `+5`, ` 5` and `5.0` are not cursors or limits, even
/// though Rust's integer parsing takes a leading `+`.
pub(crate) fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
