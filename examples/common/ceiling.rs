//! The bare fan-out server: the most this machine can do for SSE subscribers with nothing of
//! ade-server but the bytes it sends. It runs as a child process (the benchmark again, started
//! with `--serve-ceiling <options as JSON>`), accepts HTTP/1.1 requests on 127.0.0.1, answers each
//! with an SSE response head, and sends every connection the same event frames ade-server would
//! send for `loadgen`'s busy run: real envelopes, serialized once per event, framed as SSE and as
//! one HTTP chunk per 5 ms batch once per batch, and written to every connection as those same
//! shared bytes (no copy, one vectored write per wake-up). The last frame is a real
//! `run.completed`, then the last chunk. No routing, auth, store or per-subscriber work.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::reader::{self, Round, Target};
use super::{BoxError, Schedule, completed, ids, spawn_listening, stored};
use ade::event::{ConsoleLevel, ConsoleLine, ConsoleScope, ConsoleStream, EventPayload, RunId};
use ade::store::RunKey;

/// The flag that makes a benchmark the ceiling's server.
const FLAG: &str = "--serve-ceiling";

/// What the ceiling's server does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Options {
    /// Connections that read (each is sent every frame).
    pub(crate) connections: usize,
    /// More connections that are sent every frame but never read.
    pub(crate) stalled: usize,
    /// Events per second, for `seconds` seconds.
    pub(crate) rate: u64,
    pub(crate) seconds: u64,
    /// How long a woken connection waits for more frames before it writes.
    pub(crate) linger_ms: u64,
    /// `SO_SNDBUF` per connection (0: the kernel's automatic sizing).
    pub(crate) send_buffer: usize,
    /// Worker threads.
    pub(crate) workers: usize,
}

/// The ceiling's server, running: its address, and its stdin (a line starts the events).
pub(crate) struct Server {
    child: Child,
    pub(crate) address: String,
}

impl Server {
    /// Starts this program again as the ceiling's server.
    pub(crate) fn spawn(options: &Options) -> Result<Self, BoxError> {
        let options = serde_json::to_string(options)?;
        let (child, _, address) = spawn_listening(|command| {
            command.args([FLAG, &options]);
        })?;
        Ok(Self { child, address })
    }

    /// Starts the events once the connections are open.
    pub(crate) fn start(&mut self) -> Result<(), BoxError> {
        let stdin: &mut ChildStdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin)?;
        stdin.flush()?;
        Ok(())
    }

    /// The path readers ask for.
    pub(crate) fn path() -> &'static str {
        "/events"
    }
}

/// `options.connections` readers (and `options.stalled` connections that never read) of a fresh
/// ceiling server, with the checking reader.
pub(crate) async fn measure(options: Options) -> Result<Round, BoxError> {
    let mut server = Server::spawn(&options)?;
    let target = Target { address: server.address.clone(), path: Server::path().to_owned(), token: None };
    let mut stalled = Vec::with_capacity(options.stalled);
    for _ in 0..options.stalled {
        stalled.push(reader::stalled(&target).await?);
    }
    let round = reader::follow_all(&target, options.connections, Some(0), || server.start()).await?;
    drop(stalled);
    Ok(round)
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When this process was started as the ceiling's server, serves and returns `Some`; otherwise
/// `None` (call first thing in `main`).
pub(crate) fn serve_if_asked() -> Option<Result<(), BoxError>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(FLAG) {
        return None;
    }
    let mut run = || -> Result<(), BoxError> {
        let options: Options = serde_json::from_str(&args.next().ok_or("no options")?)?;
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.workers.max(1))
            .enable_all()
            .build()?
            .block_on(serve(options))
    };
    Some(run())
}

/// The shared log: HTTP chunks of frames, each one `Bytes` every connection writes as it is.
#[derive(Default)]
struct Log {
    chunks: Mutex<Vec<Bytes>>,
}

/// The response head and the first chunk (`retry:`).
const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
transfer-encoding: chunked\r\n\r\nc\r\nretry: 2000\n\r\n";

/// The last chunk.
const END: &[u8] = b"0\r\n\r\n";

async fn serve(options: Options) -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let log = Arc::new(Log::default());
    // The number of chunks published; connections wait on it.
    let (published, _) = watch::channel(0usize);
    let linger = Duration::from_millis(options.linger_ms);
    for _ in 0..options.connections + options.stalled {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        if options.send_buffer > 0 {
            socket2::SockRef::from(&socket).set_send_buffer_size(options.send_buffer)?;
        }
        tokio::spawn(connection(socket, log.clone(), published.subscribe(), linger));
    }
    // Every connection is open: produce on the parent's go (a line on stdin).
    let mut line = String::new();
    tokio::task::spawn_blocking(move || std::io::stdin().lock().read_line(&mut line)).await??;
    let (workspace, configuration) = ids()?;
    let run = RunKey::new(workspace, RunId::new());
    let mut schedule = Schedule::new(options.rate, options.seconds);
    let total = schedule.total();
    let publish = |chunk: Bytes| {
        log.chunks.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
        published.send_modify(|n| *n += 1);
    };
    let mut frames = BytesMut::new();
    while let Some(due) = schedule.next().await {
        for sequence in due {
            let message = format!("loadgen: event {sequence} of {total}");
            frame(&mut frames, &*stored(&run, &configuration, sequence, console(message))?);
        }
        if !frames.is_empty() {
            publish(chunk(&frames.split(), false));
        }
    }
    let last = stored(&run, &configuration, total + 1, completed(&run, &configuration, total + 1))?;
    frame(&mut frames, &last);
    publish(chunk(&frames.split(), true));
    // Until the parent is done reading.
    let mut line = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().lock().read_line(&mut line)).await;
    Ok(())
}

fn console(message: String) -> EventPayload {
    EventPayload::ConsoleLine(ConsoleLine {
        scope: ConsoleScope::Run,
        stream: ConsoleStream::Stdout,
        level: ConsoleLevel::Info,
        message,
        phase: None,
        logger: None,
        engine_timestamp: None,
        extra: Default::default(),
    })
}

/// Appends the SSE frame of `event`, as ade-server writes it.
fn frame(out: &mut BytesMut, event: &ade::event::StoredEvent) {
    use std::fmt::Write as _;
    let _ = write!(out, "id: {}\nevent: ade.event\ndata: ", event.sequence());
    out.put_slice(event.json());
    out.put_slice(b"\n\n");
}

/// `frames` as one HTTP chunk (and the last chunk after it when `last`).
fn chunk(frames: &[u8], last: bool) -> Bytes {
    let mut chunk = BytesMut::with_capacity(frames.len() + 16);
    let _ = std::fmt::Write::write_fmt(&mut chunk, format_args!("{:x}\r\n", frames.len()));
    chunk.put_slice(frames);
    chunk.put_slice(b"\r\n");
    if last {
        chunk.put_slice(END);
    }
    chunk.freeze()
}

/// One connection: reads the request head, answers, then writes every published chunk.
async fn connection(mut socket: TcpStream, log: Arc<Log>, mut changes: watch::Receiver<usize>, linger: Duration) {
    let mut request = [0u8; 4096];
    let mut filled = 0;
    while super::find(&request[..filled], b"\r\n\r\n").is_none() {
        match socket.read(&mut request[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        if filled == request.len() {
            return;
        }
    }
    if socket.write_all(HEAD).await.is_err() {
        return;
    }
    let mut next = 0usize;
    loop {
        if changes.changed().await.is_err() {
            return;
        }
        if !linger.is_zero() {
            tokio::time::sleep(linger).await;
        }
        let ready: Vec<Bytes> = {
            let chunks = log.chunks.lock().unwrap_or_else(|p| p.into_inner());
            chunks[next..].to_vec()
        };
        next += ready.len();
        let mut slices: Vec<std::io::IoSlice<'_>> = ready.iter().map(|b| std::io::IoSlice::new(b)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            match socket.write_vectored(slices).await {
                Ok(0) | Err(_) => return,
                Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            }
        }
        if ready.last().is_some_and(|chunk| chunk.ends_with(END)) {
            let _ = socket.shutdown().await;
            return;
        }
    }
}
