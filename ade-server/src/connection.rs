//! One HTTP/1.1 connection: hyper's settings (bounded buffers, limits on the request head), a
//! bounded socket send buffer once the connection carries an event stream, and problem+json for
//! the answers hyper gives on its own, before any routing, to requests it cannot parse (400, 431,
//! 414).
//!
//! hyper writes those answers itself, with an empty body, and then closes the connection; it has
//! no hook to change them. [`ProblemIo`] sits between hyper and the socket and replaces such an
//! answer with the same status and a problem+json body. It can tell hyper's answer from a
//! response of the router because [`Tracked`] counts the router's responses still being written:
//! an answer written while none is, at the start of a message (nothing written since the last
//! flush with none open), is hyper's.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::config::ServerConfig;
use crate::error::Error;
use crate::state::AppState;

/// What hyper may hold of a connection's unsent response, in bytes. hyper stops polling a
/// response body once this much is waiting for the socket (and takes one more chunk of at most
/// [`CHUNK_BYTES`](crate::sse::CHUNK_BYTES) before that): a reader that stops reading an event
/// stream costs at most ~64 KiB beyond its socket's buffer. hyper's default, ~400 KiB, cost
/// 0.4–0.55 MB per stalled reader. The same size bounds hyper's read buffer, so a request head
/// limit above it raises it to that limit.
pub(crate) const MAX_BUFFER_BYTES: usize = 32 * 1024;

/// The send buffer of an event stream's socket, in bytes (Linux doubles it for its bookkeeping).
/// The kernel otherwise grows a socket's send buffer up to 4 MiB: 500 readers that stopped
/// reading took ~1.3 GB of socket buffers, and the writes that filled them delayed every other
/// reader (BENCHMARKS.md). Downloads keep the kernel's automatic sizing.
pub(crate) const STREAM_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// A connection's socket, whose send buffer can be bounded.
pub(crate) trait SendBuffer {
    /// Sets the socket's send buffer to `bytes`.
    fn bound_send_buffer(&self, bytes: usize) -> std::io::Result<()>;
}

impl SendBuffer for TokioIo<tokio::net::TcpStream> {
    fn bound_send_buffer(&self, bytes: usize) -> std::io::Result<()> {
        socket2::SockRef::from(self.inner()).set_send_buffer_size(bytes)
    }
}

/// The limits on a request head, from [`ServerConfig`]: what hyper enforces and what its answers
/// name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    /// [`ServerConfig::max_head_bytes`].
    pub(crate) head_bytes: usize,
    /// [`ServerConfig::max_headers`].
    pub(crate) headers: usize,
}

impl HeadLimits {
    pub(crate) fn of(config: &ServerConfig) -> Self {
        Self { head_bytes: config.max_head_bytes, headers: config.max_headers }
    }
}

/// hyper's HTTP/1.1 server settings: the request-head timeout, bounded buffers and head limits.
pub(crate) fn builder(header_read_timeout: Duration, limits: HeadLimits) -> http1::Builder {
    let mut http = http1::Builder::new();
    // A client that does not send a request head in time loses its connection: slow or silent
    // clients cannot hold connections open forever.
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_BUFFER_BYTES.max(limits.head_bytes))
        .max_header_size(limits.head_bytes)
        .max_headers(limits.headers);
    http
}

/// Serves one connection on `io` with `service`, hyper's own error answers made problem+json.
pub(crate) fn serve<I, S>(
    http: &http1::Builder,
    limits: HeadLimits,
    io: I,
    service: S,
) -> http1::Connection<ProblemIo<I>, Tracked<S>>
where
    I: Read + Write + SendBuffer + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = Response<Body>, Error = std::convert::Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let shared = Arc::new(Shared::default());
    http.serve_connection(ProblemIo::new(io, shared.clone(), limits), Tracked { inner: service, shared })
}

/// Middleware: a request target longer than [`ServerConfig::max_uri_bytes`] is 414, before
/// routing.
pub(crate) async fn limit_uri(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config().max_uri_bytes;
    if uri_len(request.uri()) > limit {
        return Error::UriTooLong(format!(
            "the request target (path and query) is longer than the limit of {limit} bytes"
        ))
        .into_response();
    }
    next.run(request).await
}

fn uri_len(uri: &Uri) -> usize {
    uri.path_and_query().map_or(0, |p| p.as_str().len())
}

/// What a connection's service tells its socket.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The router's responses not yet fully written.
    open: AtomicUsize,
    /// A response of the connection is an event stream (SSE or NDJSON).
    streams: AtomicBool,
}

/// A service whose responses are counted as open until their bodies are dropped (written or
/// abandoned), and which says when one is an event stream.
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// One response of the router not yet fully written; dropped with its body.
#[derive(Debug)]
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether `response` is an event stream (it may last long, and its reader may stop reading).
fn is_stream(response: &Response<Body>) -> bool {
    response.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.starts_with(b"text/event-stream") || value.starts_with(b"application/x-ndjson")
    })
}

type TrackedFuture = Pin<Box<dyn Future<Output = Result<Response<Guarded>, std::convert::Infallible>> + Send>>;

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = Response<Body>, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Guarded>;
    type Error = std::convert::Infallible;
    type Future = TrackedFuture;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.shared.open.fetch_add(1, Ordering::AcqRel);
        let open = Open(self.shared.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if is_stream(&response) {
                open.0.streams.store(true, Ordering::Release);
            }
            Ok(response.map(|body| Guarded { body, _open: open }))
        })
    }
}

/// A response body that counts as open until dropped.
#[derive(Debug)]
pub(crate) struct Guarded {
    body: Body,
    _open: Open,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, as hyper sees it: hyper's own error answers are replaced on their way
/// out (see the module's documentation).
#[derive(Debug)]
pub(crate) struct ProblemIo<I> {
    io: I,
    shared: Arc<Shared>,
    /// The socket's send buffer was bounded (the connection carries an event stream).
    bounded: bool,
    /// Nothing was written since a flush at which no response was open: the next write starts a
    /// message, not the rest of one.
    between_messages: bool,
    /// A replacement answer, still to be written.
    pending: Option<Bytes>,
    limits: HeadLimits,
}

impl<I> ProblemIo<I> {
    fn new(io: I, shared: Arc<Shared>, limits: HeadLimits) -> Self {
        Self { io, shared, bounded: false, between_messages: true, pending: None, limits }
    }

    /// The replacement for `written`, if it is an answer of hyper's own.
    fn replacement(&self, written: &[u8]) -> Option<Bytes> {
        if !self.between_messages || self.shared.open.load(Ordering::Acquire) != 0 {
            return None;
        }
        problem_answer(written, self.limits)
    }
}

impl<I: SendBuffer> ProblemIo<I> {
    /// Bounds the socket's send buffer once the connection carries an event stream.
    fn bound_for_streams(&mut self) {
        if !self.bounded && self.shared.streams.load(Ordering::Acquire) {
            self.bounded = true;
            if let Err(error) = self.io.bound_send_buffer(STREAM_SEND_BUFFER_BYTES) {
                tracing::debug!(%error, "could not bound an event stream's send buffer");
            }
        }
    }
}

impl<I: Write + Unpin> ProblemIo<I> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some(pending) = self.pending.as_mut() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, pending))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            let _ = pending.split_to(written);
            if pending.is_empty() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `written` (hyper's answer) and starts writing `replacement` instead.
    fn replace(&mut self, cx: &mut Context<'_>, written: usize, replacement: Bytes) -> Poll<std::io::Result<usize>> {
        self.between_messages = false;
        self.pending = Some(replacement);
        // hyper flushes next; what the socket does not take now is written then.
        if let Poll::Ready(Err(error)) = self.poll_pending(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(written))
    }
}

impl<I: Read + Unpin> Read for ProblemIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: Write + SendBuffer + Unpin> Write for ProblemIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        this.bound_for_streams();
        ready!(this.poll_pending(cx))?;
        if let Some(replacement) = this.replacement(buf) {
            return this.replace(cx, buf.len(), replacement);
        }
        this.between_messages = false;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        this.bound_for_streams();
        ready!(this.poll_pending(cx))?;
        // hyper's answer is a head alone, in its own buffer.
        let mut written = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(head), None) = (written.next(), written.next())
            && let Some(replacement) = this.replacement(head)
        {
            return this.replace(cx, head.len(), replacement);
        }
        this.between_messages = false;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        // hyper flushes only once all it buffered is written: with no response open, whatever
        // comes next starts a message.
        if this.shared.open.load(Ordering::Acquire) == 0 {
            this.between_messages = true;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// A problem+json answer for `head`, when `head` is exactly one of hyper's own answers to an
/// unparsable request: a 400, 414 or 431 head with no body and no content type (the router
/// never answers those statuses without a problem+json body).
fn problem_answer(head: &[u8], limits: HeadLimits) -> Option<Bytes> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ").or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    let header_block = text.strip_suffix("\r\n\r\n")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let detail = match status {
        400 => "the request is not valid HTTP/1.1: its request line or a header field could not be parsed".to_owned(),
        414 => "the request target is too long".to_owned(),
        431 => format!(
            "the request head (request line and header fields) is larger than the limit of {} bytes, or \
             has more than {} header fields",
            limits.head_bytes, limits.headers
        ),
        _ => return None,
    };
    let mut kept = Vec::new();
    for line in header_block.split("\r\n").skip(1) {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => {}
            // After earlier requests on the connection; the answer says it again.
            "connection" if value.trim().eq_ignore_ascii_case("close") => {}
            "date" => kept.push(line),
            // Anything else is not hyper's automatic answer.
            _ => return None,
        }
    }
    let status = StatusCode::from_u16(status).ok()?;
    let body = crate::error::problem_json(status, problem_slug(status), detail);
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    );
    for line in kept {
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    let mut bytes = answer.into_bytes();
    bytes.extend_from_slice(&body);
    Some(Bytes::from(bytes))
}

fn problem_slug(status: StatusCode) -> &'static str {
    match status {
        StatusCode::URI_TOO_LONG => "uri-too-long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request-header-fields-too-large",
        _ => "bad-request",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::Context;
    use std::time::Duration;

    use ade_core::event::StoredEvent;
    use axum::body::Bytes;
    use futures::task::ArcWake;
    use futures::{FutureExt, StreamExt};
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio::io::AsyncWriteExt;
    use tokio_util::sync::CancellationToken;

    use super::{HeadLimits, problem_answer};

    const LIMITS: HeadLimits = HeadLimits { head_bytes: 16 * 1024, headers: 100 };

    impl super::SendBuffer for TokioIo<tokio::io::DuplexStream> {
        fn bound_send_buffer(&self, _bytes: usize) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the socket of the test connection buffers, in each direction.
    const SOCKET_BYTES: usize = 16 * 1024;

    fn event(sequence: u64) -> Arc<StoredEvent> {
        let json = format!(
            r#"{{"type":"console.line","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N","created_at":"2026-11-26T18:52:57.802612Z","sequence":{sequence},"source":"engine","workspace_id":"acme","configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T","payload":{{"scope":"run","stream":"stdout","level":"info","message":"{}"}}}}"#,
            "x".repeat(200)
        );
        Arc::new(StoredEvent::from_json(Bytes::from(json)).expect("an envelope"))
    }

    /// Records that the connection asked to be polled again.
    struct Woken(AtomicBool);

    impl ArcWake for Woken {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Polls `connection` until it waits for something outside it (the socket, new events);
    /// whether it ended.
    fn run_until_idle<F: std::future::Future + Unpin>(connection: &mut F, woken: &Arc<Woken>) -> bool {
        let waker = futures::task::waker(woken.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100_000 {
            if !woken.0.swap(false, Ordering::SeqCst) {
                return false;
            }
            if connection.poll_unpin(&mut cx).is_ready() {
                return true;
            }
        }
        panic!("the connection never became idle");
    }

    /// A reader that stops reading an event stream: the server pulls from the subscription only
    /// what its socket buffer and ~64 KiB take, then waits; when the reader goes, the connection
    /// ends and the subscription is dropped.
    #[tokio::test]
    async fn a_stalled_reader_holds_at_most_64_kib_beyond_its_socket() {
        let (events_in, events) = futures::channel::mpsc::unbounded();
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let events = events.inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let stream = Arc::new(std::sync::Mutex::new(Some(events.boxed())));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let events = stream.lock().ok().and_then(|mut s| s.take()).expect("one request");
                let response = crate::sse::response(
                    axum::http::StatusCode::OK,
                    events,
                    Duration::from_secs(2),
                    Duration::from_secs(3600),
                    CancellationToken::new(),
                );
                std::future::ready(response)
            }),
        );
        let (mut client, server) = tokio::io::duplex(SOCKET_BYTES);
        let http = super::builder(Duration::from_secs(30), LIMITS);
        let connection = super::serve(&http, LIMITS, TokioIo::new(server), TowerToHyperService::new(app));
        let mut connection = Box::pin(connection);
        client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("request");
        let total = 20_000u64;
        for sequence in 1..=total {
            events_in.unbounded_send(Ok(event(sequence))).expect("send");
        }
        let frame = event(total).json().len() + 48;

        let woken = Arc::new(Woken(AtomicBool::new(true)));
        // Unconstrained: tokio's cooperative budget would otherwise make every poll of this one
        // task return at once.
        let ended = tokio::task::unconstrained(async { run_until_idle(&mut connection, &woken) }).await;
        assert!(!ended, "the connection is open");
        let held = pulled.load(Ordering::SeqCst) * frame;
        eprintln!(
            "pulled {} of {total} events: {held} bytes for a {SOCKET_BYTES}-byte socket",
            pulled.load(Ordering::SeqCst)
        );
        assert!(held <= SOCKET_BYTES + 64 * 1024 + frame, "{held} bytes pulled for a reader that reads nothing");
        assert!(held >= SOCKET_BYTES, "the socket was filled: {held} bytes");

        // The reader goes: the connection ends, and with it the subscription.
        drop(client);
        woken.0.store(true, Ordering::SeqCst);
        let ended = tokio::task::unconstrained(async { run_until_idle(&mut connection, &woken) }).await;
        assert!(ended, "the connection ended");
        drop(connection);
        assert!(events_in.is_closed(), "the subscription was dropped");
    }

    /// An event stream's socket gets a bounded send buffer; other responses keep the kernel's.
    #[tokio::test]
    async fn an_event_stream_bounds_its_sockets_send_buffer() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let app = axum::Router::new().route("/plain", axum::routing::get(|| async { "plain" })).route(
            "/stream",
            axum::routing::get(|| async {
                let events = futures::stream::pending().boxed();
                let never = Duration::from_secs(3600);
                crate::sse::response(axum::http::StatusCode::OK, events, never, never, CancellationToken::new())
            }),
        );
        let mut client = tokio::net::TcpStream::connect(address).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let server = server.into_std().expect("std");
        // The same socket, to look at its options while the connection owns it.
        let watched = server.try_clone().expect("dup");
        let server = tokio::net::TcpStream::from_std(server).expect("tokio");
        let http = super::builder(Duration::from_secs(30), LIMITS);
        let connection = super::serve(&http, LIMITS, TokioIo::new(server), TowerToHyperService::new(app));
        let served = tokio::spawn(connection);
        let send_buffer = || socket2::SockRef::from(&watched).send_buffer_size().expect("SO_SNDBUF");
        let automatic = send_buffer();

        client.write_all(b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("request");
        let mut answer = vec![0u8; 4096];
        let n = client.read(&mut answer).await.expect("answer");
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        assert_eq!(send_buffer(), automatic, "a plain response keeps the kernel's send buffer");

        client.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("request");
        let n = client.read(&mut answer).await.expect("answer");
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        // Set, so no longer sized by the kernel (Linux doubles what it is given, for its
        // bookkeeping).
        let bounded = send_buffer();
        let expected = if cfg!(target_os = "linux") {
            2 * super::STREAM_SEND_BUFFER_BYTES
        } else {
            super::STREAM_SEND_BUFFER_BYTES
        };
        assert_eq!(bounded, expected, "the send buffer (was {automatic})");
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(30), served).await.expect("the connection ends");
    }

    #[test]
    fn only_an_empty_answer_of_hyper_is_replaced() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 17:00:00 GMT\r\n\r\n";
        let answer = problem_answer(hyper, LIMITS).expect("replaced");
        let text = std::str::from_utf8(&answer).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: application/problem+json\r\n"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n") && head.contains("\r\ndate: Fri"), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(problem["status"], 431);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("16384")), "{problem}");
        // A head of the router (a content type, a body), another status, or a part of a message.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 9\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"id: 1\nevent: ade.event\n\n",
        ] {
            assert!(problem_answer(other, LIMITS).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
