//! The SSE body of a run's events (SPEC §4.1): `retry:` first, then one
//! `id:`/`event: ade.event`/`data:` frame per event, `: keepalive` comments after a quiet
//! interval, and the end right after `run.completed`, or at shutdown between two frames.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use ade_core::store::EventStream;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::BytesMut;
use futures::StreamExt;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// The SSE `event:` name of every ade event.
pub const EVENT_NAME: &str = "ade.event";

/// The keepalive comment frame.
const KEEPALIVE: &[u8] = b": keepalive\n\n";

struct State {
    events: EventStream,
    keepalive: Duration,
    quiet: Pin<Box<Sleep>>,
    shutdown: CancellationToken,
    retry: Option<Bytes>,
    done: bool,
}

/// A response (`status`, SSE headers) streaming `events`.
pub(crate) fn response(
    status: StatusCode,
    events: EventStream,
    retry: Duration,
    keepalive: Duration,
    shutdown: CancellationToken,
) -> Response {
    let state = State {
        events,
        keepalive,
        quiet: Box::pin(tokio::time::sleep(keepalive)),
        shutdown,
        retry: Some(Bytes::from(format!("retry: {}\n\n", retry.as_millis()))),
        done: false,
    };
    let frames = futures::stream::unfold(state, next_frame);
    let mut response = Response::new(Body::from_stream(frames.map(Ok::<_, Infallible>)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

async fn next_frame(mut state: State) -> Option<(Bytes, State)> {
    if let Some(retry) = state.retry.take() {
        return Some((retry, state));
    }
    if state.done {
        return None;
    }
    tokio::select! {
        // Shutdown ends the stream between two frames: a client never gets half an event.
        biased;
        () = state.shutdown.cancelled() => None,
        item = state.events.next() => match item {
            Some(Ok(event)) => {
                state.done = event.is_terminal();
                let deadline = Instant::now() + state.keepalive;
                state.quiet.as_mut().reset(deadline);
                Some((frame(event.sequence(), event.json()), state))
            }
            Some(Err(error)) => {
                // The client resumes with Last-Event-ID; the cause is the server's business.
                tracing::warn!(%error, "an event stream ended on a store error");
                None
            }
            None => None,
        },
        () = state.quiet.as_mut() => {
            let deadline = Instant::now() + state.keepalive;
            state.quiet.as_mut().reset(deadline);
            Some((Bytes::from_static(KEEPALIVE), state))
        }
    }
}

/// One event's frame; `json` is the stored line as it is (compact JSON never holds a newline).
fn frame(sequence: u64, json: &Bytes) -> Bytes {
    let mut frame = BytesMut::with_capacity(json.len() + 48);
    frame.extend_from_slice(format!("id: {sequence}\nevent: {EVENT_NAME}\ndata: ").as_bytes());
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    frame.freeze()
}
