//! What this machine can fan out at most, with no HTTP, no JSON and no event store: the ceiling
//! that `loadgen`'s SSE figures are to be read against.
//!
//! ```sh
//! cargo run --release --example fanout_ceiling -- --connections 10000 --rate 1000 --seconds 10
//! cargo run --release --example fanout_ceiling -- --connections 10000 --rate 1000 --linger-ms 100
//! cargo run --release --example fanout_ceiling -- --connections 100 --stalled 500 --send-buffer 65536
//! ```
//!
//! A child process (this program again, `--serve`) accepts `--connections` plain TCP connections
//! on 127.0.0.1 and appends `--rate` frames per second, in batches every 5 ms as `loadgen`'s busy
//! engine does, to one shared log of `--frame-bytes`-byte frames shaped like an SSE frame (`id:`,
//! `event:`, `data:` with the creation time). Every connection is sent the whole log from its
//! start: one write of the shared bytes as they are (no copy) each time it wakes, after waiting
//! `--linger-ms` for more frames to gather. The parent opens the connections and reads them; each
//! checks that it receives every frame once and in order and records each frame's latency
//! (receipt minus creation) from fixed-width fields, so the reading side costs as little as it
//! can. Both processes share the machine, as `loadgen` and the server do.
//!
//! With `--stalled N`, N more connections are sent the log like the others but never read (as
//! `loadgen --stalled` does to ade-server); only the `--connections` readers are measured.
//! `--send-buffer B` fixes the server's socket send buffers (`SO_SNDBUF`), as ade-server does for
//! event streams (64 KiB), instead of the kernel's automatic sizing.
//!
//! The last line is one JSON object: `{"connections", "frames", "lost", "p50_ms", "p99_ms",
//! "mb_per_sec"}`.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

mod common;

use common::{BoxError, Histogram, Schedule, spawn_listening};

#[derive(Debug, Clone, Parser)]
#[command(about = "The most this machine can fan out over loopback TCP, for comparison with loadgen")]
struct Args {
    /// Concurrent connections, each sent every frame.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Frames per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long frames are produced.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes per frame (an SSE frame of a console line is about 330).
    #[arg(long, default_value_t = 330)]
    frame_bytes: usize,
    /// How long a woken connection waits for more frames before it writes.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    /// More connections that are sent every frame but never read (not measured).
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// The server's `SO_SNDBUF` per connection, in bytes (0: the kernel's automatic sizing).
    #[arg(long, default_value_t = 0)]
    send_buffer: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Internal: be the server (child process).
    #[arg(long, hide = true)]
    serve: bool,
}

/// Digits of the fixed-width sequence and creation-time fields.
const WIDTH: usize = 16;
const ID_PREFIX: &[u8] = b"id: ";
const TIME_PREFIX: &[u8] = b"\nevent: ade.event\ndata: {\"created_at_us\":";

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Frame `sequence` (from 1), `frame_bytes` long, ending in a blank line.
fn frame(sequence: u64, created_us: u64, frame_bytes: usize, out: &mut BytesMut) {
    let start = out.len();
    out.extend_from_slice(ID_PREFIX);
    out.extend_from_slice(format!("{sequence:0WIDTH$}").as_bytes());
    out.extend_from_slice(TIME_PREFIX);
    out.extend_from_slice(format!("{created_us:0WIDTH$}").as_bytes());
    out.extend_from_slice(b",\"pad\":\"");
    let used = out.len() - start;
    let pad = frame_bytes.saturating_sub(used + 4);
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"\"}\n\n");
}

fn fields_of(frame: &[u8]) -> Option<(u64, u64)> {
    let number = |bytes: &[u8]| -> Option<u64> {
        bytes.iter().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
    };
    let sequence = number(frame.get(ID_PREFIX.len()..ID_PREFIX.len() + WIDTH)?)?;
    let at = ID_PREFIX.len() + WIDTH + TIME_PREFIX.len();
    Some((sequence, number(frame.get(at..at + WIDTH)?)?))
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    // The fixed fields and the JSON around the padding.
    let least = ID_PREFIX.len() + WIDTH + TIME_PREFIX.len() + WIDTH + 12;
    if args.frame_bytes < least {
        return Err(format!("--frame-bytes must be at least {least}").into());
    }
    if args.serve {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers)
            .enable_all()
            .build()?
            .block_on(serve(args))
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(drive(args))
    }
}

// ---------------------------------------------------------------------------------------------
// The server side (child process).

/// The shared log: batches of frames, each one `Bytes` every connection writes as it is.
#[derive(Default)]
struct Log {
    batches: Mutex<Vec<Bytes>>,
}

async fn serve(args: Args) -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let log = Arc::new(Log::default());
    // The number of batches published; connections wait on it.
    let (published, _) = watch::channel(0usize);
    let mut accepted = 0;
    while accepted < args.connections + args.stalled {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        if args.send_buffer > 0 {
            socket2::SockRef::from(&socket).set_send_buffer_size(args.send_buffer)?;
        }
        accepted += 1;
        let (log, mut changes, linger) = (log.clone(), published.subscribe(), Duration::from_millis(args.linger_ms));
        tokio::spawn(async move {
            let mut socket = socket;
            let mut next = 0usize;
            loop {
                if changes.changed().await.is_err() {
                    return;
                }
                if !linger.is_zero() {
                    tokio::time::sleep(linger).await;
                }
                let ready: Vec<Bytes> = {
                    let batches = log.batches.lock().unwrap_or_else(|p| p.into_inner());
                    batches[next..].to_vec()
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
                if ready.last().is_some_and(|b| b.is_empty()) {
                    let _ = socket.shutdown().await;
                    return;
                }
            }
        });
    }
    // Every connection is open: produce on the parent's go (a line on stdin).
    let mut line = String::new();
    tokio::task::spawn_blocking(move || std::io::stdin().lock().read_line(&mut line)).await??;
    let mut schedule = Schedule::new(args.rate, args.seconds);
    while let Some(due) = schedule.next().await {
        let mut batch = BytesMut::with_capacity(due.clone().count() * args.frame_bytes);
        let created = now_micros();
        for sequence in due {
            frame(sequence, created, args.frame_bytes, &mut batch);
        }
        if !batch.is_empty() {
            let mut batches = log.batches.lock().unwrap_or_else(|p| p.into_inner());
            batches.push(batch.freeze());
            published.send_modify(|n| *n += 1);
        }
    }
    // The end: an empty batch.
    log.batches.lock().unwrap_or_else(|p| p.into_inner()).push(Bytes::new());
    published.send_modify(|n| *n += 1);
    // Until the parent is done reading.
    let mut line = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().lock().read_line(&mut line)).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The reading side.

struct Seen {
    frames: u64,
    wrong: u64,
    bytes: u64,
    latencies: Histogram,
}

async fn reader(mut socket: TcpStream, frame_bytes: usize) -> Seen {
    let mut seen = Seen { frames: 0, wrong: 0, bytes: 0, latencies: Histogram::new() };
    let mut buffer = vec![0u8; 64 * 1024];
    let mut filled = 0;
    loop {
        let n = match socket.read(&mut buffer[filled..]).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => n,
        };
        let received = now_micros();
        seen.bytes += n as u64;
        filled += n;
        let whole = filled - filled % frame_bytes;
        for frame in buffer[..whole].chunks_exact(frame_bytes) {
            match fields_of(frame) {
                Some((sequence, created)) if sequence == seen.frames + 1 && frame.ends_with(b"\n\n") => {
                    seen.frames = sequence;
                    seen.latencies.record(received.saturating_sub(created));
                }
                _ => seen.wrong += 1,
            }
        }
        buffer.copy_within(whole..filled, 0);
        filled -= whole;
    }
}

async fn drive(args: Args) -> Result<(), BoxError> {
    let (mut child, _, addr) = spawn_listening(|command| {
        command
            .args(["--serve", "--rate", &args.rate.to_string(), "--seconds", &args.seconds.to_string()])
            .args(["--connections", &args.connections.to_string(), "--frame-bytes", &args.frame_bytes.to_string()])
            .args(["--linger-ms", &args.linger_ms.to_string(), "--workers", &args.workers.to_string()])
            .args(["--stalled", &args.stalled.to_string(), "--send-buffer", &args.send_buffer.to_string()]);
    })?;
    let connecting = Arc::new(Semaphore::new(256));
    let mut sockets = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let _permit = connecting.acquire().await?;
        sockets.push(TcpStream::connect(&addr).await?);
    }
    let mut stalled = Vec::with_capacity(args.stalled);
    for _ in 0..args.stalled {
        stalled.push(TcpStream::connect(&addr).await?);
    }
    let tasks: Vec<_> = sockets.into_iter().map(|s| tokio::spawn(reader(s, args.frame_bytes))).collect();
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    writeln!(stdin)?;
    stdin.flush()?;
    let started = Instant::now();
    let mut latencies = Histogram::new();
    let (mut lost, mut wrong, mut bytes) = (0, 0, 0);
    let total = args.rate * args.seconds;
    for task in tasks {
        let seen = task.await?;
        latencies.merge(&seen.latencies);
        lost += total.saturating_sub(seen.frames);
        wrong += seen.wrong;
        bytes += seen.bytes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(stalled);
    writeln!(stdin)?;
    drop(stdin);
    let _ = child.wait();
    let (p50, p99) = (latencies.quantile_ms(0.50), latencies.quantile_ms(0.99));
    let mb_per_sec = bytes as f64 / 1e6 / elapsed;
    println!(
        "{} connections × {total} frames of {} bytes ({} frames/s, linger {} ms): lost {lost}, wrong {wrong}",
        args.connections, args.frame_bytes, args.rate, args.linger_ms
    );
    println!("latency p50 {p50:.1?} ms, p99 {p99:.1?} ms; {mb_per_sec:.0} MB/s read over {elapsed:.1} s");
    let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
    println!(
        "{}",
        serde_json::json!({
            "connections": args.connections,
            "stalled": args.stalled,
            "send_buffer": args.send_buffer,
            "frames": total,
            "linger_ms": args.linger_ms,
            "lost": lost,
            "p50_ms": round(p50),
            "p99_ms": round(p99),
            "mb_per_sec": mb_per_sec.round(),
        })
    );
    Ok(())
}
