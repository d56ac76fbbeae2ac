//! `GET /runs/{id}/events` (SPEC §4.1): a JSON page, NDJSON, or SSE, by `Accept`.

use std::collections::HashMap;

use ade_core::api;
use ade_core::dispatch::After;
use ade_core::store::RunKey;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::{excerpt, parse_run_id, visible_run};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{ApiPath, ApiQuery, decimal};
use crate::negotiate::{EventsFormat, negotiate_events};
use crate::state::AppState;

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
            let limit = api::page_limit(
                query.get("limit").map(String::as_str),
                api::DEFAULT_EVENTS_LIMIT,
                api::MAX_EVENTS_LIMIT,
            )?;
            let (page, more) = api::events_page(store.as_ref(), &key, cursor, limit).await?;
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
            let events = api::events_now(store.as_ref(), &key, cursor).await?;
            let lines = ndjson_chunks(events);
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

/// NDJSON lines of `events`: those read at once go out as one chunk of about
/// [`CHUNK_BYTES`](crate::sse::CHUNK_BYTES), so a long log takes a few large writes, not one per
/// event. A store error after some lines sends those lines, then cuts the response short (no
/// final newline): a reader sees the truncation.
fn ndjson_chunks<S>(events: S) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    S: futures::Stream<Item = ade_core::Result<std::sync::Arc<ade_core::event::StoredEvent>>> + Send + 'static,
{
    /// What comes after the chunk just sent.
    enum Then {
        More,
        Fail(std::io::Error),
        End,
    }
    let events = Box::pin(events);
    futures::stream::unfold((events, Then::More), |(mut events, then)| async move {
        match then {
            Then::More => {}
            Then::Fail(error) => return Some((Err(crate::sse::broken(error).await), (events, Then::End))),
            Then::End => return None,
        }
        let first = events.next().await?;
        let (mut failed, mut ended) = (None, false);
        let chunk = crate::sse::gather(&mut events, Some(first), |chunk, item| match item {
            Some(Ok(event)) => {
                chunk.extend_from_slice(event.json());
                chunk.extend_from_slice(b"\n");
                true
            }
            Some(Err(error)) => {
                failed = Some(std::io::Error::other(error.to_string()));
                false
            }
            None => {
                ended = true;
                false
            }
        })
        .await;
        let then = match failed {
            Some(error) if chunk.is_empty() => {
                return Some((Err(crate::sse::broken(error).await), (events, Then::End)));
            }
            Some(error) => Then::Fail(error),
            None if ended => Then::End,
            None => Then::More,
        };
        Some((Ok(chunk.freeze()), (events, then)))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ade_core::event::StoredEvent;
    use axum::body::Bytes;
    use futures::StreamExt;

    fn event(sequence: u64) -> ade_core::Result<Arc<StoredEvent>> {
        let json = format!(
            r#"{{"type":"console.line","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N","created_at":"2026-11-26T18:52:57.802612Z","sequence":{sequence},"source":"engine","workspace_id":"acme","configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T","payload":{{"scope":"run","stream":"stdout","level":"info","message":"{}"}}}}"#,
            "x".repeat(200)
        );
        Ok(Arc::new(StoredEvent::from_json(Bytes::from(json)).expect("an envelope")))
    }

    fn sequences(chunk: &[u8]) -> Vec<u64> {
        let text = std::str::from_utf8(chunk).expect("utf-8");
        assert!(text.ends_with('\n'), "a chunk holds whole lines");
        text.lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON line")["sequence"].as_u64())
            .map(|sequence| sequence.expect("a sequence"))
            .collect()
    }

    #[tokio::test]
    async fn lines_read_at_once_share_chunks_of_bounded_size() {
        // Not fused, like the store's streams: polling it after its end panics.
        let events = futures::stream::unfold(1, |sequence| async move {
            (sequence <= 1000).then(|| (event(sequence), sequence + 1))
        });
        let chunks: Vec<_> = Box::pin(super::ndjson_chunks(events)).collect().await;
        let line = event(1).expect("event").json().len() + 1;
        let mut seen = Vec::new();
        for chunk in &chunks {
            let chunk = chunk.as_ref().expect("no error");
            assert!(chunk.len() < crate::sse::CHUNK_BYTES + line, "{} bytes", chunk.len());
            seen.extend(sequences(chunk));
        }
        assert_eq!(seen, (1..=1000).collect::<Vec<_>>(), "every line once, in order");
        // ~450 bytes a line: about 14 chunks of 32 KiB, not 1,000.
        assert!((10..=20).contains(&chunks.len()), "{} chunks", chunks.len());
    }

    #[tokio::test]
    async fn lines_read_before_a_store_error_are_sent_then_the_error() {
        let items = vec![event(1), event(2), Err(ade_core::Error::Task("the disk broke".to_owned())), event(3)];
        let mut chunks = Box::pin(super::ndjson_chunks(futures::stream::iter(items)));
        assert_eq!(sequences(&chunks.next().await.expect("a chunk").expect("lines")), [1, 2]);
        let error = chunks.next().await.expect("the error").expect_err("an error");
        assert!(error.to_string().contains("the disk broke"), "{error}");
        assert!(chunks.next().await.is_none(), "nothing after the error");
    }
}
