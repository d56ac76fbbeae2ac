//! The one error type of `ade-server`, and its only mapping to HTTP: RFC 9457
//! `application/problem+json` (`type`, `title`, `status`, `detail`).
//!
//! Every failure a handler, an extractor or the router itself can produce ends up here: axum's
//! own rejections are converted by [`From`] impls (JSON bodies are read by
//! [`crate::extract::ApiJson`], which reports bad JSON, wrong content types and oversized bodies
//! itself), unmatched routes and methods by the router's fallbacks, and `ade-core` errors
//! by [`From<ade_core::Error>`].

use ade_core::api::Refusal;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed (bad query value, bad cursor, malformed JSON, …).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials that match no token.
    #[error("{0}")]
    Unauthorized(String),
    /// The token is valid but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such route, or no such object visible to the caller.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    /// The `Accept` header allows none of the representations the route has.
    #[error("{0}")]
    NotAcceptable(String),
    /// The object is in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// The request target is longer than the server takes.
    #[error("{0}")]
    UriTooLong(String),
    /// The request body did not arrive in time (the body read timeout).
    #[error("{0}")]
    RequestTimeout(String),
    /// A body larger than a limit of SPEC §9.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body's media type is not one the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but unusable: unknown fields, unknown configuration or document, …
    #[error("{0}")]
    Unprocessable(String),
    /// The server cannot take the request right now (shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// The server's storage is full; the request works again once the operator frees space.
    #[error("{0}")]
    InsufficientStorage(String),
    /// Something broke on the server's side; the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem type's short name (the last part of its `type` URI).
    fn slug(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::NotAcceptable(_) => "not-acceptable",
            Self::Conflict(_) => "conflict",
            Self::UriTooLong(_) => "uri-too-long",
            Self::RequestTimeout(_) => "request-timeout",
            Self::PayloadTooLarge(_) => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Unprocessable(_) => "unprocessable",
            Self::Unavailable(_) => "unavailable",
            Self::InsufficientStorage(_) => "insufficient-storage",
            Self::Internal(_) => "internal",
        }
    }
}

/// An RFC 9457 problem: the body of every error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Problem<'a> {
    /// A URN naming the kind of problem, such as `urn:ade:problem:not-found`.
    #[serde(rename = "type")]
    type_: String,
    /// The HTTP status's reason phrase.
    title: &'a str,
    /// The HTTP status.
    status: u16,
    /// What was wrong, naming the field or limit.
    detail: String,
}

/// The problem+json body of an error answer with `status`, of the kind `slug`.
pub(crate) fn problem_json(status: StatusCode, slug: &str, detail: String) -> Vec<u8> {
    let problem = Problem {
        type_: format!("urn:ade:problem:{slug}"),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
    };
    serde_json::to_vec(&problem).unwrap_or_default()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(cause) => {
                // The cause may name files of the server; it goes to the log only, at most once
                // a second (a failing store fails every request at once).
                static LOGGED: ade_core::log_limit::LogLimit = ade_core::log_limit::LogLimit::every_second();
                if let Some(suppressed) = LOGGED.allow() {
                    tracing::error!(%cause, suppressed, "request failed");
                }
                "the server could not complete the request; the cause is in its log".to_owned()
            }
            other => other.to_string(),
        };
        let body = problem_json(status, self.slug(), detail);
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if matches!(self, Self::Unauthorized(_)) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The answer to a runtime error is the one every front gives (`ade_core::api::Refusal`).
impl From<ade_core::Error> for Error {
    fn from(error: ade_core::Error) -> Self {
        Self::from(Refusal::from(error))
    }
}

impl From<ade_webhooks::Error> for Error {
    fn from(error: ade_webhooks::Error) -> Self {
        use ade_webhooks::Error as E;
        match error {
            E::Core(error) => Self::from(error),
            E::NotFound(_) => Self::NotFound(error.to_string()),
            E::InvalidUrl(_) | E::PrivateTarget(_) | E::InvalidFilter(_) | E::InvalidSecret(_) => {
                Self::Unprocessable(error.to_string())
            }
            _ => Self::Internal(error.to_string()),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        let detail = refusal.detail().to_owned();
        match refusal {
            Refusal::BadRequest(_) => Self::BadRequest(detail),
            Refusal::NotFound(_) => Self::NotFound(detail),
            Refusal::Conflict(_) => Self::Conflict(detail),
            Refusal::PayloadTooLarge(_) => Self::PayloadTooLarge(detail),
            Refusal::Unprocessable(_) => Self::Unprocessable(detail),
            Refusal::InsufficientStorage(_) => Self::InsufficientStorage(detail),
            _ => Self::Internal(detail),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Self::NotFound(rejection.body_text())
    }
}

impl From<MultipartRejection> for Error {
    fn from(rejection: MultipartRejection) -> Self {
        match rejection {
            MultipartRejection::InvalidBoundary(_) => {
                Self::BadRequest("multipart body without a valid boundary".to_owned())
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<MultipartError> for Error {
    fn from(error: MultipartError) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge("the multipart body is larger than the upload limit".to_owned())
        } else {
            Self::BadRequest(format!("malformed multipart body: {}", error.body_text()))
        }
    }
}
