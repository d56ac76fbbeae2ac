//! The SSE body of a run's events (SPEC §4.1): `retry:` first, then one
//! `id:`/`event: ade.event`/`data:` frame per event, `: keepalive` comments after a quiet
//! interval, and the end right after `run.completed`, or at shutdown between two frames. A store
//! error cuts the response short after the frames before it (no final empty chunk), as the NDJSON
//! body does: a client sees the stream broke rather than ended, and resumes with `Last-Event-ID`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use ade_core::event::StoredEvent;
use ade_core::store::EventStream;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::BytesMut;
use futures::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The SSE `event:` name of every ade event.
pub const EVENT_NAME: &str = ade_core::event::SSE_EVENT_NAME;

/// The keepalive comment frame.
const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// Frames of events that are ready at once are sent as one body chunk of about this many bytes
/// at most (one frame may make it larger).
pub(crate) const CHUNK_BYTES: usize = 32 * 1024;

/// A response (`status`, SSE headers) streaming `events`.
pub(crate) fn response(
    status: StatusCode,
    events: EventStream,
    retry: Duration,
    keepalive: Duration,
    shutdown: CancellationToken,
) -> Response {
    let body = SseBody {
        events,
        keepalive,
        quiet: Box::pin(tokio::time::sleep(keepalive)),
        last_sent: Instant::now(),
        sent_since_quiet: false,
        // A child token of its own: looking at it locks nothing the other streams share.
        shutdown: Box::pin(shutdown.child_token().cancelled_owned()),
        retry: Some(Bytes::from(format!("retry: {}\n\n", retry.as_millis()))),
        gathered: Vec::new(),
        failed: None,
        yielded: false,
        done: false,
    };
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The body: a hand-written stream, so a frame costs a poll, not a new future.
struct SseBody {
    events: EventStream,
    keepalive: Duration,
    /// Fires `keepalive` after the last data (checked against `last_sent` when it fires, so data
    /// does not have to move the timer).
    quiet: Pin<Box<Sleep>>,
    last_sent: Instant,
    /// Data went out since the events were last found not ready (`last_sent` is then set).
    sent_since_quiet: bool,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    retry: Option<Bytes>,
    /// The events of the chunk being put together (kept for its room).
    gathered: Vec<Arc<StoredEvent>>,
    /// A store error, to end the body with once the frames before it are sent.
    failed: Option<std::io::Error>,
    /// hyper has had its chance to send what came before `failed`.
    yielded: bool,
    done: bool,
}

type Item = Option<ade_core::Result<Arc<StoredEvent>>>;

impl Stream for SseBody {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(retry) = this.retry.take() {
            return Poll::Ready(Some(Ok(retry)));
        }
        loop {
            if this.failed.is_some() {
                // hyper flushes its buffer when the body is not ready and drops what is left when
                // the body fails, so the body is not ready once first: the frames before the error
                // reach the socket, and a client resumes after the last one it got.
                if !std::mem::replace(&mut this.yielded, true) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                return Poll::Ready(this.failed.take().map(Err));
            }
            if this.done {
                return Poll::Ready(None);
            }
            // Shutdown ends the stream between two frames: a client never gets half an event.
            if this.shutdown.as_mut().poll(cx).is_ready() {
                this.done = true;
                return Poll::Ready(None);
            }
            match this.events.poll_next_unpin(cx) {
                Poll::Ready(item) => {
                    this.sent_since_quiet = true;
                    if let Some(bytes) = this.take(item, cx) {
                        return Poll::Ready(Some(Ok(bytes)));
                    }
                    // The end, or an error: the top of the loop says which.
                }
                Poll::Pending => {
                    if std::mem::take(&mut this.sent_since_quiet) {
                        this.last_sent = Instant::now();
                    }
                    return this.poll_quiet(cx);
                }
            }
        }
    }
}

impl SseBody {
    /// What to hand out for `item`, the next event: a lone event's frame as it is (the bytes every
    /// subscriber shares), or the frames of every event ready now copied into one chunk of up to
    /// [`CHUNK_BYTES`] (one body frame and one write for all of them). `None` at the end or on an
    /// error.
    fn take(&mut self, item: Item, cx: &mut Context<'_>) -> Option<Bytes> {
        let first = self.event_of(item)?;
        if self.done {
            return Some(first.sse_frame().clone());
        }
        let Poll::Ready(mut next) = self.events.poll_next_unpin(cx) else {
            return Some(first.sse_frame().clone());
        };
        let mut len = first.sse_frame().len();
        self.gathered.push(first);
        while let Some(event) = self.event_of(next) {
            len += event.sse_frame().len();
            self.gathered.push(event);
            if self.done || len >= CHUNK_BYTES {
                break;
            }
            match self.events.poll_next_unpin(cx) {
                Poll::Ready(item) => next = item,
                Poll::Pending => break,
            }
        }
        let mut chunk = BytesMut::with_capacity(len);
        for event in self.gathered.drain(..) {
            chunk.extend_from_slice(event.sse_frame());
        }
        // An idle subscriber keeps little: the room of a few events, not of a whole chunk.
        self.gathered.shrink_to(16);
        Some(chunk.freeze())
    }

    /// The event of `item`; `None` at the end or on an error (kept in `failed`).
    fn event_of(&mut self, item: Item) -> Option<Arc<StoredEvent>> {
        match item {
            Some(Ok(event)) => {
                self.done = event.is_terminal();
                Some(event)
            }
            Some(Err(error)) => {
                // The client resumes with Last-Event-ID; the cause is the server's business.
                tracing::warn!(%error, "an event stream broke on a store error");
                self.failed = Some(std::io::Error::other("the event store failed; resume with Last-Event-ID"));
                self.done = true;
                None
            }
            None => {
                self.done = true;
                None
            }
        }
    }

    /// The keepalive, once nothing was sent for `keepalive`.
    fn poll_quiet(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        loop {
            if self.quiet.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_sent + self.keepalive;
            if Instant::now() < due {
                // Data went out since the timer was set: wait for the rest of the interval.
                self.quiet.as_mut().reset(due);
                continue;
            }
            self.last_sent = Instant::now();
            self.quiet.as_mut().reset(self.last_sent + self.keepalive);
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEPALIVE))));
        }
    }
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
                // by item (a lone item gets only its own size).
                if chunk.capacity() < CHUNK_BYTES {
                    chunk.reserve(CHUNK_BYTES);
                }
                item = next;
            }
            Poll::Pending => break,
        }
    }
    trimmed(chunk)
}

/// A chunk may wait in hyper's buffer for as long as its reader does not read: it keeps no more
/// room than it uses (a few frames in a whole chunk's room, 16 times over, made a stalled reader
/// cost several hundred KiB).
fn trimmed(chunk: BytesMut) -> BytesMut {
    if chunk.capacity() > chunk.len() + chunk.len() / 4 {
        return BytesMut::from(&chunk[..]);
    }
    chunk
}

/// `error`, to break a response body with, once hyper has had the chance to send what the body
/// gave before it (see [`SseBody`]'s `failed`).
pub(crate) async fn broken(error: std::io::Error) -> std::io::Error {
    tokio::task::yield_now().await;
    error
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ade_core::event::StoredEvent;
    use axum::body::Bytes;
    use futures::StreamExt;
    use futures::channel::mpsc;
    use tokio::time::{Duration, Instant};
    use tokio_util::sync::CancellationToken;

    fn event(sequence: u64) -> Arc<StoredEvent> {
        let json = format!(
            r#"{{"type":"run.phase.started","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N","created_at":"2026-11-26T18:52:57.802612Z","sequence":{sequence},"source":"engine","workspace_id":"acme","configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T","payload":{{"phase":"mapping"}}}}"#
        );
        Arc::new(StoredEvent::from_json(Bytes::from(json)).expect("an envelope"))
    }

    /// Without tokio's cooperative budget (which makes a channel look empty now and then), so the
    /// body's chunks depend only on what is ready.
    type Sender = mpsc::UnboundedSender<ade_core::Result<Arc<StoredEvent>>>;

    fn sse_body(keepalive: Duration, shutdown: CancellationToken) -> (Sender, axum::body::BodyDataStream) {
        let (sender, events) = mpsc::unbounded();
        let events = events.boxed();
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
        sender.unbounded_send(Ok(event(1))).expect("send");
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
        sender.unbounded_send(Ok(event(2))).expect("send");
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
        sender.unbounded_send(Ok(Arc::new(terminal))).expect("send");
        sender.unbounded_send(Ok(event(3))).expect("send");
        let last = chunk(&mut body).await.expect("the terminal frame");
        assert!(last.starts_with("id: 2\n") && !last.contains("id: 3\n"), "{last}");
        assert_eq!(chunk(&mut body).await, None, "nothing after run.completed");

        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some());
        sender.unbounded_send(Err(ade_core::Error::Task("the store broke".to_owned()))).expect("send");
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
    async fn a_live_frame_is_the_events_own_shared_bytes() {
        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some_and(|c| c.starts_with("retry:")));
        let event = event(1);
        sender.unbounded_send(Ok(event.clone())).expect("send");
        let sent = body.next().await.expect("a chunk").expect("data");
        assert_eq!(sent.as_ptr(), event.sse_frame().as_ptr(), "no copy per subscriber");
        assert_eq!(ids(std::str::from_utf8(&sent).expect("utf-8")), [1]);
    }

    #[tokio::test]
    async fn frames_ready_at_once_share_a_chunk_of_bounded_size() {
        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some_and(|c| c.starts_with("retry:")));
        for sequence in 1..=300 {
            sender.unbounded_send(Ok(event(sequence))).expect("send");
        }
        let frame_len = event(300).sse_frame().len();
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        while seen.len() < 300 {
            let text = chunk(&mut body).await.expect("a chunk");
            assert!(text.len() <= super::CHUNK_BYTES + frame_len, "{} bytes", text.len());
            let frames = ids(&text);
            sizes.push(frames.len());
            seen.extend(frames);
        }
        assert_eq!(seen, (1..=300).collect::<Vec<_>>(), "every frame once, in order");
        // ~330 bytes a frame: 300 of them fill about three 32 KiB chunks, not 300.
        assert!((3..=5).contains(&sizes.len()), "{} chunks: {sizes:?}", sizes.len());
    }

    #[tokio::test]
    async fn frames_ready_before_an_error_are_sent_then_the_body_breaks() {
        let (sender, mut body) = sse_body(Duration::from_secs(15), CancellationToken::new());
        assert!(chunk(&mut body).await.is_some());
        sender.unbounded_send(Ok(event(1))).expect("send");
        sender.unbounded_send(Ok(event(2))).expect("send");
        sender.unbounded_send(Err(ade_core::Error::Task("the store broke".to_owned()))).expect("send");
        sender.unbounded_send(Ok(event(3))).expect("send");
        let mut seen = Vec::new();
        let error = loop {
            match body.next().await.expect("frames, then the error") {
                Ok(data) => seen.extend(ids(std::str::from_utf8(&data).expect("utf-8"))),
                Err(error) => break error,
            }
        };
        assert_eq!(seen, [1, 2]);
        // Not a clean end, which would look like a server going away between frames.
        assert!(error.to_string().contains("Last-Event-ID"), "{error}");
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn a_chunk_keeps_no_more_room_than_it_uses() {
        // A chunk of two frames keeps two frames' room, not a whole chunk's.
        for count in [1usize, 2, 5, 40, 300] {
            let mut items = futures::stream::iter((2..=count as u64).map(event));
            let chunk = super::gather(&mut items, Some(event(1)), |chunk, item| {
                let Some(event) = item else { return false };
                chunk.extend_from_slice(event.sse_frame());
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
}
