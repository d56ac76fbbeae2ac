//! [`EventStream`]: a run's events over SSE that resumes by itself (SPEC §4.1).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ade_model::event::{Envelope, RunId};
use bytes::{Buf as _, BytesMut};
use futures::{Stream, StreamExt as _};
use reqwest::{Method, StatusCode};

use crate::client::{Client, problem};
use crate::error::{Error, Result};

/// How an [`EventStream`] reconnects.
///
/// The delay before the n-th consecutive attempt is `base · 2^(n-1)`, capped at `max_delay`,
/// with full jitter in its upper half; `base` is the server's `retry:` when it sent one,
/// `initial_delay` otherwise. The count of consecutive failures goes back to zero whenever an
/// event is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnect {
    /// The base delay before the server has sent `retry:`.
    pub initial_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// How many consecutive failed attempts end the stream with [`Error::GaveUp`].
    pub max_attempts: u32,
    /// A connection that delivers nothing (not even a keepalive) for this long counts as broken.
    pub idle_timeout: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: 10,
            idle_timeout: Duration::from_secs(45),
        }
    }
}

impl Reconnect {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `delay` as the base delay before the server's `retry:` is known.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// With `delay` as the longest delay.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Giving up after `attempts` consecutive failures (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Counting a connection silent for `timeout` as broken.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The delay before the `attempt`-th consecutive retry (1-based) with base `base`.
    fn delay(&self, base: Duration, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let full = base.saturating_mul(1u32 << exponent).min(self.max_delay);
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 { 0 } else { RandomState::new().hash_one(attempt) % (nanos + 1) };
        half + Duration::from_nanos(jitter)
    }
}

/// The events of one run with `sequence` above a cursor, in order, from
/// [`Client::events`](crate::Client::events).
///
/// - Reconnects by itself after a network error, a dropped connection or a server restart,
///   resuming with `Last-Event-ID` = the last delivered sequence, after the delay of its
///   [`Reconnect`] policy (which honours the server's `retry:`).
/// - Drops duplicates (a `sequence` already delivered).
/// - Reports a gap (a `sequence` beyond the next one) as [`Error::Gap`], then ends.
/// - Ends after `run.completed`, or when the server answers 204 (the run has ended and nothing is
///   after the cursor); it never reconnects to a finished run.
/// - Ends with [`Error::GaveUp`] after the policy's number of consecutive failed attempts, and
///   at once with [`Error::Api`] for a 4xx answer (404 unknown run, …).
pub struct EventStream {
    inner: Pin<Box<dyn Stream<Item = Result<Envelope>> + Send>>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = Result<Envelope>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The state between two items.
struct Follow {
    client: Client,
    run_id: RunId,
    /// The last delivered sequence (the cursor).
    last: u64,
    /// The open connection and the bytes read from it that do not make a whole frame yet.
    body: Option<(Body, BytesMut)>,
    /// The server's `retry:`.
    server_retry: Option<Duration>,
    /// Consecutive failed attempts.
    failures: u32,
    /// The last failure.
    last_error: Option<Error>,
    done: bool,
}

/// One SSE frame, parsed.
#[derive(Debug, Default)]
struct Frame {
    event: Option<String>,
    data: Option<String>,
    retry: Option<u64>,
}

enum Connected {
    Open(Body),
    Finished,
}

impl EventStream {
    /// A stream of already ordered, gap-free events (the local transport).
    #[cfg_attr(not(feature = "local"), allow(dead_code))]
    pub(crate) fn from_stream(stream: impl Stream<Item = Result<Envelope>> + Send + 'static) -> Self {
        Self { inner: Box::pin(stream) }
    }

    pub(crate) fn new(client: Client, run_id: RunId, after: u64) -> Self {
        let state = Follow {
            client,
            run_id,
            last: after,
            body: None,
            server_retry: None,
            failures: 0,
            last_error: None,
            done: false,
        };
        let inner = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Self { inner: Box::pin(inner) }
    }
}

impl Follow {
    /// The next item, or `None` when the stream has ended.
    async fn next(&mut self) -> Option<Result<Envelope>> {
        loop {
            if self.done {
                return None;
            }
            if self.body.is_none() {
                if self.failures >= self.client.reconnect.max_attempts {
                    self.done = true;
                    let last = self.last_error.take().unwrap_or(Error::Disconnected("no attempt made".to_owned()));
                    return Some(Err(Error::GaveUp { attempts: self.failures, last: Box::new(last) }));
                }
                if self.failures > 0 {
                    let base = self.server_retry.unwrap_or(self.client.reconnect.initial_delay);
                    tokio::time::sleep(self.client.reconnect.delay(base, self.failures)).await;
                }
                match connect(&self.client, self.run_id, self.last).await {
                    Ok(Connected::Open(body)) => self.body = Some((body, BytesMut::new())),
                    Ok(Connected::Finished) => {
                        self.done = true;
                        return None;
                    }
                    Err(error) if error.is_transient() => self.fail(error),
                    Err(error) => {
                        self.done = true;
                        return Some(Err(error));
                    }
                }
                continue;
            }
            let frame = match self.read_frame().await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    // The server ended the response before `run.completed` (it is shutting down).
                    self.body = None;
                    self.fail(Error::Disconnected("the event stream ended before run.completed".to_owned()));
                    continue;
                }
                Err(error) => {
                    self.body = None;
                    self.fail(error);
                    continue;
                }
            };
            if let Some(retry) = frame.retry {
                self.server_retry = Some(Duration::from_millis(retry));
            }
            let Some(data) = frame.data else { continue };
            if frame.event.as_deref().is_some_and(|e| e != "ade.event") {
                continue;
            }
            let envelope: Envelope = match serde_json::from_str(&data) {
                Ok(envelope) => envelope,
                Err(error) => {
                    self.done = true;
                    return Some(Err(Error::Decode { what: "an SSE event", reason: error.to_string() }));
                }
            };
            if envelope.sequence <= self.last {
                continue;
            }
            let expected = self.last.saturating_add(1);
            if envelope.sequence != expected {
                self.done = true;
                return Some(Err(Error::Gap { expected, got: envelope.sequence }));
            }
            self.last = envelope.sequence;
            self.failures = 0;
            self.last_error = None;
            if envelope.is_terminal() {
                self.done = true;
            }
            return Some(Ok(envelope));
        }
    }

    fn fail(&mut self, error: Error) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
    }

    /// The next whole frame of the open connection; `None` when the body ended.
    async fn read_frame(&mut self) -> Result<Option<Frame>> {
        let idle = self.client.reconnect.idle_timeout;
        let Some((body, buffer)) = self.body.as_mut() else { return Ok(None) };
        loop {
            if let Some((end, skip)) = frame_end(buffer) {
                let raw = buffer.split_to(end);
                buffer.advance(skip);
                return Ok(Some(parse_frame(&raw)));
            }
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => return Err(Error::Disconnected("the event stream was silent too long".to_owned())),
                Ok(None) => return Ok(None),
                Ok(Some(Err(error))) => return Err(Error::Transport(error)),
                Ok(Some(Ok(chunk))) => buffer.extend_from_slice(&chunk),
            }
        }
    }
}

/// Opens the stream after `last`.
async fn connect(client: &Client, run_id: RunId, last: u64) -> Result<Connected> {
    let mut request = client
        .request(Method::GET, &format!("/runs/{run_id}/events"))
        .header("accept", "text/event-stream")
        .header("cache-control", "no-cache");
    if last > 0 {
        request = request.header("last-event-id", last.to_string());
    }
    let response = tokio::time::timeout(client.reconnect.idle_timeout, request.send())
        .await
        .map_err(|_| Error::Disconnected("no answer to the event stream request in time".to_owned()))??;
    match response.status() {
        StatusCode::NO_CONTENT => Ok(Connected::Finished),
        status if status.is_success() => Ok(Connected::Open(Box::pin(response.bytes_stream()))),
        _ => Err(problem(response).await),
    }
}

/// Where the first frame of `buffer` ends (its length) and how many separator bytes follow.
fn frame_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buffer.len() {
        if buffer[i] == b'\n' && buffer[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buffer[i] == b'\r' && buffer[i + 1] == b'\n' && buffer.get(i + 2..i + 4) == Some(b"\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn parse_frame(raw: &[u8]) -> Frame {
    let text = String::from_utf8_lossy(raw);
    let mut frame = Frame::default();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => frame.event = Some(value.to_owned()),
            "data" => match &mut frame.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => frame.data = Some(value.to_owned()),
            },
            "retry" => frame.retry = value.parse().ok(),
            _ => {}
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_and_parsed() {
        let buffer = b"retry: 2000\n\nid: 1\nevent: ade.event\ndata: {\"a\":1}\n\n: keepalive\n\nid: 2";
        let (end, skip) = frame_end(buffer).expect("a frame");
        assert_eq!(parse_frame(&buffer[..end]).retry, Some(2000));
        let rest = &buffer[end + skip..];
        let (end, _) = frame_end(rest).expect("a frame");
        let frame = parse_frame(&rest[..end]);
        assert_eq!(frame.event.as_deref(), Some("ade.event"));
        assert_eq!(frame.data.as_deref(), Some("{\"a\":1}"));
        let crlf = b"data: x\r\ndata: y\r\n\r\n";
        let (end, skip) = frame_end(crlf).expect("a CRLF frame");
        assert_eq!(skip, 4);
        assert_eq!(parse_frame(&crlf[..end]).data.as_deref(), Some("x\ny"));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered_in_its_upper_half() {
        let policy = Reconnect::new().max_delay(Duration::from_secs(8));
        let base = Duration::from_secs(1);
        for attempt in 1..=10 {
            let full = (base * 2u32.pow((attempt - 1).min(16))).min(Duration::from_secs(8));
            let delay = policy.delay(base, attempt);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?} within [{:?}, {full:?}]",
                full / 2
            );
        }
    }
}
