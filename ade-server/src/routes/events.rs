//! `GET /runs/{id}/events` (SPEC §4.1): a JSON page, NDJSON, or SSE, by `Accept`.

use std::collections::HashMap;

use ade_core::dispatch::After;
use ade_core::store::RunKey;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};

use super::{excerpt, parse_run_id, visible_run};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{ApiPath, ApiQuery, decimal};
use crate::negotiate::{EventsFormat, negotiate_events};
use crate::state::AppState;

/// Default size of a JSON page.
const DEFAULT_LIMIT: usize = 1000;
/// Largest JSON page.
const MAX_LIMIT: usize = 10_000;

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = parse_run_id(&id)?;
    let cursor = cursor(&query, &headers)?;
    let format = negotiate_events(&headers)?;
    let run = visible_run(&state, &caller, id).await?;
    let key = RunKey::new(run.workspace_id.clone(), id);
    let store = state.runtime().dispatcher().store();
    match format {
        EventsFormat::Json => {
            let limit = match query.get("limit") {
                None => DEFAULT_LIMIT,
                Some(text) => decimal::<usize>(text).filter(|l| (1..=MAX_LIMIT).contains(l)).ok_or_else(|| {
                    Error::BadRequest(format!(
                        "`limit` must be an integer from 1 to {MAX_LIMIT}, not {:?}",
                        excerpt(text)
                    ))
                })?,
            };
            // One more than the page says whether more events exist now.
            let events: Vec<_> = store.read_after(&key, cursor).await?.take(limit + 1).try_collect().await?;
            let more = events.len() > limit;
            let page = &events[..events.len().min(limit)];
            let mut body = Vec::with_capacity(page.iter().map(|e| e.json().len() + 1).sum::<usize>() + 48);
            body.extend_from_slice(b"{\"events\":[");
            for (i, event) in page.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(event.json());
            }
            body.extend_from_slice(b"],\"next_after_sequence\":");
            match page.last() {
                Some(last) if more => body.extend_from_slice(last.sequence().to_string().as_bytes()),
                _ => body.extend_from_slice(b"null"),
            }
            body.push(b'}');
            Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
        }
        EventsFormat::Ndjson => {
            // Every event that exists now, read from the store as it is sent: constant memory.
            let last = store.tail(&key).await?.last_sequence;
            let lines = store
                .read_after(&key, cursor)
                .await?
                .try_take_while(move |event| std::future::ready(Ok(event.sequence() <= last)))
                .map_ok(|event| {
                    let json = event.json();
                    let mut line = Vec::with_capacity(json.len() + 1);
                    line.extend_from_slice(json);
                    line.push(b'\n');
                    Bytes::from(line)
                })
                // An error cuts the response short (no final newline): a reader sees the truncation.
                .map_err(|error| std::io::Error::other(error.to_string()));
            let mut response = Response::new(Body::from_stream(lines));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
            Ok(response)
        }
        EventsFormat::Sse => {
            if run.status.is_terminal() && cursor >= run.last_sequence {
                // Nothing will ever come: 204 tells a browser's EventSource to stop reconnecting.
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            let events = state.runtime().dispatcher().subscribe_via(key, After(cursor), "sse").await?;
            let config = state.config();
            Ok(crate::sse::response(
                StatusCode::OK,
                events,
                config.sse_retry,
                config.keepalive,
                state.shutdown_token().clone(),
            ))
        }
    }
}

/// The resume cursor: the larger of `after_sequence` and `Last-Event-ID`; 0 without either.
fn cursor(query: &HashMap<String, String>, headers: &HeaderMap) -> Result<u64> {
    let parse = |name: &str, text: &str| {
        decimal::<u64>(text.trim()).ok_or_else(|| {
            Error::BadRequest(format!("{name} must be an integer ≥ 0 (an event sequence), not {:?}", excerpt(text)))
        })
    };
    let mut cursor = 0;
    if let Some(text) = query.get("after_sequence") {
        cursor = parse("`after_sequence`", text)?;
    }
    if let Some(value) = headers.get("last-event-id") {
        let text = value.to_str().map_err(|_| Error::BadRequest("the Last-Event-ID header is not text".to_owned()))?;
        // An empty Last-Event-ID is what a browser sends after an event reset the id: no cursor.
        if !text.trim().is_empty() {
            cursor = cursor.max(parse("the Last-Event-ID header", text)?);
        }
    }
    Ok(cursor)
}
