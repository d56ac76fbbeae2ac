//! What every front of the runtime applies the same way (the HTTP server's handlers and the
//! client's in-process transport), so that they cannot drift: the limits of pages and keys, the
//! idempotency hash, the reads behind event pages and logs, and which answer each error is.

use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result, excerpt};
use crate::event::StoredEvent;
use crate::store::{EventStore, EventStream, RunKey};

/// Runs per page of `GET /runs` when the request names no limit (a server may set its own).
pub const DEFAULT_RUNS_LIMIT: usize = 50;
/// Most runs per page of `GET /runs`.
pub const MAX_RUNS_LIMIT: usize = 200;
/// Events per JSON page of `GET /runs/{id}/events` when the request names no limit.
pub const DEFAULT_EVENTS_LIMIT: usize = 1000;
/// Most events per JSON page.
pub const MAX_EVENTS_LIMIT: usize = 10_000;
/// Longest `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Largest document upload unless the host sets another limit: 100 MiB.
pub const DEFAULT_MAX_UPLOAD: u64 = 100 * 1024 * 1024;

/// A page size as asked (`None`: `default`), if it is from 1 to `max`.
///
/// # Errors
/// [`Refusal::BadRequest`] naming the range and echoing (a cut of) what was asked.
pub fn page_limit(asked: Option<&str>, default: usize, max: usize) -> std::result::Result<usize, Refusal> {
    let Some(text) = asked else { return Ok(default.clamp(1, max)) };
    text.parse::<usize>()
        .ok()
        .filter(|limit| (1..=max).contains(limit) && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Refusal::BadRequest(format!("`limit` must be an integer from 1 to {max}, not {:?}", excerpt(text)))
        })
}

/// Whether two requests with one idempotency key are the same request: sha256 of the body as
/// canonical JSON (object keys sorted, no insignificant whitespace), as `sha256:<hex>`.
pub fn request_hash(body: &serde_json::Value) -> String {
    format!("sha256:{:x}", Sha256::digest(body.to_string().as_bytes()))
}

/// One JSON page of a run's log: up to `limit` events after `after`, and whether more exist now.
///
/// # Errors
/// The store's.
pub async fn events_page(
    store: &dyn EventStore,
    key: &RunKey,
    after: u64,
    limit: usize,
) -> Result<(Vec<Arc<StoredEvent>>, bool)> {
    // One more than the page says whether more events exist now.
    let mut events: Vec<_> = store.read_after(key, after).await?.take(limit + 1).try_collect().await?;
    let more = events.len() > limit;
    events.truncate(limit);
    Ok((events, more))
}

/// Every event of a run after `after` that exists now (up to the log's end when asked), read
/// from the store as it is consumed: what an NDJSON answer sends, in constant memory.
///
/// # Errors
/// The store's.
pub async fn events_now(store: &dyn EventStore, key: &RunKey, after: u64) -> Result<EventStream> {
    let last = store.tail(key).await?.last_sequence;
    let events = store.read_after(key, after).await?;
    Ok(events.try_take_while(move |event| std::future::ready(Ok(event.sequence() <= last))).boxed())
}

/// The answer an error of the runtime is to a client's request: its class (an HTTP status) and
/// what to tell the client. Errors that are the client's are named; the rest is
/// [`Internal`](Self::Internal), whose detail is for the host's log, not for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// 400: the request is malformed (a limit, a cursor).
    BadRequest(String),
    /// 404: no such resource.
    NotFound(String),
    /// 409: the resource is not in a state that allows it.
    Conflict(String),
    /// 413: over a size limit.
    PayloadTooLarge(String),
    /// 422: well-formed, but refers to what does not exist or is not allowed.
    Unprocessable(String),
    /// 507: the host's storage is full; retrying later can work.
    InsufficientStorage(String),
    /// 500: not the client's doing.
    Internal(String),
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge(_) => 413,
            Self::Unprocessable(_) => 422,
            Self::InsufficientStorage(_) => 507,
            Self::Internal(_) => 500,
        }
    }

    /// What to tell the client (for [`Internal`](Self::Internal): what to log).
    pub fn detail(&self) -> &str {
        match self {
            Self::BadRequest(detail)
            | Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::PayloadTooLarge(detail)
            | Self::Unprocessable(detail)
            | Self::InsufficientStorage(detail)
            | Self::Internal(detail) => detail,
        }
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        if error.is_out_of_space() {
            // Says what is full, not where: the store's message may name the host's files.
            let what = match &error {
                Error::StorageFull { what, .. } => what,
                Error::WriteFailed { .. } => "the event log",
                _ => "the data directory",
            };
            return Self::InsufficientStorage(format!(
                "the server's storage is full ({what}); retry once space is freed"
            ));
        }
        match error {
            Error::InvalidId { .. } => Self::Unprocessable(error.to_string()),
            Error::RunNotFound(id) => Self::NotFound(format!("no run {id}")),
            Error::UnknownConfiguration(id) => Self::Unprocessable(format!("unknown configuration {id}")),
            Error::UnknownDocument(id) => Self::Unprocessable(format!("unknown document {id}")),
            Error::IdempotencyConflict => Self::Unprocessable(
                "the Idempotency-Key was already used in this workspace with a different request body".to_owned(),
            ),
            Error::AlreadyTerminal(id) => Self::Conflict(format!("run {id} has already ended")),
            Error::InvalidCursor(_) => Self::BadRequest("`cursor` is not a cursor this server made".to_owned()),
            Error::DocumentTooLarge { limit } => {
                Self::PayloadTooLarge(format!("the document is larger than the upload limit of {limit} bytes"))
            }
            Error::BlobTooLarge { limit } => {
                Self::PayloadTooLarge(format!("the body is larger than the limit of {limit} bytes"))
            }
            // A name from a request that would leave its directory names nothing there.
            Error::InvalidBlobKey { .. } => Self::NotFound(error.to_string()),
            Error::Config { reason, .. } => Self::Unprocessable(format!("invalid configuration: {reason}")),
            other => Self::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_are_integers_in_range() {
        assert_eq!(page_limit(None, 50, 200), Ok(50));
        assert_eq!(page_limit(None, 500, 200), Ok(200), "a default over the maximum is the maximum");
        assert_eq!(page_limit(Some("200"), 50, 200), Ok(200));
        for bad in ["0", "201", "-1", "+5", "1.0", "", "ten", "99999999999999999999999"] {
            let refused = page_limit(Some(bad), 50, 200);
            assert!(
                matches!(&refused, Err(Refusal::BadRequest(d)) if d.contains("from 1 to 200")),
                "{bad}: {refused:?}"
            );
        }
    }

    #[test]
    fn the_request_hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": [1, 2]}"#).expect("json");
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).expect("json");
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&serde_json::json!({"a": [2, 1], "b": 1})));
        assert!(request_hash(&a).starts_with("sha256:"));
    }

    #[test]
    fn client_errors_are_named_and_the_rest_is_internal() {
        let run = crate::event::RunId::new();
        assert_eq!(Refusal::from(Error::RunNotFound(run)).status(), 404);
        assert_eq!(Refusal::from(Error::AlreadyTerminal(run)).status(), 409);
        assert_eq!(Refusal::from(Error::BlobTooLarge { limit: 1 }).status(), 413);
        assert_eq!(Refusal::from(Error::InvalidCursor("x".to_owned())).status(), 400);
        assert_eq!(Refusal::from(Error::Task("boom".to_owned())).status(), 500);
    }
}
