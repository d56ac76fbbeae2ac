//! Runs per second, created → `run.completed`, with a trivial in-process engine and the embedded
//! store (SQLite + NDJSON logs), for 1 and 2 workers.
//!
//! Run with: `cargo run --release --example bench_runs` (add `-- --quick` for a short run).
//! Prints a table, then as its last line one JSON object:
//! `{"runs_per_sec_1_worker", "runs_per_sec_2_workers"}`.

use std::sync::Arc;
use std::time::Instant;

use ade::config::Configuration;
use ade::dispatch::After;
use ade::engine::{Engine, EngineContext, EngineOutcome, EventSink};
use ade::event::{ConsoleLevel, ConsoleStream};
use ade::{CreateRun, Runtime};
use futures::StreamExt;

// The benchmarks run on mimalloc; the library does not choose an allocator and `ade-server`
// keeps the system one (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Says one line and succeeds.
#[derive(Debug)]
struct TrivialEngine;

#[async_trait::async_trait]
impl Engine for TrivialEngine {
    fn version(&self) -> &str {
        "trivial-1"
    }

    async fn run(&self, _context: EngineContext, sink: EventSink) -> EngineOutcome {
        let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, "hello").await;
        EngineOutcome::succeeded(Vec::new())
    }
}

/// Creates `runs` runs from 8 concurrent clients and waits for every `run.completed`.
///
/// The data directory is returned rather than deleted: see `main`.
async fn runs_per_second(workers: usize, runs: usize) -> Result<(f64, tempfile::TempDir), BoxError> {
    let dir = tempfile::tempdir()?;
    let configuration: Configuration =
        serde_json::from_value(serde_json::json!({ "id": "trivial", "version": "1", "engine": "trivial" }))?;
    let runtime = Runtime::builder()
        .data_dir(dir.path())
        .workers(workers)
        .engine("trivial", Arc::new(TrivialEngine), None)
        .configuration(configuration)
        .build()
        .await?;
    let started = Instant::now();
    let clients: usize = std::env::var("BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let runtime = runtime.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (client..runs).step_by(clients) {
                let run = runtime.create_run(CreateRun::new("trivial".parse()?)).await?.into_run();
                let events = runtime.subscribe(None, run.id, After(0)).await?;
                let last = events.fold(None, |_, event| async move { event.ok() }).await;
                if !last.is_some_and(|event| event.is_terminal()) {
                    return Err::<(), BoxError>(format!("run {} did not end", run.id).into());
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = runs as f64 / started.elapsed().as_secs_f64();
    runtime.shutdown().await;
    Ok((rate, dir))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 300 } else { 3000 };
    let repeats = if quick { 1 } else { 3 };
    let mut figures = serde_json::Map::new();
    // Data directories are deleted only at the end: ext4 skips inodes freed in the last minute when
    // it allocates new ones, one buffer lookup each, so deleting a round's ~10,000 files before the
    // next round would make the benchmark measure its own cleanup (see BENCHMARKS.md).
    let mut data_dirs = Vec::new();
    for (workers, name) in [(1, "runs_per_sec_1_worker"), (2, "runs_per_sec_2_workers")] {
        let mut rates = Vec::new();
        for _ in 0..repeats {
            let (rate, dir) = runs_per_second(workers, runs).await?;
            rates.push(rate);
            data_dirs.push(dir);
        }
        rates.sort_by(f64::total_cmp);
        let rate = rates[rates.len() / 2];
        println!("{workers} worker(s): {rate:>8.0} runs/s  ({runs} runs from 8 clients, median of {repeats})");
        figures.insert(name.to_owned(), serde_json::json!(rate.round()));
    }
    println!("{}", serde_json::Value::Object(figures));
    drop(data_dirs);
    Ok(())
}
