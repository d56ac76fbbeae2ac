//! Dispatcher throughput and resume latency (issue: dispatcher and event store).
//!
//! Run with: `cargo run --release --example bench_dispatch` (add `-- --quick` for a short run).
//! Prints a table, then as its last line one JSON object with events/s per scenario and the time
//! to the first event when resuming at the tail of a 1,000,000-event and a 1,000-event log.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ade::dispatch::{After, DispatchOptions, Dispatcher, RunContext};
use ade::event::{Envelope, EventId, EventSource, RunId, Timestamp};
use ade::store::{Durability, EventStore, MemoryEventStore, NdjsonEventStore, RunKey};
use futures::StreamExt;

// The benchmarks run on mimalloc (the library does not choose an allocator). glibc's malloc serializes on arena locks when one
// thread frees what another allocated, which a fan-out does for every event (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::{BoxError, completed, console, ids, stored};

/// `runs` runs of `events` events each (the last one `run.completed`), each followed by
/// `subscribers` subscribers from the start; events/s from the first emit until every subscriber
/// has received every event.
async fn throughput(
    store: Arc<dyn EventStore>,
    durability: Durability,
    runs: usize,
    subscribers: usize,
    events: u64,
) -> Result<f64, BoxError> {
    let dispatcher = Dispatcher::new(store, DispatchOptions::default().with_durability(durability));
    let (workspace, configuration) = ids()?;
    let keys: Vec<RunKey> = (0..runs).map(|_| RunKey::new(workspace.clone(), RunId::new())).collect();
    let mut readers = Vec::new();
    for key in &keys {
        for _ in 0..subscribers {
            let stream = dispatcher.subscribe(key.clone(), After(0)).await?;
            readers.push(tokio::spawn(stream.fold(0u64, |n, event| async move { n + u64::from(event.is_ok()) })));
        }
    }
    let started = Instant::now();
    let mut writers = Vec::new();
    for key in keys {
        let dispatcher = dispatcher.clone();
        let configuration = configuration.clone();
        writers.push(tokio::spawn(async move {
            let context = RunContext::new(key.workspace_id.clone(), configuration.clone(), key.run_id);
            let writer = dispatcher.open_run(context).await?;
            for i in 1..events {
                writer.emit(EventSource::Engine, console(i)).await?;
            }
            writer.emit(EventSource::Api, completed(&key, &configuration, events)).await?;
            writer.flush().await?;
            Ok::<_, ade::Error>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    for reader in readers {
        let received = reader.await?;
        if received != events {
            return Err(format!("a subscriber received {received} of {events} events").into());
        }
    }
    let rate = (runs as u64 * events) as f64 / started.elapsed().as_secs_f64();
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!("  {rate:.0} events/s, {} catch-ups from the store", dispatcher.catch_up_count());
    }
    Ok(rate)
}

/// The limit: serialize the same events and write them through a buffered file, no dispatcher.
fn serialize_and_write(events: u64, dir: &std::path::Path) -> Result<f64, BoxError> {
    let (workspace, configuration) = ids()?;
    let run_id = RunId::new();
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, std::fs::File::create(dir.join("limit.ndjson"))?);
    let started = Instant::now();
    for sequence in 1..=events {
        let envelope = Envelope {
            event_id: EventId::new(),
            created_at: Timestamp::now(),
            sequence,
            source: EventSource::Engine,
            workspace_id: workspace.clone(),
            configuration_id: configuration.clone(),
            run_id,
            build_id: None,
            payload: console(sequence),
        };
        serde_json::to_writer(&mut out, &envelope)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// Milliseconds from `subscribe(After(last - 1))` to the first event, median of `trials`, on a
/// finished NDJSON log of `len` events.
async fn resume_at_tail(dir: &std::path::Path, len: u64, trials: usize) -> Result<f64, BoxError> {
    let store = NdjsonEventStore::new(dir);
    let (workspace, configuration) = ids()?;
    let key = RunKey::new(workspace.clone(), RunId::new());
    let batch_size = 10_000;
    let mut batch = Vec::with_capacity(batch_size);
    for sequence in 1..=len {
        let payload = if sequence == len { completed(&key, &configuration, len) } else { console(sequence) };
        batch.push(stored(&key, &configuration, sequence, payload)?);
        if batch.len() == batch_size || sequence == len {
            store.append(&key, &batch, Durability::Buffered).await?;
            batch.clear();
        }
    }
    store.release(&key).await;
    // A fresh store and dispatcher, as after a restart: nothing of the log is cached.
    let dispatcher = Dispatcher::new(Arc::new(NdjsonEventStore::new(dir)), DispatchOptions::default());
    let mut times = Vec::new();
    for _ in 0..trials {
        let started = Instant::now();
        let mut stream = dispatcher.subscribe(key.clone(), After(len - 1)).await?;
        let first = stream.next().await.ok_or("no event")??;
        times.push(started.elapsed());
        if first.sequence() != len {
            return Err(format!("resumed at {} instead of {len}", first.sequence()).into());
        }
    }
    Ok(median(&mut times).as_secs_f64() * 1000.0)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only NAME` runs one scenario (for profiling); the JSON line then holds only it.
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let repeats = if quick { 1 } else { 5 };
    let events: u64 = if quick { 100_000 } else { 1_000_000 };
    let fanout_events: u64 = if quick { 2_000 } else { 20_000 };
    let dir = tempfile::tempdir()?;

    // Each scenario runs in a fresh process, so that the heap one leaves behind (the memory store
    // keeps every event) does not slow the next; they still run side by side, one after another.
    if only.is_none() {
        return run_each_in_its_own_process(quick);
    }
    let mut results: Vec<(&str, f64)> = Vec::new();
    let scenarios: [(&str, u8, usize, usize, u64); 6] = [
        ("memory_1x1", 0, 1, 1, events / 5),
        ("ndjson_buffered_1x1", 1, 1, 1, events),
        ("ndjson_fsync_1x1", 2, 1, 1, events / 10),
        ("memory_1x1000", 0, 1, 1000, fanout_events),
        ("memory_100x1", 0, 100, 1, events / 100),
        ("limit_serialize_write", 3, 0, 0, events),
    ];
    for (name, kind, runs, subscribers, n) in scenarios {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let mut rates = Vec::new();
        for _ in 0..repeats {
            let rate = match kind {
                0 => throughput(Arc::new(MemoryEventStore::new()), Durability::Buffered, runs, subscribers, n).await?,
                1 => {
                    throughput(Arc::new(NdjsonEventStore::new(dir.path())), Durability::Buffered, runs, subscribers, n)
                        .await?
                }
                2 => {
                    throughput(Arc::new(NdjsonEventStore::new(dir.path())), Durability::Fsync, runs, subscribers, n)
                        .await?
                }
                _ => serialize_and_write(n, dir.path())?,
            };
            rates.push(rate);
        }
        let rate = median_f64(&mut rates);
        println!(
            "{name:<24} {rate:>12.0} events/s   ({runs} run(s) x {subscribers} subscriber(s), {n} events per run, median of {repeats})"
        );
        results.push((name, rate));
    }
    if only.as_deref() != Some("resume") {
        let json: serde_json::Map<String, serde_json::Value> =
            results.into_iter().map(|(name, rate)| (name.to_owned(), serde_json::json!(rate.round()))).collect();
        println!("{}", serde_json::Value::Object(json));
        return Ok(());
    }
    let trials = if quick { 5 } else { 21 };
    let resume_1m = resume_at_tail(&dir.path().join("1m"), 1_000_000, trials).await?;
    let resume_1k = resume_at_tail(&dir.path().join("1k"), 1_000, trials).await?;
    println!("{:<24} {resume_1m:>12.3} ms to the first event (median of {trials})", "resume_tail_1m");
    println!("{:<24} {resume_1k:>12.3} ms to the first event (median of {trials})", "resume_tail_1k");
    println!(
        "{}",
        serde_json::json!({ "resume_tail_1m_ms": round3(resume_1m), "resume_tail_1k_ms": round3(resume_1k) })
    );
    Ok(())
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Runs every scenario with `--only NAME` in a child process, prints the children's tables, the
/// ratio to the limit and the combined JSON line.
fn run_each_in_its_own_process(quick: bool) -> Result<(), BoxError> {
    let names = [
        "memory_1x1",
        "ndjson_buffered_1x1",
        "ndjson_fsync_1x1",
        "memory_1x1000",
        "memory_100x1",
        "limit_serialize_write",
        "resume",
    ];
    let mut combined = serde_json::Map::new();
    for name in names {
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command.args(["--only", name]);
        if quick {
            command.arg("--quick");
        }
        let output = command.stderr(std::process::Stdio::inherit()).output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!("scenario {name} failed: {stdout}").into());
        }
        let mut lines: Vec<&str> = stdout.lines().collect();
        let json = lines.pop().ok_or("no output")?;
        lines.iter().for_each(|line| println!("{line}"));
        if let serde_json::Value::Object(figures) = serde_json::from_str(json)? {
            combined.extend(figures);
        }
    }
    let figure = |name: &str| combined.get(name).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    println!(
        "ndjson_buffered_1x1 / limit_serialize_write = {:.2}; resume 1M / 1k = {:.2}",
        figure("ndjson_buffered_1x1") / figure("limit_serialize_write"),
        figure("resume_tail_1m_ms") / figure("resume_tail_1k_ms"),
    );
    println!("{}", serde_json::Value::Object(combined));
    Ok(())
}
