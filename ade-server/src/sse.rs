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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ade_core::event::StoredEvent;
    use axum::body::Bytes;
    use futures::StreamExt;
    use tokio::sync::mpsc;
    use tokio::time::{Duration, Instant};
    use tokio_util::sync::CancellationToken;

    fn event(sequence: u64) -> Arc<StoredEvent> {
        let json = format!(
            r#"{{"type":"run.phase.started","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N","created_at":"2026-11-26T18:52:57.802612Z","sequence":{sequence},"source":"engine","workspace_id":"acme","configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T","payload":{{"phase":"mapping"}}}}"#
        );
        Arc::new(StoredEvent::from_json(Bytes::from(json)).expect("an envelope"))
    }

    type Sender = mpsc::UnboundedSender<ade_core::Result<Arc<StoredEvent>>>;

    fn sse_body(keepalive: Duration, shutdown: CancellationToken) -> (Sender, axum::body::BodyDataStream) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let events = futures::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|e| (e, r)) }).boxed();
        let response = super::response(axum::http::StatusCode::OK, events, Duration::from_secs(2), keepalive, shutdown);
        (sender, response.into_body().into_data_stream())
    }

    async fn chunk(body: &mut axum::body::BodyDataStream) -> Option<String> {
        body.next().await.map(|c| String::from_utf8(c.expect("chunk").to_vec()).expect("utf-8"))
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_comes_after_the_quiet_interval_and_resets_on_data() {
        let shutdown = CancellationToken::new();
        let (sender, mut body) = sse_body(Duration::from_secs(15), shutdown.clone());
        assert_eq!(chunk(&mut body).await.as_deref(), Some("retry: 2000\n\n"));
        sender.send(Ok(event(1))).expect("send");
        let first = chunk(&mut body).await.expect("frame");
        assert!(first.starts_with("id: 1\nevent: ade.event\ndata: {\"type\":\"run.phase.started\""), "{first}");
        assert!(first.ends_with("}\n\n"));
        let quiet_since = Instant::now();
        // Nothing for 14 s …
        assert!(tokio::time::timeout(Duration::from_secs(14), body.next()).await.is_err());
        // … a keepalive at 15 s, and the next one 15 s later.
        assert_eq!(chunk(&mut body).await.as_deref(), Some(": keepalive\n\n"));
        assert_eq!(Instant::now() - quiet_since, Duration::from_secs(15));
        assert_eq!(chunk(&mut body).await.as_deref(), Some(": keepalive\n\n"));
        assert_eq!(Instant::now() - quiet_since, Duration::from_secs(30));
        // Data 10 s later resets the interval.
        tokio::time::advance(Duration::from_secs(10)).await;
        sender.send(Ok(event(2))).expect("send");
        assert!(chunk(&mut body).await.expect("frame").starts_with("id: 2\n"));
        let data_at = Instant::now();
        assert_eq!(chunk(&mut body).await.as_deref(), Some(": keepalive\n\n"));
        assert_eq!(Instant::now() - data_at, Duration::from_secs(15));
        // Shutdown ends the stream at once, between frames.
        shutdown.cancel();
        assert_eq!(chunk(&mut body).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_ends_after_the_terminal_event_or_an_error() {
        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some_and(|c| c.starts_with("retry:")));
        // `run.completed` ends a run; the stream only looks at its type.
        let json = String::from_utf8(event(2).json().to_vec())
            .expect("utf-8")
            .replace("\"run.phase.started\"", "\"run.completed\"")
            .replace(r#""payload":{"phase":"mapping"}"#, r#""payload":{}"#);
        let terminal = StoredEvent::from_stored_json(Bytes::from(json)).expect("header");
        assert!(terminal.is_terminal());
        sender.send(Ok(Arc::new(terminal))).expect("send");
        sender.send(Ok(event(3))).expect("send");
        assert!(chunk(&mut body).await.is_some_and(|c| c.starts_with("id: 2\n")));
        assert_eq!(chunk(&mut body).await, None, "nothing after run.completed");

        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some());
        sender.send(Err(ade_core::Error::Task("the store broke".to_owned()))).expect("send");
        assert_eq!(chunk(&mut body).await, None, "an error ends the stream; the client resumes");
    }
}
