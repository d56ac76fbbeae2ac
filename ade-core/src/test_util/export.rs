//! A recording [`EventExporter`] and what the exporter tests share: an engine that prints lines,
//! a runtime builder around it, and the check of the exporters' delivery guarantee.
#![allow(clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::config::Configuration;
use crate::engine::{Engine, EngineContext, EngineOutcome, EventSink};
use crate::event::{ConsoleLevel, ConsoleStream, EventId, RunId, StoredEvent};
use crate::export::{EventExporter, ExportError, ExportOptions};
use crate::store::RunKey;
use crate::sync::lock;
use crate::{Runtime, RuntimeBuilder};

/// An engine that prints `lines` console lines.
#[derive(Debug)]
pub struct LinesEngine {
    pub lines: usize,
}

#[async_trait]
impl Engine for LinesEngine {
    fn version(&self) -> &str {
        "lines-1"
    }

    async fn run(&self, _context: EngineContext, sink: EventSink) -> EngineOutcome {
        for line in 0..self.lines {
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("line {line}")).await;
        }
        EngineOutcome::succeeded(Vec::new())
    }
}

/// One delivered batch: (sequence, event id, whether `run.completed`) of each event.
pub type Batch = Vec<(u64, EventId, bool)>;

/// What a recording exporter was given: every batch, per run, in the order it came.
#[derive(Debug, Default)]
pub struct Seen {
    pub batches: HashMap<RunId, Vec<Batch>>,
}

/// An exporter that records what it takes; it refuses batches while `refuse` is set, and waits
/// for `open` (when given) before taking any.
#[derive(Debug)]
pub struct Recorder {
    pub name: String,
    pub seen: std::sync::Mutex<Seen>,
    pub changed: Notify,
    pub refuse: AtomicBool,
    pub refused: AtomicUsize,
    /// Accept this many batches, then refuse every one.
    pub accept_only: Option<usize>,
    pub open: Option<watch::Receiver<bool>>,
    /// The run of every accepted batch, in the order they came.
    pub order: std::sync::Mutex<Vec<RunId>>,
}

impl Recorder {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self::with(name, None, None))
    }

    pub fn with(name: &str, accept_only: Option<usize>, open: Option<watch::Receiver<bool>>) -> Self {
        Self {
            name: name.to_owned(),
            seen: std::sync::Mutex::default(),
            changed: Notify::new(),
            refuse: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            accept_only,
            open,
            order: std::sync::Mutex::default(),
        }
    }

    pub fn batches(&self, run: RunId) -> Vec<Batch> {
        lock(&self.seen).batches.get(&run).cloned().unwrap_or_default()
    }

    /// Whether `run.completed` of `run` was delivered.
    pub fn has_completed(&self, run: RunId) -> bool {
        self.batches(run).iter().flatten().any(|(_, _, terminal)| *terminal)
    }

    /// Waits (on the recorder's own signal, with a hang guard) until `check` holds.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if check(self) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{}: timed out waiting for {what}", self.name);
    }
}

#[async_trait]
impl EventExporter for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
        if let Some(open) = &self.open {
            let mut open = open.clone();
            open.wait_for(|open| *open).await.map_err(ExportError::from_source)?;
        }
        let accepted: usize = lock(&self.seen).batches.values().map(Vec::len).sum();
        if self.refuse.load(Ordering::SeqCst) || self.accept_only.is_some_and(|n| accepted >= n) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            self.changed.notify_waiters();
            return Err(ExportError::new("refused on purpose"));
        }
        let batch = events
            .iter()
            .map(|e| {
                let envelope = e.envelope().map_err(ExportError::from_source)?;
                Ok((e.sequence(), envelope.event_id, e.is_terminal()))
            })
            .collect::<Result<Vec<_>, ExportError>>()?;
        lock(&self.seen).batches.entry(run.run_id).or_default().push(batch);
        lock(&self.order).push(run.run_id);
        self.changed.notify_waiters();
        Ok(())
    }
}

pub fn lines_configuration(id: &str) -> Configuration {
    serde_json::from_value(json!({ "id": id, "version": "1", "engine": "lines" })).expect("valid configuration")
}

pub fn builder(dir: &std::path::Path, options: ExportOptions) -> RuntimeBuilder {
    Runtime::builder()
        .data_dir(dir)
        .workers(3)
        .engine("lines", Arc::new(LinesEngine { lines: 25 }), None)
        .configuration(lines_configuration("members"))
        .export_options(options)
}

pub fn fast() -> ExportOptions {
    ExportOptions::default()
        .with_batch_size(4)
        .with_backoff(Duration::from_millis(5), Duration::from_millis(40))
        .with_shutdown_grace(Duration::from_secs(10))
}

/// The stored log of a run: (sequence, event id) of every event.
pub async fn stored_ids(runtime: &Runtime, run: RunId) -> Vec<(u64, EventId)> {
    let run = runtime.get_run(None, run).await.expect("get").expect("exists");
    let key = RunKey::new(run.workspace_id, run.id);
    let events: Vec<_> =
        runtime.dispatcher().store().read_after(&key, 0).await.expect("read").try_collect().await.expect("events");
    events.iter().map(|e| (e.sequence(), e.envelope().expect("typed").event_id)).collect()
}

/// The guarantee on what one exporter saw of one run: each batch non-empty, contiguous, starting
/// at most right after what came before (a re-delivery starts earlier, never later); and,
/// duplicates aside, exactly the stored log.
pub fn assert_delivered(batches: &[Batch], log: &[(u64, EventId)]) {
    let mut seen: Vec<(u64, EventId)> = Vec::new();
    for batch in batches {
        assert!(!batch.is_empty(), "no empty batch");
        for pair in batch.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + 1, "a batch is contiguous: {batch:?}");
        }
        let first = batch[0].0;
        assert!(first >= 1 && first <= seen.len() as u64 + 1, "batch from {first} after {} events: a gap", seen.len());
        for &(sequence, event_id, _) in batch {
            match seen.get(usize::try_from(sequence - 1).expect("small")) {
                Some(earlier) => assert_eq!(earlier.1, event_id, "a re-delivery is the same event"),
                None => seen.push((sequence, event_id)),
            }
        }
    }
    assert_eq!(seen, log, "every stored event, in order");
}
