//! The request-body read timeout: a client that sends a request head and then trickles (or stops
//! sending) its body is answered 408 and its connection closed, instead of holding a connection
//! and a handler, possibly until the server runs out of descriptors.
//!
//! A body is cut when it pauses for [`body_read_timeout`](crate::ServerConfig::body_read_timeout),
//! or when, after that long, it has arrived slower than
//! [`min_body_rate`](crate::ServerConfig::min_body_rate) on average: each byte received extends
//! the deadline by `1 / min_body_rate` seconds (Apache's `mod_reqtimeout` works the same way).
//! Only request bodies are timed: response streams (SSE, NDJSON, downloads) last as long as they
//! need to (SPEC §4.1).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::Error;
use crate::state::AppState;

/// Middleware: times the request body; when it timed out, the answer is 408 problem+json with
/// `Connection: close`, whatever the handler made of the broken body (a half-read body is never
/// stored: the handler saw an error).
pub(crate) async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Requests without a body (every GET, so every event stream) are not touched.
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let config = state.config();
    let (timeout, min_rate) = (config.body_read_timeout, config.min_body_rate.max(1));
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    let request = request.map(|body| Body::new(TimedBody::new(body, timeout, min_rate, flag)));
    let response = next.run(request).await;
    if !timed_out.load(Ordering::Acquire) {
        return response;
    }
    let mut response = Error::RequestTimeout(format!(
        "the request body did not arrive in time: the body read timeout is {} s without data, and after \
         that an average of at least {min_rate} bytes per second",
        timeout.as_secs_f64()
    ))
    .into_response();
    // The rest of the body may still be on its way: the connection cannot be reused.
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The error a timed-out body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time (body read timeout)")]
struct BodyTimedOut;

/// A request body that fails with [`BodyTimedOut`] at its deadline.
struct TimedBody {
    inner: Body,
    timeout: Duration,
    min_rate: u64,
    /// Set at the first poll: time spent before the handler reads does not count.
    started: Option<Instant>,
    last_data: Option<Instant>,
    received: u64,
    /// Made the first time the body is not ready (a body that arrives at once needs none).
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
    failed: bool,
}

impl TimedBody {
    fn new(inner: Body, timeout: Duration, min_rate: u64, timed_out: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            timeout,
            min_rate,
            started: None,
            last_data: None,
            received: 0,
            timer: None,
            timed_out,
            failed: false,
        }
    }

    /// The earlier of "no data for `timeout`" and "slower than `min_rate` after `timeout`".
    fn deadline(&self, now: Instant) -> Instant {
        let started = self.started.unwrap_or(now);
        let idle = self.last_data.unwrap_or(started) + self.timeout;
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        idle.min(started + self.timeout + earned)
    }

    fn fail(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.failed = true;
        self.timer = None;
        self.timed_out.store(true, Ordering::Release);
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        let now = Instant::now();
        this.started.get_or_insert(now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.last_data = Some(now);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other),
            Poll::Pending => {}
        }
        let deadline = this.deadline(now);
        if deadline <= now {
            return this.fail();
        }
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => this.fail(),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.failed && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use axum::body::{Body, Bytes};
    use futures::StreamExt;
    use tokio::sync::mpsc;

    use super::TimedBody;

    /// A body fed by a channel, timed with a 10 s timeout and 100 bytes/s.
    fn timed() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, axum::body::BodyDataStream, Arc<AtomicBool>) {
        let (sender, receiver) = mpsc::channel(16);
        let stream = futures::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|c| (c, r)) });
        let flag = Arc::new(AtomicBool::new(false));
        let body = TimedBody::new(Body::from_stream(stream), Duration::from_secs(10), 100, flag.clone());
        (sender, Body::new(body).into_data_stream(), flag)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_pauses_for_the_timeout_fails() {
        let (sender, mut body, flag) = timed();
        sender.send(Ok(Bytes::from_static(b"abc"))).await.expect("send");
        assert_eq!(body.next().await.expect("data").expect("ok"), "abc");
        let quiet = tokio::time::Instant::now();
        assert!(body.next().await.expect("an error").is_err());
        assert_eq!(quiet.elapsed(), Duration::from_secs(10), "after 10 s without data");
        assert!(flag.load(Ordering::Acquire));
        assert!(body.next().await.is_none(), "nothing after the error");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_fails_once_its_average_rate_is_too_low_and_a_steady_body_does_not() {
        // 10 bytes every second: never 10 s without data, but 10 bytes/s < 100 bytes/s. After
        // t s it has earned 10·t / 100 s beyond the first 10: the deadline is t = 10 / 0.9 ≈ 11.1 s.
        let (sender, mut body, flag) = timed();
        let started = tokio::time::Instant::now();
        let feeder = tokio::spawn(async move {
            loop {
                if sender.send(Ok(Bytes::from_static(b"0123456789"))).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut received = 0;
        let error = loop {
            match body.next().await.expect("data or an error") {
                Ok(chunk) => received += chunk.len(),
                Err(error) => break error,
            }
        };
        assert!(error.to_string().contains("did not arrive in time"), "{error}");
        let elapsed = started.elapsed();
        assert!((Duration::from_secs(11)..Duration::from_secs(13)).contains(&elapsed), "{elapsed:?}, {received} bytes");
        assert!(flag.load(Ordering::Acquire));
        feeder.abort();

        // 200 bytes every second, for a minute: faster than the minimum rate, never cut.
        let (sender, mut body, flag) = timed();
        let feeder = tokio::spawn(async move {
            for _ in 0..60 {
                sender.send(Ok(Bytes::from(vec![b'x'; 200]))).await.expect("send");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut received = 0;
        while let Some(chunk) = body.next().await {
            received += chunk.expect("no timeout").len();
        }
        assert_eq!(received, 60 * 200);
        assert!(!flag.load(Ordering::Acquire));
        feeder.await.expect("feeder");
    }
}
