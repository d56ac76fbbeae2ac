//! Store faults (SPEC §5 "Write failure"): a run whose events cannot all be persisted never
//! succeeds, nothing follows the hole, it ends as soon as its end can be written, and its engine
//! runs at most once. The stores fail on purpose ([`crate::store::faults`]).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::*;
use crate::store::faults::{Fault, FaultPlan, FaultyEventStore, FaultyRunStore};

/// Emits `line 0`, `line 1`, … (`lines` of them, yielding every 50), waiting for `proceed` after
/// the first `pause_after`; stops early, and says so, when cancelled.
#[derive(Debug, Default)]
struct ChattyEngine {
    runs: AtomicUsize,
    stopped_early: AtomicUsize,
    paused: Notify,
    proceed: Notify,
}

impl ChattyEngine {
    fn settings(configuration: &Configuration) -> (u64, Option<u64>) {
        let EngineSpec::Custom { settings, .. } = &configuration.engine else { return (0, None) };
        let lines = settings.get("lines").and_then(serde_json::Value::as_u64).unwrap_or(0);
        (lines, settings.get("pause_after").and_then(serde_json::Value::as_u64))
    }
}

#[async_trait]
impl Engine for ChattyEngine {
    fn version(&self) -> &str {
        "chatty-1"
    }

    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let (lines, pause_after) = ChattyEngine::settings(&context.configuration);
        for line in 0..lines {
            if Some(line) == pause_after {
                self.paused.notify_one();
                self.proceed.notified().await;
            }
            if context.cancel.is_cancelled() {
                self.stopped_early.fetch_add(1, Ordering::SeqCst);
                return EngineOutcome::failed(EngineFailure::new("cancelled", "stopped"));
            }
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("line {line}")).await;
            if line % 50 == 49 {
                tokio::task::yield_now().await;
            }
        }
        EngineOutcome::succeeded(Vec::new())
    }
}

struct Faulty {
    runtime: Runtime,
    engine: Arc<ChattyEngine>,
    events: Arc<FaultPlan>,
    runs: Arc<FaultPlan>,
    _dir: tempfile::TempDir,
}

/// A runtime on memory stores that fail as the plans say, with the chatty engine.
async fn faulty(settings: serde_json::Value) -> Faulty {
    let dir = tempfile::tempdir().expect("temp dir");
    let (events, runs) = (FaultPlan::new(), FaultPlan::new());
    let engine = Arc::new(ChattyEngine::default());
    let mut value = json!({ "id": "chatty", "version": "1", "engine": "chatty" });
    if let (Some(object), Some(extra)) = (value.as_object_mut(), settings.as_object()) {
        object.extend(extra.clone());
    }
    let configuration: Configuration = serde_json::from_value(value).expect("valid configuration");
    let runtime = Runtime::builder()
        .data_dir(dir.path())
        .workers(1)
        .event_store(Arc::new(FaultyEventStore::new(Arc::new(crate::store::MemoryEventStore::new()), events.clone())))
        .run_store(Arc::new(FaultyRunStore::new(Arc::new(crate::store::MemoryRunStore::new()), runs.clone())))
        .engine("chatty", engine.clone(), None)
        .configuration(configuration)
        .build()
        .await
        .expect("runtime");
    Faulty { runtime, engine, events, runs, _dir: dir }
}

fn console_messages(events: &[Envelope]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::ConsoleLine(line) if line.logger.is_none() => Some(line.message.clone()),
            _ => None,
        })
        .collect()
}

/// The log's end: `run.error{store_error}` right before `run.completed{failed, store_error}`.
fn assert_ends_with_store_error(run: &Run, events: &[Envelope]) {
    assert_well_formed(run, events);
    let done = completion(events);
    assert_eq!(done.status, RunOutcome::Failed, "a run with lost events never succeeds");
    let failure = done.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, "store_error");
    assert!(failure.message.contains("could not be persisted"), "{}", failure.message);
    let before_last = &events[events.len() - 2].payload;
    assert!(
        matches!(before_last, EventPayload::RunError(e) if e.code == "store_error"),
        "run.error before run.completed: {before_last:?}"
    );
}

#[tokio::test]
async fn events_lost_mid_run_fail_the_run_and_nothing_follows_the_hole() {
    let f = faulty(json!({ "lines": 2000 })).await;
    // The third append (after run.queued and run.started) is refused once: a disk that was full
    // for a moment. Everything after it would be written again if the writer let it.
    f.events.fail_calls("append", 3, 1, Fault::NoSpace);
    let (run, events) = run_to_end(&f.runtime, CreateRun::new(id("chatty"))).await;
    assert_ends_with_store_error(&run, &events);
    let lines = console_messages(&events);
    assert!(lines.len() < 2000, "some lines were lost");
    let prefix: Vec<String> = (0..lines.len()).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, prefix, "the log holds what the engine emitted before the hole, and nothing after it");
    assert_eq!(f.engine.stopped_early.load(Ordering::SeqCst), 1, "the engine was stopped");
    assert_eq!(run.status, RunStatus::Failed);
    f.runtime.shutdown().await;
}

#[tokio::test]
async fn a_run_whose_end_cannot_be_written_ends_once_the_store_takes_writes_again() {
    let f = faulty(json!({ "lines": 100, "pause_after": 10 })).await;
    let run = f.runtime.create_run(CreateRun::new(id("chatty"))).await.expect("create").into_run();
    let stream = f.runtime.subscribe(None, run.id, After(0)).await.expect("subscribe");
    f.engine.paused.notified().await;
    // From here on the disk is full: the engine's next lines, run.error and run.completed fail.
    f.events.fail("append", Fault::NoSpace);
    f.engine.proceed.notify_one();
    let failing = f.events.calls("append");
    // The runtime keeps trying to end the run (each try appends) while it cannot.
    for attempts in [3, 4] {
        tokio::time::timeout(Duration::from_secs(30), async {
            while f.events.calls("append") < failing + attempts {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the runtime retries");
    }
    let waiting = f.runtime.get_run(None, run.id).await.expect("get").expect("run");
    assert!(!waiting.status.is_terminal(), "not ended without its run.completed: {:?}", waiting.status);
    f.events.heal();
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(30), stream.try_collect::<Vec<_>>())
        .await
        .expect("the subscriber sees the run end once the disk has room")
        .expect("no stream error");
    let events: Vec<Envelope> = events.iter().map(|e| e.envelope().expect("typed").clone()).collect();
    let run = f.runtime.get_run(None, run.id).await.expect("get").expect("run");
    assert_ends_with_store_error(&run, &events);
    assert_eq!(console_messages(&events), (0..10).map(|i| format!("line {i}")).collect::<Vec<_>>());
    assert_eq!(f.engine.runs.load(Ordering::SeqCst), 1);
    f.runtime.shutdown().await;
}

#[tokio::test]
async fn a_refused_row_update_fails_the_run_without_running_its_engine() {
    let f = faulty(json!({ "lines": 10 })).await;
    f.runs.fail_calls("transition", 1, 1, Fault::NoSpace);
    let (run, events) = run_to_end(&f.runtime, CreateRun::new(id("chatty"))).await;
    assert_well_formed(&run, &events);
    assert_eq!(types(&events), ["run.queued", "run.error", "run.completed"]);
    assert_eq!(completion(&events).failure.as_ref().map(|f| f.code.as_str()), Some("store_error"));
    assert_eq!(run.status, RunStatus::Failed, "the queued row converged with its log");
    assert_eq!(f.engine.runs.load(Ordering::SeqCst), 0);
    f.runtime.shutdown().await;
}

#[tokio::test]
async fn a_queued_run_whose_log_went_further_is_never_executed_again() {
    let f = faulty(json!({ "lines": 10 })).await;
    // What a row update lost to a full disk leaves: the row says queued, the log says started.
    let run = f.runtime.create_run(CreateRun::new(id("chatty"))).await.expect("create").into_run();
    assert_eq!(completion(&follow(&f.runtime, run.id).await).status, RunOutcome::Succeeded);
    assert_eq!(f.engine.runs.load(Ordering::SeqCst), 1);

    let stale_id = RunId::new();
    let stale = Run { id: stale_id, links: crate::run::RunLinks::for_run(stale_id), ..run };
    f.runtime.run_store().create_run(&stale, None).await.expect("row");
    let key = RunKey::new(stale.workspace_id.clone(), stale.id);
    let context = RunContext::new(stale.workspace_id.clone(), stale.configuration_id.clone(), stale.id);
    let writer = f.runtime.dispatcher().open_run(context).await.expect("writer");
    let queued = RunQueued { mode: stale.mode, ..RunQueued::default() };
    writer.emit(EventSource::Api, queued).await.expect("queued");
    let started = crate::event::RunStarted {
        status: crate::event::InProgressStatus::Value,
        mode: stale.mode,
        engine_version: None,
        config_version: None,
        env: None,
        extra: Default::default(),
    };
    writer.emit_durable(EventSource::Api, started).await.expect("started");
    drop(writer);
    assert_eq!(f.runtime.dispatcher().store().tail(&key).await.expect("tail").last_sequence, 2);

    f.runtime.inner.work.notify_one();
    let events = follow(&f.runtime, stale.id).await;
    assert_eq!(types(&events), ["run.queued", "run.started", "run.completed"]);
    let done = completion(&events);
    assert_eq!(done.failure.as_ref().map(|f| f.code.as_str()), Some("orchestrator_lost"));
    assert_eq!(f.engine.runs.load(Ordering::SeqCst), 1, "the engine did not run again");
    f.runtime.shutdown().await;
}
