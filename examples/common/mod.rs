//! What the benchmark examples share: realistic events to write, a busy engine that starts on
//! `SIGUSR1` and the schedule it emits on, starting this program again as a listening child, a
//! latency histogram; the one checking SSE reader ([`reader`]), the bare fan-out server to compare
//! with ([`ceiling`]) and the search for a fan-out's knee ([`knee`]).
//!
//! Included with `mod common;` (this is `examples/common/mod.rs`, which cargo does not take for
//! an example of its own); each example uses part of it.

#![allow(dead_code)]

pub(crate) mod ceiling;
pub(crate) mod knee;
pub(crate) mod reader;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ade::engine::{Engine, EngineContext, EngineOutcome, EventSink};
use ade::event::{
    Artifacts, ConfigurationId, ConsoleLevel, ConsoleLine, ConsoleScope, ConsoleStream, Envelope, EventId,
    EventPayload, EventSource, Execution, RunCompleted, StoredEvent, Timestamp, WorkspaceId,
};
use ade::run::RunOutcome;
use ade::store::RunKey;
use ade::summary::RunSummaryBuilder;
use tokio::sync::Notify;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// Events.

/// Event `sequence` of `run` as a store holds it, as an engine would have emitted it now.
pub(crate) fn stored(
    run: &RunKey,
    configuration: &ConfigurationId,
    sequence: u64,
    payload: EventPayload,
) -> Result<Arc<StoredEvent>, BoxError> {
    Ok(Arc::new(StoredEvent::new(Envelope {
        event_id: EventId::new(),
        created_at: Timestamp::now(),
        sequence,
        source: EventSource::Engine,
        workspace_id: run.workspace_id.clone(),
        configuration_id: configuration.clone(),
        run_id: run.run_id,
        build_id: None,
        payload,
    })?))
}

/// A realistic `console.line` (an engine's progress line).
pub(crate) fn console(i: u64) -> EventPayload {
    EventPayload::ConsoleLine(ConsoleLine {
        scope: ConsoleScope::Run,
        stream: ConsoleStream::Stdout,
        level: ConsoleLevel::Info,
        message: format!("Validated rows {i}..{} of members-2026.xlsx / Sheet1", i + 100),
        phase: Some("validating".to_owned()),
        logger: None,
        engine_timestamp: None,
        extra: Default::default(),
    })
}

/// A successful `run.completed` after `event_count` events.
pub(crate) fn completed(run: &RunKey, configuration: &ConfigurationId, event_count: u64) -> EventPayload {
    EventPayload::RunCompleted(Box::new(RunCompleted {
        status: RunOutcome::Succeeded,
        failure: None,
        execution: Execution { exit_code: Some(0), started_at: None, completed_at: Timestamp::now(), duration_ms: 0 },
        artifacts: Artifacts { output_paths: Vec::new(), events_path: "logs/events.ndjson".to_owned() },
        summary: RunSummaryBuilder::new(run.run_id, run.workspace_id.clone(), configuration.clone(), Vec::new())
            .summary(None),
        event_count,
        extra: Default::default(),
    }))
}

/// The workspace and configuration the benchmarks' runs use.
pub(crate) fn ids() -> Result<(WorkspaceId, ConfigurationId), BoxError> {
    Ok((WorkspaceId::new("bench")?, ConfigurationId::new("members")?))
}

// ---------------------------------------------------------------------------------------------
// The busy engine.

/// Released by `SIGUSR1`: the busy run starts emitting.
pub(crate) static START: Notify = Notify::const_new();

/// Waits for `SIGUSR1` ([`START`]), then emits `rate` console lines per second for `seconds`
/// seconds; `name` is its version and the prefix of its lines.
#[derive(Debug)]
pub(crate) struct BusyEngine {
    pub(crate) name: &'static str,
    pub(crate) rate: u64,
    pub(crate) seconds: u64,
}

#[async_trait::async_trait]
impl Engine for BusyEngine {
    fn version(&self) -> &str {
        self.name
    }

    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome {
        let name = self.name;
        let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("{name}: waiting for SIGUSR1")).await;
        tokio::select! {
            () = START.notified() => {}
            () = context.cancel.cancelled() => return EngineOutcome::succeeded(Vec::new()),
        }
        let mut schedule = Schedule::new(self.rate, self.seconds);
        let total = schedule.total();
        while let Some(due) = schedule.next().await {
            for emitted in due {
                let line = format!("{name}: event {emitted} of {total}");
                if sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, line).await.is_err() {
                    return EngineOutcome::succeeded(Vec::new());
                }
            }
        }
        EngineOutcome::succeeded(Vec::new())
    }
}

/// `rate` items per second for `seconds` seconds, from now, made due every 5 ms: how the busy
/// benchmark runs produce their events.
pub(crate) struct Schedule {
    rate: u64,
    total: u64,
    /// Items made due so far.
    due: u64,
    started: Instant,
    ticks: tokio::time::Interval,
}

impl Schedule {
    pub(crate) fn new(rate: u64, seconds: u64) -> Self {
        let ticks = tokio::time::interval(Duration::from_millis(5));
        Self { rate, total: rate * seconds, due: 0, started: Instant::now(), ticks }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// At the next tick, the numbers (from 1) of the items that became due (maybe none); `None`
    /// once all have been.
    pub(crate) async fn next(&mut self) -> Option<std::ops::RangeInclusive<u64>> {
        if self.due >= self.total {
            return None;
        }
        self.ticks.tick().await;
        let due = ((self.started.elapsed().as_secs_f64() * self.rate as f64) as u64).clamp(self.due, self.total);
        let items = self.due + 1..=due;
        self.due = due;
        Some(items)
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes.

/// This program again as a child process (`configure` adds its arguments; stdin and stdout
/// piped), which first says `listening <address>`. Returns the child, the rest of its stdout and
/// the address; a child that says something else is killed.
pub(crate) fn spawn_listening(
    configure: impl FnOnce(&mut Command),
) -> Result<(Child, BufReader<ChildStdout>, String), BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    configure(&mut command);
    let mut child = command.spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    match line.trim().strip_prefix("listening ") {
        Some(address) => Ok((child, stdout, address.to_owned())),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("the child process said {line:?}").into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Latencies.

/// Latencies in a log-scale histogram: 32 buckets per doubling of microseconds (~2% wide).
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    const PER_DOUBLING: f64 = 32.0;

    pub(crate) fn new() -> Self {
        Self { counts: vec![0; 64 * 32] }
    }

    pub(crate) fn record(&mut self, micros: u64) {
        let index = ((micros as f64 + 1.0).log2() * Self::PER_DOUBLING) as usize;
        let last = self.counts.len() - 1;
        self.counts[index.min(last)] += 1;
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper edge of the bucket holding quantile `q`, in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some((2f64.powf((index + 1) as f64 / Self::PER_DOUBLING) - 1.0) / 1000.0);
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Searching bytes.

/// Where `needle` first occurs in `haystack` (SIMD search: the readers of a load test parse
/// millions of frames on the same cores as the server they measure).
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}
