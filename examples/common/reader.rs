//! The checking SSE reader every fan-out benchmark uses, whatever it measures (ade-server or the
//! bare ceiling): raw TCP, one HTTP/1.1 request, chunked decoding, SSE frames split in place,
//! `id:` and `created_at` read as integers. Nothing is allocated per frame (a frame cut between
//! two reads is copied into one reused buffer), so the reader costs as little of the shared cores
//! as a checking client can, and the same for both servers it is compared across.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use memchr::memmem::Finder;

use super::{BoxError, Histogram, find};

/// The searches done for every frame, built once (building one costs more than a search).
static FRAME_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
static CREATED_AT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""created_at":""#));

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Where a reader sends its request.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port`.
    pub(crate) address: String,
    /// The request target, e.g. `/runs/run_…/events`.
    pub(crate) path: String,
    pub(crate) token: Option<String>,
}

impl Target {
    fn request(&self) -> String {
        let auth = self.token.as_ref().map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        format!("GET {} HTTP/1.1\r\nhost: {}\r\naccept: text/event-stream\r\n{auth}\r\n", self.path, self.address)
    }
}

/// What one reader saw.
#[derive(Clone)]
pub(crate) struct Seen {
    /// Events received in order, without gap or duplicate, from sequence 1.
    pub(crate) in_order: u64,
    /// Events out of order, duplicated, or after a gap.
    pub(crate) wrong: u64,
    /// `run.completed`'s sequence, when it came.
    pub(crate) completed_at: Option<u64>,
    /// Latencies (receipt minus `created_at`) of the events created from `live_from` on.
    pub(crate) latencies: Histogram,
    pub(crate) max_latency_us: u64,
    /// Body bytes received (chunk framing included).
    pub(crate) bytes: u64,
    pub(crate) error: Option<String>,
}

impl Seen {
    pub(crate) fn new() -> Self {
        Self {
            in_order: 0,
            wrong: 0,
            completed_at: None,
            latencies: Histogram::new(),
            max_latency_us: 0,
            bytes: 0,
            error: None,
        }
    }

    /// Counts one event frame received at `received_us`.
    fn frame(&mut self, frame: &[u8], received_us: u64, live_from_us: u64) {
        let (mut sequence, mut data) = (None, &[][..]);
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', frame).chain([frame.len()]) {
            let line = &frame[start..end];
            start = end + 1;
            if let Some(id) = field(line, b"id:") {
                sequence = digits(id);
            } else if let Some(value) = field(line, b"data:") {
                data = value;
            }
        }
        // `retry:` and comments (keepalives) carry no id.
        if let Some(sequence) = sequence {
            self.count(sequence, data, received_us, live_from_us);
        }
    }

    /// Counts event `sequence` (its JSON `data`) received at `received_us`; its latency is
    /// recorded when it was created at or after `live_from_us`.
    pub(crate) fn count(&mut self, sequence: u64, data: &[u8], received_us: u64, live_from_us: u64) {
        if sequence == self.in_order + 1 && self.wrong == 0 {
            self.in_order = sequence;
        } else {
            self.wrong += 1;
        }
        if let Some(created_us) = created_at_micros(data).filter(|t| *t >= live_from_us) {
            let latency = received_us.saturating_sub(created_us);
            self.latencies.record(latency);
            self.max_latency_us = self.max_latency_us.max(latency);
        }
        if data.starts_with(br#"{"type":"run.completed""#) {
            self.completed_at = Some(sequence);
        }
    }
}

/// The value of an SSE line `name: value` (one space after the colon is optional, as SSE says).
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value = line.strip_prefix(name)?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// A decimal number of up to 19 digits.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// The envelope's `created_at` (`2026-12-05T12:07:48.123456Z`, as ade writes it) in microseconds
/// since the epoch, read as integers from the first bytes of the event's JSON.
pub(crate) fn created_at_micros(data: &[u8]) -> Option<u64> {
    let head = &data[..data.len().min(160)];
    let at = CREATED_AT.find(head)? + CREATED_AT.needle().len();
    rfc3339_micros(data.get(at..)?)
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` at the start of `text`, in microseconds since the epoch.
fn rfc3339_micros(text: &[u8]) -> Option<u64> {
    let number = |range: std::ops::Range<usize>| digits(text.get(range)?);
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|(at, byte)| text.get(*at) != Some(byte)) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut micros = 0;
    let mut at = 19;
    if text.get(at) == Some(&b'.') {
        at += 1;
        let mut scale = 100_000;
        while let Some(digit) = text.get(at).filter(|b| b.is_ascii_digit()) {
            micros += u64::from(digit - b'0') * scale;
            scale /= 10;
            at += 1;
        }
    }
    if text.get(at) != Some(&b'Z') {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some(((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000) + micros)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar, from 1970 on (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 { year.checked_sub(1)? } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

/// HTTP/1.1 chunked transfer coding, decoded as bytes arrive.
enum Chunked {
    /// A chunk-size line: its value so far.
    Size(u64),
    /// The rest of a chunk-size line after its number (extensions).
    Extension(u64),
    /// Data bytes left in the chunk.
    Data(u64),
    /// The CRLF after a chunk's data: bytes left of it.
    DataEnd(u8),
    /// The trailer after the last chunk; whether the current line is empty so far.
    Trailer(bool),
    Done,
}

/// SSE frames split from the decoded body; only a frame cut between two reads is copied.
#[derive(Default)]
struct Frames {
    partial: Vec<u8>,
}

impl Frames {
    fn push(&mut self, mut data: &[u8], mut each: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            // The blank line ending the frame may itself be cut in two.
            let end = if self.partial.ends_with(b"\n") && data.first() == Some(&b'\n') {
                Some(1)
            } else {
                FRAME_END.find(data).map(|at| at + 2)
            };
            let Some(end) = end else {
                self.partial.extend_from_slice(data);
                return;
            };
            self.partial.extend_from_slice(&data[..end]);
            each(&self.partial[..self.partial.len() - 2]);
            self.partial.clear();
            data = &data[end..];
        }
        let mut start = 0;
        while let Some(end) = FRAME_END.find(&data[start..]) {
            each(&data[start..start + end]);
            start += end + 2;
        }
        self.partial.extend_from_slice(&data[start..]);
    }
}

/// Follows one event stream to its end: sends the request, checks the response head (200,
/// chunked; then `on_head`), and counts every frame until the last chunk, the connection's end or
/// an error. Latencies count for events created at or after `live_from` (µs since the epoch; read
/// at every receipt, so it may be set once the readers are connected).
pub(crate) async fn follow(target: &Target, live_from: &AtomicU64, on_head: impl FnOnce()) -> Seen {
    let mut seen = Seen::new();
    let mut on_head = Some(on_head);
    if let Err(error) = read_stream(target, live_from, &mut seen, &mut on_head).await {
        seen.error = Some(error.to_string());
    }
    if let Some(on_head) = on_head.take() {
        on_head();
    }
    seen
}

async fn read_stream(
    target: &Target,
    live_from: &AtomicU64,
    seen: &mut Seen,
    on_head: &mut Option<impl FnOnce()>,
) -> Result<(), BoxError> {
    let mut socket = TcpStream::connect(&target.address).await?;
    socket.write_all(target.request().as_bytes()).await?;
    let mut buffer = vec![0u8; 64 * 1024];
    let (head_len, mut filled) = read_head(&mut socket, &mut buffer).await?;
    if let Some(on_head) = on_head.take() {
        on_head();
    }
    let mut chunked = Chunked::Size(0);
    let mut frames = Frames::default();
    let mut start = head_len;
    loop {
        let received = now_micros();
        let live_from_us = live_from.load(Ordering::Relaxed);
        seen.bytes += (filled - start) as u64;
        decode(&mut chunked, &buffer[start..filled], |data| {
            frames.push(data, |frame| seen.frame(frame, received, live_from_us));
        })?;
        if matches!(chunked, Chunked::Done) {
            return Ok(());
        }
        start = 0;
        filled = socket.read(&mut buffer).await?;
        if filled == 0 {
            return Err("the connection closed before the last chunk".into());
        }
    }
}

/// Reads the response head into `buffer`; its length and how much of `buffer` is filled.
async fn read_head(socket: &mut TcpStream, buffer: &mut [u8]) -> Result<(usize, usize), BoxError> {
    let mut filled = 0;
    let end = loop {
        let n = socket.read(&mut buffer[filled..]).await?;
        if n == 0 {
            return Err("the connection closed before the response head".into());
        }
        filled += n;
        if let Some(at) = find(&buffer[..filled], b"\r\n\r\n") {
            break at + 4;
        }
        if filled == buffer.len() {
            return Err("a response head of more than 64 KiB".into());
        }
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| "a response head that is not text")?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        let first = head.lines().next().unwrap_or_default();
        return Err(format!("the response is {first:?}, not 200").into());
    }
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.strip_prefix("transfer-encoding:").is_some_and(|v| v.trim() == "chunked")
    });
    if !chunked {
        return Err("the event stream is not chunked".into());
    }
    Ok((end, filled))
}

/// Decodes `input` on from `state`, giving each run of data bytes to `data`.
fn decode(state: &mut Chunked, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<(), BoxError> {
    let mut at = 0;
    while at < input.len() {
        match state {
            Chunked::Data(left) => {
                let take = (*left).min((input.len() - at) as u64) as usize;
                data(&input[at..at + take]);
                at += take;
                *left -= take as u64;
                if *left == 0 {
                    *state = Chunked::DataEnd(2);
                }
                continue;
            }
            Chunked::Done => return Err("bytes after the last chunk".into()),
            _ => {}
        }
        let byte = input[at];
        at += 1;
        *state = match (&*state, byte) {
            (Chunked::Size(size), b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                Chunked::Size(size.checked_mul(16).ok_or("a chunk size too large")? + digit)
            }
            (Chunked::Size(size) | Chunked::Extension(size), b'\n') if *size == 0 => Chunked::Trailer(true),
            (Chunked::Size(size) | Chunked::Extension(size), b'\n') => Chunked::Data(*size),
            (Chunked::Size(size) | Chunked::Extension(size), _) => Chunked::Extension(*size),
            (Chunked::DataEnd(2), b'\r') => Chunked::DataEnd(1),
            (Chunked::DataEnd(_), b'\n') => Chunked::Size(0),
            (Chunked::DataEnd(_), _) => return Err("a chunk longer than its size".into()),
            (Chunked::Trailer(true), b'\n') => Chunked::Done,
            (Chunked::Trailer(_), b'\n') => Chunked::Trailer(true),
            (Chunked::Trailer(empty), b'\r') => Chunked::Trailer(*empty),
            (Chunked::Trailer(_), _) => Chunked::Trailer(false),
            (Chunked::Data(_) | Chunked::Done, _) => unreachable!("handled above"),
        };
    }
    Ok(())
}

/// A reader that asks for `target`'s stream, reads the response head and the `retry:` line (the
/// subscription exists), and never reads again.
pub(crate) async fn stalled(target: &Target) -> Result<TcpStream, BoxError> {
    let mut socket = TcpStream::connect(&target.address).await?;
    socket.write_all(target.request().as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while find(&seen, b"retry:").is_none() {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err("a stalled reader's connection closed before its stream began".into());
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(socket)
}

/// What `n` readers of one stream saw together.
pub(crate) struct Round {
    /// `run.completed`'s sequence (the most any reader saw).
    pub(crate) events: u64,
    /// Events some reader did not get in order (summed over readers).
    pub(crate) lost: u64,
    pub(crate) wrong: u64,
    /// Readers that ended on an error.
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) latencies: Histogram,
    pub(crate) max_latency_us: u64,
    pub(crate) bytes: u64,
    /// Seconds until every reader had its response head.
    pub(crate) connect_s: f64,
    /// Seconds from `start` until the last reader was done.
    pub(crate) run_s: f64,
}

impl Round {
    pub(crate) fn p50_ms(&self) -> Option<f64> {
        self.latencies.quantile_ms(0.50)
    }

    pub(crate) fn p99_ms(&self) -> Option<f64> {
        self.latencies.quantile_ms(0.99)
    }

    /// Every reader got every event, in order, to `run.completed`, without an error.
    pub(crate) fn complete(&self) -> bool {
        self.events > 0 && self.lost == 0 && self.wrong == 0 && self.errors == 0
    }
}

/// `n` readers of `target` (256 connecting at a time); once every one has its response head,
/// `start` is called (it starts the stream's events). With `warmup_us`, the latencies are those of
/// events created that long after `start` or later; without, of every event.
pub(crate) async fn follow_all(
    target: &Target,
    n: usize,
    warmup_us: Option<u64>,
    start: impl FnOnce() -> Result<(), BoxError>,
) -> Result<Round, BoxError> {
    let connecting = Arc::new(Semaphore::new(256));
    let live_from = Arc::new(AtomicU64::new(if warmup_us.is_some() { u64::MAX } else { 0 }));
    let connected = Arc::new(AtomicUsize::new(0));
    let connected_changed = Arc::new(Notify::new());
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (target, live_from) = (target.clone(), live_from.clone());
        let (connected, connected_changed) = (connected.clone(), connected_changed.clone());
        let permit = connecting.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let mut permit = Some(permit);
            follow(&target, &live_from, || {
                permit.take();
                connected.fetch_add(1, Ordering::SeqCst);
                connected_changed.notify_one();
            })
            .await
        }));
    }
    while connected.load(Ordering::SeqCst) < n {
        connected_changed.notified().await;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    if let Some(warmup_us) = warmup_us {
        live_from.store(now_micros() + warmup_us, Ordering::SeqCst);
    }
    start()?;
    let started = Instant::now();
    let mut seens = Vec::with_capacity(n);
    for task in tasks {
        seens.push(task.await?);
    }
    let run_s = started.elapsed().as_secs_f64();
    let events = seens.iter().filter_map(|s| s.completed_at).max().unwrap_or(0);
    let mut round = Round {
        events,
        lost: 0,
        wrong: 0,
        errors: 0,
        first_error: None,
        latencies: Histogram::new(),
        max_latency_us: 0,
        bytes: 0,
        connect_s,
        run_s,
    };
    for seen in seens {
        round.latencies.merge(&seen.latencies);
        round.max_latency_us = round.max_latency_us.max(seen.max_latency_us);
        round.lost += events.saturating_sub(seen.in_order);
        round.wrong += seen.wrong;
        round.bytes += seen.bytes;
        if let Some(error) = seen.error {
            round.errors += 1;
            round.first_error.get_or_insert(error);
        }
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_integers_agree_with_chrono() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2026-12-05T12:07:48.123456Z",
            "2028-02-29T23:59:59.5Z",
            "2400-03-01T00:00:00.000001Z",
        ] {
            let expected = chrono::DateTime::parse_from_rfc3339(text).expect("a timestamp").timestamp_micros();
            assert_eq!(rfc3339_micros(text.as_bytes()).map(|m| m as i64), Some(expected), "{text}");
        }
        let now = ade::event::Timestamp::now().to_string();
        let expected = chrono::DateTime::parse_from_rfc3339(&now).expect("a timestamp").timestamp_micros();
        assert_eq!(rfc3339_micros(now.as_bytes()).map(|m| m as i64), Some(expected), "{now}");
        for bad in ["2026-13-01T00:00:00Z", "2026-12-05 12:07:48Z", "2026-12-05T12:07:48+01:00", "2026-12-05"] {
            assert_eq!(rfc3339_micros(bad.as_bytes()), None, "{bad}");
        }
    }

    /// Frames and chunk framing cut at every possible place decode to the same events.
    #[test]
    fn a_body_cut_anywhere_gives_every_frame_once() {
        let frame = |sequence: u64, kind: &str| {
            format!(
                "id: {sequence}\nevent: ade.event\ndata: {{\"type\":\"{kind}\",\"event_id\":\"evt_1\",\"created_at\":\"2026-12-05T12:00:00.000001Z\",\"sequence\":{sequence}}}\n\n"
            )
        };
        let mut body = String::from("c\r\nretry: 2000\n\r\n");
        for (sequence, kind) in [(1, "run.started"), (2, "console.line"), (3, "run.completed")] {
            let frame = frame(sequence, kind);
            body.push_str(&format!("{:x};ext=1\r\n{frame}\r\n", frame.len()));
        }
        body.push_str("0\r\n\r\n");
        let body = body.as_bytes();
        for cut in 0..=body.len() {
            for second_cut in cut..=body.len() {
                let (mut state, mut frames, mut seen) = (Chunked::Size(0), Frames::default(), Seen::new());
                for part in [&body[..cut], &body[cut..second_cut], &body[second_cut..]] {
                    decode(&mut state, part, |data| frames.push(data, |f| seen.frame(f, 1_764_936_000_000_002, 0)))
                        .expect("a valid body");
                }
                assert!(matches!(state, Chunked::Done), "cut at {cut}/{second_cut}");
                assert_eq!(
                    (seen.in_order, seen.wrong, seen.completed_at),
                    (3, 0, Some(3)),
                    "cut at {cut}/{second_cut}"
                );
                assert_eq!(seen.latencies.total(), 3);
            }
        }
        let mut state = Chunked::Size(0);
        assert!(decode(&mut state, b"3\r\nabcdef\r\n", |_| {}).is_err(), "a chunk longer than its size");
    }
}
