//! The SSE body of a run's events (SPEC §4.1): `retry:` first, then one
//! `id:`/`event: ade.event`/`data:` frame per event, `: keepalive` comments after a quiet
//! interval, and the end right after `run.completed`, or at shutdown between two frames. A store
//! error cuts the response short after the frames before it (no final empty chunk), as the NDJSON
//! body does: a client sees the stream broke rather than ended, and resumes with `Last-Event-ID`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use ade_core::event::StoredEvent;
use ade_core::store::EventStream;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::BytesMut;
use futures::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// The SSE `event:` name of every ade event.
pub const EVENT_NAME: &str = "ade.event";

/// The keepalive comment frame.
const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// Frames of events that are ready at once are sent as one body chunk of about this many bytes
/// at most (one frame may make it larger).
pub(crate) const CHUNK_BYTES: usize = 32 * 1024;

struct State {
    events: EventStream,
    keepalive: Duration,
    quiet: Pin<Box<Sleep>>,
    shutdown: CancellationToken,
    retry: Option<Bytes>,
    /// A store error, to end the body with once the frames before it are sent.
    failed: Option<std::io::Error>,
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
        failed: None,
        done: false,
    };
    let frames = futures::stream::unfold(state, next_chunk);
    let mut response = Response::new(Body::from_stream(frames));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What the stream waits for next.
enum Next {
    Event(Option<ade_core::Result<Arc<StoredEvent>>>),
    Quiet,
    Shutdown,
}

async fn next_chunk(mut state: State) -> Option<(std::io::Result<Bytes>, State)> {
    if let Some(retry) = state.retry.take() {
        return Some((Ok(retry), state));
    }
    if let Some(error) = state.failed.take() {
        return Some((Err(broken(error).await), state));
    }
    if state.done {
        return None;
    }
    let next = tokio::select! {
        // Shutdown ends the stream between two frames: a client never gets half an event.
        biased;
        () = state.shutdown.cancelled() => Next::Shutdown,
        item = state.events.next() => Next::Event(item),
        () = state.quiet.as_mut() => Next::Quiet,
    };
    let item = match next {
        Next::Shutdown => return None,
        Next::Quiet => {
            let deadline = Instant::now() + state.keepalive;
            state.quiet.as_mut().reset(deadline);
            return Some((Ok(Bytes::from_static(KEEPALIVE)), state));
        }
        Next::Event(item) => item,
    };
    // Every event that is ready now goes into this one chunk: a reader that fell behind catches
    // up with a few large writes instead of one per event.
    let (done, failed) = (&mut state.done, &mut state.failed);
    let chunk = gather(&mut state.events, item, |chunk, item| {
        match item {
            Some(Ok(event)) => {
                *done = event.is_terminal();
                push_frame(chunk, event.sequence(), event.json());
            }
            Some(Err(error)) => {
                // The client resumes with Last-Event-ID; the cause is the server's business.
                tracing::warn!(%error, "an event stream broke on a store error");
                *failed = Some(std::io::Error::other("the event store failed; resume with Last-Event-ID"));
                *done = true;
            }
            None => *done = true,
        }
        !*done
    })
    .await;
    if chunk.is_empty() {
        let error = state.failed.take()?;
        return Some((Err(broken(error).await), state));
    }
    let deadline = Instant::now() + state.keepalive;
    state.quiet.as_mut().reset(deadline);
    Some((Ok(chunk.freeze()), state))
}

/// One body chunk: `push` gets `first`, then every item `items` has ready now, until it returns
/// `false` (the stream's end, say) or the chunk holds [`CHUNK_BYTES`]. Never waits for an item.
pub(crate) async fn gather<S: Stream + Unpin>(
    items: &mut S,
    first: Option<S::Item>,
    mut push: impl FnMut(&mut BytesMut, Option<S::Item>) -> bool,
) -> BytesMut {
    let mut chunk = BytesMut::new();
    let mut item = first;
    while push(&mut chunk, item) && chunk.len() < CHUNK_BYTES {
        match futures::poll!(items.next()) {
            Poll::Ready(next) => {
                // More than one item: room for a whole chunk at once instead of growing it item
                // by item (a lone item, the usual case of a live reader, gets only its own size).
                if chunk.capacity() < CHUNK_BYTES {
                    chunk.reserve(CHUNK_BYTES);
                }
                item = next;
            }
            Poll::Pending => break,
        }
    }
    // A chunk may wait in hyper's buffer for as long as its reader does not read: it keeps no more
    // room than it uses (a few frames in a whole chunk's room, 16 times over, made a stalled
    // reader cost several hundred KiB).
    if chunk.capacity() > chunk.len() + chunk.len() / 4 {
        return BytesMut::from(&chunk[..]);
    }
    chunk
}

/// `error`, to break a response body with, once hyper has had the chance to send what the body
/// gave before it. hyper flushes its buffer when the body is not ready and drops what is left when
/// the body fails, so the body is not ready once first: the response head and the frames (or
/// lines) before the error reach the socket, and a client resumes after the last one it got.
pub(crate) async fn broken(error: std::io::Error) -> std::io::Error {
    tokio::task::yield_now().await;
    error
}

/// Appends one event's frame; `json` is the stored line as it is (compact JSON never holds a
/// newline).
fn push_frame(chunk: &mut BytesMut, sequence: u64, json: &Bytes) {
    use std::fmt::Write as _;
    chunk.reserve(json.len() + 48);
    // Writing into a `BytesMut` cannot fail (it grows).
    let _ = write!(chunk, "id: {sequence}\nevent: {EVENT_NAME}\ndata: ");
    chunk.extend_from_slice(json);
    chunk.extend_from_slice(b"\n\n");
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
        let last = chunk(&mut body).await.expect("the terminal frame");
        assert!(last.starts_with("id: 2\n") && !last.contains("id: 3\n"), "{last}");
        assert_eq!(chunk(&mut body).await, None, "nothing after run.completed");

        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some());
        sender.send(Err(ade_core::Error::Task("the store broke".to_owned()))).expect("send");
        assert!(body.next().await.is_some_and(|c| c.is_err()), "an error breaks the body; the client resumes");
        assert!(body.next().await.is_none());
    }

    /// The frames of `chunk`, as `id` numbers.
    fn ids(chunk: &str) -> Vec<u64> {
        chunk
            .split("\n\n")
            .filter(|frame| !frame.is_empty())
            .map(|frame| {
                let id = frame.strip_prefix("id: ").and_then(|rest| rest.split('\n').next()).expect("an id line");
                assert!(frame.contains("\nevent: ade.event\ndata: {"), "{frame}");
                id.parse().expect("a number")
            })
            .collect()
    }

    #[tokio::test]
    async fn events_ready_at_once_share_a_chunk_of_bounded_size() {
        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some_and(|c| c.starts_with("retry:")));
        for sequence in 1..=300 {
            sender.send(Ok(event(sequence))).expect("send");
        }
        let frame_len = frame_len();
        let mut seen = Vec::new();
        let mut chunks = 0;
        while seen.len() < 300 {
            let text = chunk(&mut body).await.expect("a chunk");
            assert!(text.len() <= super::CHUNK_BYTES + frame_len, "{} bytes", text.len());
            seen.extend(ids(&text));
            chunks += 1;
        }
        assert_eq!(seen, (1..=300).collect::<Vec<_>>(), "every frame once, in order");
        // ~330 bytes a frame: 300 of them fill about three 32 KiB chunks, not 300.
        assert!((3..=5).contains(&chunks), "{chunks} chunks");
    }

    #[tokio::test]
    async fn frames_ready_before_an_error_are_sent_then_the_body_breaks() {
        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some());
        sender.send(Ok(event(1))).expect("send");
        sender.send(Ok(event(2))).expect("send");
        sender.send(Err(ade_core::Error::Task("the store broke".to_owned()))).expect("send");
        sender.send(Ok(event(3))).expect("send");
        assert_eq!(ids(&chunk(&mut body).await.expect("frames")), [1, 2]);
        // Not a clean end, which would look like a server going away between frames.
        assert!(body.next().await.is_some_and(|c| c.is_err()), "the body breaks after the frames");
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn a_chunk_keeps_no_more_room_than_it_uses() {
        // A chunk of two frames keeps two frames' room, not a whole chunk's.
        for count in [1usize, 2, 5, 40, 300] {
            let mut items = futures::stream::iter((2..=count as u64).map(event));
            let chunk = super::gather(&mut items, Some(event(1)), |chunk, item| {
                let Some(event) = item else { return false };
                super::push_frame(chunk, event.sequence(), event.json());
                true
            })
            .await;
            assert!(
                chunk.capacity() <= chunk.len() + chunk.len() / 4,
                "{count} frames: {} bytes in a room of {}",
                chunk.len(),
                chunk.capacity()
            );
        }
    }

    fn frame_len() -> usize {
        let mut chunk = bytes::BytesMut::new();
        super::push_frame(&mut chunk, 300, event(300).json());
        chunk.len()
    }
}
