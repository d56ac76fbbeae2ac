//! Events persisted per second with the NATS JetStream exporter on and off, side by side.
//!
//! ```sh
//! cargo run --release --example bench_nats -- --nats-url nats://127.0.0.1:4222
//! cargo run --release --example bench_nats -- --quick
//! ```
//!
//! A round is one fresh runtime (NDJSON store in a temporary directory, `buffered`) in which
//! `--runs` runs, executing at once, each emit `--lines` console lines as fast as their sink
//! takes them. *Persisted* events/s: every event of every run (to `run.completed`) over the time
//! from the first `create_run` until a subscriber of each run has seen its `run.completed`. With
//! the exporter on (a stream of the round's own, deleted after it), *exported* events/s: the same
//! events over the time until the stream holds all of them. Rounds alternate off/on (the order
//! flipping each pair), so both see the same machine; the report gives each mode's median and the
//! ratio on/off of the persisted rate (runs never wait for an exporter: the ratio is the
//! exporter's cost in CPU on the same machine). The last line is one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ade::Runtime;
use ade::config::Configuration;
use ade::dispatch::After;
use ade::engine::{Engine, EngineContext, EngineOutcome, EventSink};
use ade::event::{ConsoleLevel, ConsoleStream};
use ade::nats::{JetStreamExporter, JetStreamOptions, Oversize};
use clap::Parser;
use futures::TryStreamExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(about = "Events/s persisted with the NATS JetStream exporter on and off")]
struct Args {
    /// The NATS server (JetStream enabled).
    #[arg(long, env = "ADE_TEST_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Pairs of rounds (one off, one on).
    #[arg(long, default_value_t = 5)]
    pairs: usize,
    /// Runs executing at once in a round.
    #[arg(long, default_value_t = 4)]
    runs: usize,
    /// Console lines each run emits.
    #[arg(long, default_value_t = 25_000)]
    lines: usize,
    /// A short run: 2 pairs of 4 × 2,500 lines.
    #[arg(long)]
    quick: bool,
}

/// Emits `lines` console lines (~330 bytes of JSON each) as fast as the sink takes them.
#[derive(Debug)]
struct Burst {
    lines: usize,
}

#[async_trait::async_trait]
impl Engine for Burst {
    fn version(&self) -> &str {
        "burst-1"
    }

    async fn run(&self, _context: EngineContext, sink: EventSink) -> EngineOutcome {
        for line in 0..self.lines {
            let message =
                format!("row {line}: checked 12 cells, 0 issues; the quick brown fox jumps over the lazy dog");
            if sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, message).await.is_err() {
                break;
            }
        }
        EngineOutcome::succeeded(Vec::new())
    }
}

/// One round's figures.
#[derive(Debug, Clone, Copy)]
struct Round {
    events: u64,
    persisted_secs: f64,
    /// With the exporter: until the stream held every event.
    exported_secs: Option<f64>,
}

async fn round(args: &Args, export: bool) -> Result<Round, BoxError> {
    let dir = tempfile::tempdir()?;
    let configuration: Configuration =
        serde_json::from_value(serde_json::json!({ "id": "burst", "version": "1", "engine": "burst" }))?;
    let mut builder = Runtime::builder()
        .data_dir(dir.path())
        .workers(args.runs)
        .engine("burst", Arc::new(Burst { lines: args.lines }), None)
        .configuration(configuration);
    let id = ulid::Ulid::generate().to_string();
    let stream = format!("ADE_BENCH_{id}");
    if export {
        let options = JetStreamOptions::default()
            .with_stream(stream.clone())
            .with_subject_prefix(format!("adebench.{}", id.to_lowercase()))
            .with_oversize(Oversize::Stub);
        builder = builder.exporter(Arc::new(JetStreamExporter::connect(&args.nats_url, options).await?));
    }
    let runtime = builder.build().await?;
    let start = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..args.runs {
        runs.push(runtime.create_run(ade::CreateRun::new("burst".parse()?)).await?.into_run());
    }
    let mut events = 0;
    for run in &runs {
        let subscription = runtime.subscribe(None, run.id, After(0)).await?;
        events += subscription.try_fold(0u64, |n, _| async move { Ok(n + 1) }).await?;
    }
    let persisted_secs = start.elapsed().as_secs_f64();
    let mut exported_secs = None;
    if export {
        let context = async_nats::jetstream::new(async_nats::connect(&args.nats_url).await?);
        let mut handle = context.get_stream(&stream).await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        while handle.info().await?.state.messages < events {
            if Instant::now() > deadline {
                return Err("the exporter did not catch up within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        exported_secs = Some(start.elapsed().as_secs_f64());
        runtime.shutdown().await;
        context.delete_stream(&stream).await?;
    } else {
        runtime.shutdown().await;
    }
    Ok(Round { events, persisted_secs, exported_secs })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn main() -> Result<(), BoxError> {
    let mut args = Args::parse();
    if args.quick {
        (args.pairs, args.lines) = (2, 2_500);
    }
    // As the `ade-server` binary builds its runtime (and with its allocator, the system's).
    let runtime = tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build()?;
    runtime.block_on(async {
        let (mut off, mut on, mut exported) = (Vec::new(), Vec::new(), Vec::new());
        for pair in 0..args.pairs {
            let order = if pair % 2 == 0 { [false, true] } else { [true, false] };
            for export in order {
                let r = round(&args, export).await?;
                let rate = r.events as f64 / r.persisted_secs;
                match r.exported_secs {
                    Some(secs) => {
                        let export_rate = r.events as f64 / secs;
                        println!(
                            "pair {pair} on:  {} events, persisted {rate:>10.0}/s, exported {export_rate:>10.0}/s",
                            r.events
                        );
                        on.push(rate);
                        exported.push(export_rate);
                    }
                    None => {
                        println!("pair {pair} off: {} events, persisted {rate:>10.0}/s", r.events);
                        off.push(rate);
                    }
                }
            }
        }
        let (off, on, exported) = (median(off), median(on), median(exported));
        println!("median persisted events/s: off {off:.0}, on {on:.0}, ratio on/off {:.2}", on / off);
        println!("median exported events/s (until the stream held every event): {exported:.0}");
        println!(
            "{}",
            serde_json::json!({
                "persisted_off_per_sec": off.round(),
                "persisted_on_per_sec": on.round(),
                "ratio_on_off": (on / off * 100.0).round() / 100.0,
                "exported_per_sec": exported.round(),
                "runs": args.runs,
                "lines": args.lines,
                "pairs": args.pairs,
            })
        );
        Ok(())
    })
}
