//! An event exporter across a SIGKILL: the process is killed while its exporter is being fed; the
//! next runtime on the same data directory resumes from the durable cursor, so the exporter
//! (here, a file both processes append to) ends up with every event of the run, in order, each
//! batch starting at most right after what it had before: duplicates allowed, gaps not.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ade::config::Configuration;
use ade::dispatch::After;
use ade::engine::{Engine, EngineContext, EngineFailure, EngineOutcome, EventSink};
use ade::event::{ConsoleLevel, ConsoleStream, RunId, StoredEvent};
use ade::export::{EventExporter, ExportError, ExportOptions};
use ade::store::RunKey;
use ade::{CreateRun, Runtime};
use futures::TryStreamExt;
use tokio::sync::Notify;

/// Prints a console line every few milliseconds until stopped.
#[derive(Debug)]
struct TickEngine;

#[async_trait::async_trait]
impl Engine for TickEngine {
    fn version(&self) -> &str {
        "tick-1"
    }

    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome {
        for i in 0.. {
            if sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("tick {i}")).await.is_err() {
                break;
            }
            tokio::select! {
                () = context.cancel.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        EngineOutcome::failed(EngineFailure::new("cancelled", "stopped"))
    }
}

/// Appends one line per delivered event to a file: `<batch number> <sequence> <event id>`.
#[derive(Debug)]
struct FileExporter {
    file: Mutex<std::fs::File>,
    batches: AtomicUsize,
    events: AtomicUsize,
    delivered: Notify,
}

impl FileExporter {
    fn open(path: &Path) -> Arc<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("export file");
        Arc::new(Self {
            file: Mutex::new(file),
            batches: AtomicUsize::new(0),
            events: AtomicUsize::new(0),
            delivered: Notify::new(),
        })
    }
}

#[async_trait::async_trait]
impl EventExporter for FileExporter {
    fn name(&self) -> &str {
        "file"
    }

    async fn deliver(&self, _run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
        let batch = self.batches.fetch_add(1, Ordering::SeqCst);
        let mut text = String::new();
        for event in events {
            let envelope = event.envelope().map_err(ExportError::from_source)?;
            text.push_str(&format!("{batch} {} {}\n", envelope.sequence, envelope.event_id));
        }
        let mut file = self.file.lock().map_err(|_| ExportError::new("poisoned"))?;
        file.write_all(text.as_bytes()).map_err(ExportError::from_source)?;
        self.events.fetch_add(events.len(), Ordering::SeqCst);
        self.delivered.notify_waiters();
        Ok(())
    }
}

const CHILD_DIR: &str = "ADE_IT_EXPORT_CHILD_DIR";

fn export_file(dir: &Path) -> PathBuf {
    dir.join("exported.txt")
}

async fn runtime(dir: &Path, exporter: Arc<FileExporter>) -> Runtime {
    let configuration: Configuration =
        serde_json::from_value(serde_json::json!({ "id": "ticks", "version": "1", "engine": "tick" })).expect("valid");
    Runtime::builder()
        .data_dir(dir.join("data"))
        .engine("tick", Arc::new(TickEngine), None)
        .configuration(configuration)
        .exporter(exporter)
        .export_options(ExportOptions::default().with_batch_size(7))
        .build()
        .await
        .expect("runtime")
}

/// The process that gets killed: starts a run, waits until its exporter has taken some of it,
/// says so, and keeps running until killed.
#[test]
#[ignore = "started as a child process by an_exporter_resumes_after_sigkill_without_a_gap"]
fn export_child_runtime() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let exporter = FileExporter::open(&export_file(&dir));
        let runtime = runtime(&dir, exporter.clone()).await;
        let run = runtime.create_run(CreateRun::new("ticks".parse().expect("id"))).await.expect("create").into_run();
        loop {
            let delivered = exporter.delivered.notified();
            tokio::pin!(delivered);
            delivered.as_mut().enable();
            if exporter.events.load(Ordering::SeqCst) >= 40 {
                break;
            }
            delivered.await;
        }
        println!("READY {}", run.id);
        std::future::pending::<()>().await;
    });
}

#[test]
fn an_exporter_resumes_after_sigkill_without_a_gap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "export::export_child_runtime", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (ready, announced) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let id = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split_once("READY ").map(|(_, id)| id.trim().to_owned()));
        let _ = ready.send(id);
    });
    let announced = announced.recv_timeout(Duration::from_secs(120));
    let Ok(Some(run_id)) = announced else {
        let _ = child.kill();
        panic!("the child did not start a run: {announced:?}");
    };
    let run_id: RunId = run_id.parse().expect("run id");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let before = std::fs::read_to_string(export_file(dir.path())).expect("exported").lines().count();
    assert!(before >= 40, "the child exported {before} events");

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let exporter = FileExporter::open(&export_file(dir.path()));
        let runtime = runtime(dir.path(), exporter.clone()).await;
        // Recovery ends the run; the exporter gets the rest of it, run.completed included.
        let log: Vec<_> = tokio::time::timeout(
            Duration::from_secs(30),
            runtime.subscribe(None, run_id, After(0)).await.expect("subscribe").try_collect::<Vec<_>>(),
        )
        .await
        .expect("the recovered run ends")
        .expect("events");
        runtime.shutdown().await;

        // Batch numbers restart in the second process: number them apart.
        let text = std::fs::read_to_string(export_file(dir.path())).expect("exported");
        let mut batches: Vec<Vec<(u64, String)>> = Vec::new();
        let mut last_key = None;
        for (index, line) in text.lines().enumerate() {
            let mut parts = line.split(' ');
            let (batch, sequence, event_id) = (parts.next(), parts.next(), parts.next());
            let sequence: u64 = sequence.and_then(|s| s.parse().ok()).expect("sequence");
            let key = (index >= before, batch.map(str::to_owned));
            if last_key.as_ref() != Some(&key) {
                batches.push(Vec::new());
                last_key = Some(key);
            }
            batches.last_mut().expect("a batch").push((sequence, event_id.expect("event id").to_owned()));
        }
        let mut seen: HashMap<u64, String> = HashMap::new();
        for batch in &batches {
            let first = batch[0].0;
            assert!(first <= seen.len() as u64 + 1, "a gap: batch from {first} after {} events", seen.len());
            for (offset, (sequence, event_id)) in batch.iter().enumerate() {
                assert_eq!(*sequence, first + offset as u64, "contiguous batch");
                let earlier = seen.entry(*sequence).or_insert_with(|| event_id.clone());
                assert_eq!(earlier, event_id, "a re-delivery is the same event");
            }
        }
        assert_eq!(seen.len(), log.len(), "every event of the run, the recovered run.completed included");
        for event in &log {
            let envelope = event.envelope().expect("typed");
            assert_eq!(seen.get(&envelope.sequence), Some(&envelope.event_id.to_string()));
        }
        let redelivered = text.lines().count() - log.len();
        assert!(redelivered <= 7, "at most the batch unacknowledged at the kill comes again: {redelivered}");
    });
}
