//! A process killed with SIGKILL in the middle of a run: the next runtime on the same data
//! directory ends that run with exactly one `run.completed{failed, orchestrator_lost}`, the log
//! stays contiguous, and nothing written before the kill is lost.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ade::config::Configuration;
use ade::dispatch::After;
use ade::engine::{Engine, EngineContext, EngineFailure, EngineOutcome, EventSink};
use ade::event::{ConsoleLevel, ConsoleStream, EventPayload, RunId};
use ade::{CreateRun, Runtime};
use futures::TryStreamExt;

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

async fn runtime(dir: &Path) -> Runtime {
    let configuration: Configuration =
        serde_json::from_value(serde_json::json!({ "id": "ticks", "version": "1", "engine": "tick" })).expect("valid");
    Runtime::builder()
        .data_dir(dir)
        .engine("tick", Arc::new(TickEngine), None)
        .configuration(configuration)
        .build()
        .await
        .expect("runtime")
}

const CHILD_DIR: &str = "ADE_IT_RECOVERY_CHILD_DIR";

/// The process that gets killed: starts a run, says so, and keeps running until killed.
#[test]
#[ignore = "started as a child process by a_runtime_killed_mid_run_is_finished_by_the_next_one"]
fn child_runtime() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let runtime = runtime(Path::new(&dir)).await;
        let run = runtime.create_run(CreateRun::new("ticks".parse().expect("id"))).await.expect("create").into_run();
        let mut events = runtime.subscribe(None, run.id, After(0)).await.expect("subscribe");
        let mut seen = 0;
        while seen < 50 {
            events.try_next().await.expect("event").expect("more");
            seen += 1;
        }
        println!("READY {}", run.id);
        std::future::pending::<()>().await;
    });
}

fn log_lines(dir: &Path, run: RunId) -> Vec<String> {
    let path = dir.join(format!("workspaces/default/runs/{run}/logs/events.ndjson"));
    let text = std::fs::read_to_string(path).expect("log");
    // A torn last line (killed mid-write) is not part of the log.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(str::to_owned).collect()
}

#[test]
fn a_runtime_killed_mid_run_is_finished_by_the_next_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "recovery::child_runtime", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (ready, announced) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // libtest prints `test … ... ` before the child's own output, on the same line.
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

    let before = log_lines(dir.path(), run_id);
    assert!(before.len() >= 50, "the child wrote {} events", before.len());

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let runtime = runtime(dir.path()).await;
        let stream = runtime.subscribe(None, run_id, After(0)).await.expect("subscribe");
        let events = tokio::time::timeout(Duration::from_secs(30), stream.try_collect::<Vec<_>>())
            .await
            .expect("the recovered run ends")
            .expect("events");
        let sequences: Vec<u64> = events.iter().map(|e| e.sequence()).collect();
        assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>(), "contiguous");
        for (kept, line) in events.iter().zip(&before) {
            assert_eq!(String::from_utf8_lossy(kept.json()), *line, "nothing written before the kill is lost");
        }
        assert_eq!(events.len(), before.len() + 1, "exactly one event added: run.completed");
        let last = events.last().expect("events").envelope().expect("typed").clone();
        let EventPayload::RunCompleted(completed) = &last.payload else { panic!("last is {}", last.event_type()) };
        assert_eq!(completed.failure.as_ref().map(|f| f.code.as_str()), Some("orchestrator_lost"));
        assert_eq!(completed.event_count, last.sequence);
        let run = runtime.get_run(None, run_id).await.expect("get").expect("run");
        assert_eq!(run.status, ade::run::RunStatus::Failed);
        // A third start finds nothing left to recover and does not touch the run.
        runtime.shutdown().await;
        // The data directory is locked while a runtime holds it: the next one opens once it is dropped.
        assert!(matches!(ade::Runtime::builder().data_dir(dir.path()).build().await, Err(ade::Error::DataDirInUse(_))));
        drop(runtime);
        let again = self::runtime(dir.path()).await;
        let stream = again.subscribe(None, run_id, After(0)).await.expect("subscribe");
        assert_eq!(stream.try_collect::<Vec<_>>().await.expect("events").len(), events.len());
    });
}
