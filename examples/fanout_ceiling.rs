//! What this machine can fan out at most over SSE, with nothing of ade-server but the bytes it
//! sends: the ceiling that `loadgen`'s figures are read against (`loadgen --compare` measures both
//! alternating).
//!
//! ```sh
//! cargo run --release --example fanout_ceiling -- --knee
//! cargo run --release --example fanout_ceiling -- --connections 2000 --rate 1000 --seconds 5
//! cargo run --release --example fanout_ceiling -- --connections 100 --stalled 500 --send-buffer 65536
//! ```
//!
//! A child process (this program again) serves `GET /events` to `--connections` HTTP/1.1
//! connections on 127.0.0.1: the SSE frames ade-server sends for `loadgen`'s busy run (`--rate`
//! events per second for `--seconds`, in 5 ms batches, then `run.completed`), each batch framed
//! once as one HTTP chunk and written to every connection as the same shared bytes
//! (`common::ceiling`). The parent reads every connection with the checking reader `loadgen` uses
//! (`common::reader`): every event once and in order, latency = receipt minus `created_at`.
//!
//! `--knee` steps N = 500, 1,000, 1,500, … and reports the largest N with p99 ≤ 250 ms and no
//! event lost, and p50/p99 at 1,000 and 2,000. With `--stalled N`, N more connections are sent
//! the events but never read; `--send-buffer B` sets the server's `SO_SNDBUF` (ade-server uses
//! 64 KiB for event streams).
//!
//! The last line is one JSON object: `{"connections", "events", "lost", "p50_ms", "p99_ms",
//! "mb_per_sec"}`, or with `--knee` `{"knee", "p50_1000_ms", "p99_1000_ms", "p50_2000_ms",
//! "p99_2000_ms", …}`.

use clap::Parser;

mod common;

use common::knee::{self, Side};
use common::{BoxError, ceiling};

#[derive(Debug, Clone, Parser)]
#[command(about = "The most this machine can fan out over SSE, for comparison with loadgen")]
struct Args {
    /// Concurrent readers, each sent every event.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Events per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long events are produced.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// How long a woken connection waits for more frames before it writes.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    /// More connections that are sent every event but never read (not measured).
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// The server's `SO_SNDBUF` per connection, in bytes (0: the kernel's automatic sizing).
    #[arg(long, default_value_t = 0)]
    send_buffer: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Search the knee instead (N = 500, 1,000, … up to `--max-connections`).
    #[arg(long)]
    knee: bool,
    /// The largest N the knee search tries.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
}

fn main() -> Result<(), BoxError> {
    if let Some(served) = ceiling::serve_if_asked() {
        return served;
    }
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(drive(args))
}

impl Args {
    fn ceiling(&self, connections: usize, stalled: usize) -> ceiling::Options {
        ceiling::Options {
            connections,
            stalled,
            rate: self.rate,
            seconds: self.seconds,
            linger_ms: self.linger_ms,
            send_buffer: self.send_buffer,
            workers: self.workers,
        }
    }
}

async fn drive(args: Args) -> Result<(), BoxError> {
    if args.knee {
        let mut sides = [Side::new("ceiling", |n| ceiling::measure(args.ceiling(n, 0)))];
        knee::search(&mut sides, args.max_connections).await?;
        let mut summary = sides[0].summary("");
        summary.insert("rate".to_owned(), args.rate.into());
        summary.insert("seconds".to_owned(), args.seconds.into());
        println!("{}", serde_json::Value::Object(summary));
        return Ok(());
    }
    let round = ceiling::measure(args.ceiling(args.connections, args.stalled)).await?;
    let (p50, p99) = (round.p50_ms(), round.p99_ms());
    let mb_per_sec = round.bytes as f64 / 1e6 / round.run_s;
    println!(
        "{} connections × {} events ({} events/s, linger {} ms, {} stalled): lost {}, wrong {}, errors {}",
        args.connections, round.events, args.rate, args.linger_ms, args.stalled, round.lost, round.wrong, round.errors
    );
    if let Some(error) = &round.first_error {
        eprintln!("first reader error: {error}");
    }
    println!("latency p50 {p50:.1?} ms, p99 {p99:.1?} ms; {mb_per_sec:.0} MB/s read over {:.1} s", round.run_s);
    println!(
        "{}",
        serde_json::json!({
            "connections": args.connections,
            "stalled": args.stalled,
            "send_buffer": args.send_buffer,
            "events": round.events,
            "linger_ms": args.linger_ms,
            "lost": round.lost,
            "p50_ms": knee::round1(p50),
            "p99_ms": knee::round1(p99),
            "mb_per_sec": mb_per_sec.round(),
        })
    );
    Ok(())
}
