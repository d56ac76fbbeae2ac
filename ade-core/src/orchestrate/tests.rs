//! The runtime's guarantees, asserted event by event with a scripted in-process engine.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::json;

use super::*;
use crate::config::{Configuration, EngineSpec};
use crate::engine::{
    BuildContext, BuildOutcome, Builder, Engine, EngineContext, EngineFailure, EngineOutcome, EventSink,
    MIN_CONSOLE_MESSAGE, SinkLimits,
};
use crate::event::{ConsoleLevel, ConsoleStream, Envelope, EventPayload};
use crate::run::{RunOutcome, Stage};
use crate::summary::RunOutcomeInfo;
use crate::test_util::scripted::{ScriptedBuilder, ScriptedEngine, configuration};
use crate::testing::{assert_well_formed, completion, follow, id, run_to_end, types};

mod faults;

mod oversize;

struct Harness {
    runtime: Runtime,
    _dir: tempfile::TempDir,
}

async fn harness(configurations: Vec<Configuration>, workers: usize) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut builder = Runtime::builder()
        .data_dir(dir.path())
        .workers(workers)
        .cancel_grace(Duration::from_secs(5))
        .engine("scripted", Arc::new(ScriptedEngine), Some(Arc::new(ScriptedBuilder)));
    for configuration in configurations {
        builder = builder.configuration(configuration);
    }
    Harness { runtime: builder.build().await.expect("runtime"), _dir: dir }
}

/// Every log: sequences 1..=n, one `run.completed`, last, with `event_count` = n, the row agrees.
const HAPPY_BUILD: [&str; 8] = [
    "run.queued",
    "build.created",
    "build.started",
    "build.phase.started",
    "build.phase.completed",
    "build.completed",
    "run.started",
    "run.phase.started",
];
const ENGINE_PHASES: [&str; 6] = [
    "run.phase.started",
    "console.line",
    "run.phase.completed",
    "run.phase.started",
    "console.line",
    "run.phase.completed",
];

#[tokio::test]
async fn happy_path_then_cache_hit_in_canonical_order() {
    let h = harness(vec![configuration("members", json!({ "build": true }))], 2).await;
    let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("members"))).await;
    let mut want: Vec<&str> = HAPPY_BUILD[..7].to_vec();
    want.extend(ENGINE_PHASES);
    want.push("run.completed");
    assert_eq!(types(&events), want);
    assert_well_formed(&run, &events);
    let done = completion(&events);
    assert_eq!(
        (done.status, &done.artifacts.output_paths),
        (RunOutcome::Succeeded, &vec!["outputs/result.txt".to_owned()])
    );
    assert!(h.runtime.run_dir(&run.workspace_id, run.id).join("outputs/result.txt").is_file());
    assert!(events[1..].iter().all(|e| e.build_id.is_some()), "build_id on build.* and everything after");
    assert_eq!(events[0].build_id, None);
    assert!(
        matches!(&events[1].payload, EventPayload::BuildCreated(b) if b.reason == crate::event::BuildReason::CacheMiss && b.should_build)
    );

    let (again, events) = run_to_end(&h.runtime, CreateRun::new(id("members"))).await;
    let mut want = vec!["run.queued", "build.created", "build.completed", "run.started"];
    want.extend(ENGINE_PHASES);
    want.push("run.completed");
    assert_eq!(types(&events), want, "cache hit");
    assert!(
        matches!(&events[1].payload, EventPayload::BuildCreated(b) if !b.should_build && b.reason == crate::event::BuildReason::CacheHit)
    );
    assert!(
        matches!(&events[2].payload, EventPayload::BuildCompleted(b) if b.status == crate::event::BuildStatus::Reused)
    );
    assert_eq!(events[1].build_id, run.build_id, "the reused build's id");
    assert_well_formed(&again, &events);
    assert_eq!(completion(&events).summary.run.env_reused, Some(true));

    let forced =
        CreateRun::new(id("members")).options(RunOptions { force_rebuild: Some(true), ..RunOptions::default() });
    let (_, events) = run_to_end(&h.runtime, forced).await;
    assert!(
        matches!(&events[1].payload, EventPayload::BuildCreated(b) if b.reason == crate::event::BuildReason::ForceRebuild && b.should_build)
    );
    h.runtime.shutdown().await;
}

#[tokio::test]
async fn build_failure_and_engine_failure_end_failed_with_their_stage() {
    let h = harness(
        vec![
            configuration("bad-build", json!({ "build": true, "build_fail": true })),
            configuration("bad-engine", json!({ "fail": true })),
        ],
        2,
    )
    .await;
    let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("bad-build"))).await;
    assert_eq!(
        types(&events),
        [
            "run.queued",
            "build.created",
            "build.started",
            "build.phase.started",
            "build.phase.completed",
            "build.completed",
            "run.error",
            "run.completed"
        ]
    );
    assert!(
        matches!(&events[5].payload, EventPayload::BuildCompleted(b) if b.status == crate::event::BuildStatus::Failed && b.error.as_ref().is_some_and(|e| e.code == "config_invalid"))
    );
    assert!(
        matches!(&events[6].payload, EventPayload::RunError(e) if e.stage == Stage::Build && e.code == "build_failed")
    );
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!((failure.stage, failure.code.as_str()), (Stage::Build, "build_failed"));
    assert_well_formed(&run, &events);

    let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("bad-engine"))).await;
    let mut want = vec!["run.queued", "run.started"];
    want.extend(ENGINE_PHASES);
    want.extend(["run.error", "run.completed"]);
    assert_eq!(types(&events), want);
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!((failure.stage, failure.code.as_str()), (Stage::Run, "engine_error"));
    assert_eq!(run.status, RunStatus::Failed);
    assert_well_formed(&run, &events);
}

#[tokio::test]
async fn validate_only_and_dry_run_write_no_outputs() {
    let h = harness(vec![configuration("members", json!({ "build": true }))], 2).await;
    for mode in [RunMode::ValidateOnly, RunMode::DryRun] {
        let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("members")).mode(mode)).await;
        assert!(types(&events).contains(&"build.completed"), "{mode:?}: the build runs");
        assert!(
            matches!(&events.iter().find(|e| e.event_type() == "run.started").map(|e| &e.payload), Some(EventPayload::RunStarted(s)) if s.mode == mode)
        );
        assert!(completion(&events).artifacts.output_paths.is_empty(), "{mode:?}");
        assert_eq!(run.status, RunStatus::Succeeded);
        assert!(!h.runtime.run_dir(&run.workspace_id, run.id).join("outputs/result.txt").exists());
    }
}

async fn wait_for_event(runtime: &Runtime, id: RunId, event_type: &str) {
    let mut stream = runtime.subscribe(None, id, After(0)).await.expect("subscribe");
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = stream.try_next().await.expect("event") {
            if event.envelope().expect("typed").event_type() == event_type {
                return true;
            }
        }
        false
    });
    assert!(found.await.expect("in time"), "{event_type} never came");
}

#[tokio::test]
async fn cancel_while_building_and_while_running() {
    let h = harness(
        vec![
            configuration("slow-build", json!({ "build": true, "build_block": true })),
            configuration("slow-run", json!({ "block": true })),
        ],
        2,
    )
    .await;
    let building = h.runtime.create_run(CreateRun::new(id("slow-build"))).await.expect("create").into_run();
    wait_for_event(&h.runtime, building.id, "build.phase.completed").await;
    h.runtime.cancel(None, building.id).await.expect("cancel");
    let events = follow(&h.runtime, building.id).await;
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!(
        (completion(&events).status, failure.stage, failure.code.as_str()),
        (RunOutcome::Cancelled, Stage::Build, "cancelled")
    );
    assert!(!types(&events).contains(&"run.started"));

    let running = h.runtime.create_run(CreateRun::new(id("slow-run"))).await.expect("create").into_run();
    wait_for_event(&h.runtime, running.id, "console.line").await;
    let active = h.runtime.get_run(None, running.id).await.expect("get").expect("run");
    let so_far = active.summary.expect("an active run shows its summary so far");
    assert_eq!((active.status, so_far.run.status), (RunStatus::Running, RunStatus::Running));
    h.runtime.cancel(None, running.id).await.expect("cancel");
    let events = follow(&h.runtime, running.id).await;
    assert_eq!(completion(&events).status, RunOutcome::Cancelled);
    let run = h.runtime.get_run(None, running.id).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_well_formed(&run, &events);
    assert!(matches!(h.runtime.cancel(None, running.id).await, Err(Error::AlreadyTerminal(_))));
}

#[tokio::test]
async fn a_queued_run_can_be_cancelled_before_it_starts() {
    let h = harness(vec![configuration("slow-run", json!({ "block": true }))], 1).await;
    let busy = h.runtime.create_run(CreateRun::new(id("slow-run"))).await.expect("create").into_run();
    wait_for_event(&h.runtime, busy.id, "run.started").await;
    let waiting = h.runtime.create_run(CreateRun::new(id("slow-run"))).await.expect("create").into_run();
    h.runtime.cancel(None, waiting.id).await.expect("cancel");
    let events = follow(&h.runtime, waiting.id).await;
    assert_eq!(types(&events), ["run.queued", "run.completed"]);
    assert_eq!(completion(&events).status, RunOutcome::Cancelled);
    h.runtime.cancel(None, busy.id).await.expect("cancel the busy one");
    follow(&h.runtime, busy.id).await;
}

#[tokio::test]
async fn a_run_over_its_timeout_fails_with_timeout() {
    let mut slow = configuration("slow-run", json!({ "block": true }));
    slow.timeout_s = Some(1);
    let h = harness(vec![slow], 1).await;
    let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("slow-run"))).await;
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!((run.status, failure.code.as_str()), (RunStatus::Failed, "timeout"));
    assert!(matches!(&events[events.len() - 2].payload, EventPayload::RunError(e) if e.code == "timeout"));
    assert_well_formed(&run, &events);
}

#[tokio::test]
async fn idempotent_create_returns_the_same_run_and_refuses_another_body() {
    let h = harness(vec![configuration("members", json!({}))], 1).await;
    let first =
        h.runtime.create_run(CreateRun::new(id("members")).idempotency_key("k1", "hash-a")).await.expect("create");
    let again =
        h.runtime.create_run(CreateRun::new(id("members")).idempotency_key("k1", "hash-a")).await.expect("again");
    assert!(matches!(first, Created::New(_)) && matches!(again, Created::Existing(_)));
    assert_eq!(first.run().id, again.run().id);
    let other = h.runtime.create_run(CreateRun::new(id("members")).idempotency_key("k1", "hash-b")).await;
    assert!(matches!(other, Err(Error::IdempotencyConflict)), "{other:?}");
    let elsewhere =
        CreateRun::new(id("members")).workspace(WorkspaceId::new("other").expect("ws")).idempotency_key("k1", "hash-b");
    assert!(matches!(h.runtime.create_run(elsewhere).await, Ok(Created::New(_))), "keys are scoped to a workspace");
    let events = follow(&h.runtime, first.run().id).await;
    assert_eq!(types(&events).iter().filter(|t| **t == "run.queued").count(), 1, "one run, one log");
}

#[tokio::test]
async fn unknown_configurations_and_documents_are_refused() {
    let h = harness(vec![configuration("members", json!({}))], 1).await;
    assert!(matches!(h.runtime.create_run(CreateRun::new(id("nope"))).await, Err(Error::UnknownConfiguration(_))));
    let missing = CreateRun::new(id("members")).document(DocumentId::new());
    assert!(matches!(h.runtime.create_run(missing).await, Err(Error::UnknownDocument(_))));
    let document = h
        .runtime
        .upload_document(&WorkspaceId::new("other").expect("ws"), "a.csv", None, &b"a,b\n1,2\n"[..], 1024)
        .await
        .expect("upload");
    let foreign = CreateRun::new(id("members")).document(document.id);
    assert!(
        matches!(h.runtime.create_run(foreign).await, Err(Error::UnknownDocument(_))),
        "another workspace's document"
    );
    let too_big = h.runtime.upload_document(&WorkspaceId::default(), "big.csv", None, &[b'x'; 100][..], 10).await;
    assert!(matches!(too_big, Err(Error::DocumentTooLarge { limit: 10 })));
}

#[tokio::test]
async fn a_restarted_runtime_finishes_runs_left_active() {
    let dir = tempfile::tempdir().expect("temp dir");
    let configurations =
        || vec![configuration("slow-run", json!({ "block": true })), configuration("quick", json!({}))];
    let open = |dir: &std::path::Path| {
        let mut builder = Runtime::builder().data_dir(dir).workers(1).engine(
            "scripted",
            Arc::new(ScriptedEngine),
            Some(Arc::new(ScriptedBuilder)),
        );
        for configuration in configurations() {
            builder = builder.configuration(configuration);
        }
        builder.build()
    };
    let (running, queued, copy) = {
        let first = open(dir.path()).await.expect("runtime");
        let running = first.create_run(CreateRun::new(id("slow-run"))).await.expect("create").into_run();
        wait_for_event(&first, running.id, "console.line").await;
        // The only worker is busy: this one stays queued.
        let queued = first.create_run(CreateRun::new(id("quick"))).await.expect("create").into_run();
        // Pretend the process died: one row says running (its log has no run.completed), one says
        // queued. The first runtime keeps its tasks, so detach from it by copying the data away.
        let copy = tempfile::tempdir().expect("copy dir");
        copy_dir(dir.path(), copy.path());
        first.cancel(None, running.id).await.expect("cancel");
        follow(&first, running.id).await;
        (running.id, queued.id, copy)
    };
    let second = open(copy.path()).await.expect("restart");
    let events = follow(&second, running).await;
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!(failure.code, "orchestrator_lost");
    let run = second.get_run(None, running).await.expect("get").expect("run");
    assert_well_formed(&run, &events);
    assert_eq!(&types(&events)[..3], ["run.queued", "run.started", "console.line"], "nothing written before is lost");

    // The queued run is picked up again and runs normally, its first event kept.
    let events = follow(&second, queued).await;
    let run = second.get_run(None, queued).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(types(&events).iter().filter(|t| **t == "run.queued").count(), 1);
    assert_well_formed(&run, &events);
}

#[tokio::test]
async fn recovery_kills_what_a_lost_runs_engine_left_running_and_nothing_else() {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let open = |dir: &std::path::Path| {
        Runtime::builder()
            .data_dir(dir)
            .workers(1)
            .engine("scripted", Arc::new(ScriptedEngine), None)
            .configuration(configuration("slow-run", json!({ "block": true })))
            .build()
    };
    // A data directory whose run was running when its process died (as above).
    let (lost, copy) = {
        let first = open(dir.path()).await.expect("runtime");
        let running = first.create_run(CreateRun::new(id("slow-run"))).await.expect("create").into_run();
        wait_for_event(&first, running.id, "console.line").await;
        let copy = tempfile::tempdir().expect("copy dir");
        copy_dir(dir.path(), copy.path());
        first.cancel(None, running.id).await.expect("cancel");
        follow(&first, running.id).await;
        (running.id, copy)
    };
    // What the dead process's engine left running, and a process of another run beside it.
    let sleeper = |run: RunId| {
        std::process::Command::new("sleep").arg("120").env("ADE_RUN_ID", run.to_string()).spawn().expect("sleep")
    };
    let mut left = sleeper(lost);
    let mut unrelated = sleeper(RunId::new());
    let second = open(copy.path()).await.expect("restart");
    // Recovery waited for it to be gone (a zombie of this test now) before finalizing the run.
    let ended = left.try_wait().expect("try_wait");
    let unrelated_ended = unrelated.try_wait().expect("try_wait");
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    if ended.is_none() {
        let _ = left.kill();
        let _ = left.wait();
    }
    assert_eq!(ended.and_then(|status| status.signal()), Some(9), "the lost run's process is killed");
    assert_eq!(unrelated_ended, None, "another run's process is left alone");
    let events = follow(&second, lost).await;
    assert_eq!(completion(&events).failure.as_ref().map(|f| f.code.as_str()), Some("orchestrator_lost"));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_created_concurrently_all_complete_exactly_once() {
    // Workers claim runs while creators are still handing over their writers: no run may wait
    // for a writer that is never released.
    let h = harness(vec![configuration("members", json!({}))], 3).await;
    let mut creators = Vec::new();
    for _ in 0..8 {
        let runtime = h.runtime.clone();
        creators.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..15 {
                ids.push(runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id);
            }
            ids
        }));
    }
    for creator in creators {
        for run_id in creator.await.expect("creator") {
            let events = follow(&h.runtime, run_id).await;
            let run = h.runtime.get_run(None, run_id).await.expect("get").expect("run");
            assert_eq!(run.status, RunStatus::Succeeded);
            assert_well_formed(&run, &events);
        }
    }
}

#[tokio::test]
async fn the_summary_folded_live_equals_the_summary_folded_from_the_log() {
    let h = harness(
        vec![configuration("members", json!({ "build": true })), configuration("broken", json!({ "fail": true }))],
        2,
    )
    .await;
    for request in [CreateRun::new(id("members")), CreateRun::new(id("broken")), CreateRun::new(id("members"))] {
        let (run, events) = run_to_end(&h.runtime, request).await;
        let completed = completion(&events);
        let from_log = execute::fold_summary(&h.runtime, &run, &RunOutcomeInfo::from(completed)).await.expect("fold");
        assert_eq!(completed.summary, from_log, "run {}", run.id);
        assert_eq!(run.summary.as_ref(), Some(&from_log));
    }
}

#[tokio::test]
async fn shutdown_waits_for_the_runs_being_finished_behind_the_workers() {
    // A worker takes its next run while the last one's run.completed is still being written:
    // shutdown must wait for those too, so no run is left started but unfinished.
    let h = harness(vec![configuration("members", json!({}))], 1).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(h.runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id);
    }
    follow(&h.runtime, ids[4]).await;
    h.runtime.shutdown().await;
    assert!(lock(&h.runtime.inner.in_flight).is_empty(), "shutdown returned while runs were being finished");
    for run_id in ids {
        let run = h.runtime.get_run(None, run_id).await.expect("get").expect("run");
        let key = RunKey::new(run.workspace_id.clone(), run_id);
        let tail = h.runtime.dispatcher().store().tail(&key).await.expect("tail");
        match run.status {
            RunStatus::Queued => assert!(!tail.terminal, "a queued run has no run.completed"),
            RunStatus::Succeeded => {
                assert!(tail.terminal, "a finished run's log ends with run.completed");
                assert_eq!(run.last_sequence, tail.last_sequence);
            }
            other => panic!("run {run_id} left {other:?} by shutdown"),
        }
    }
}

#[tokio::test]
async fn a_process_configuration_builds_and_runs_through_the_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = r#"echo '{"type":"run.phase.started","payload":{"phase":"work"}}'
echo "plain output"
echo '{"type":"run.completed","payload":{}}'
mkdir -p "$ADE_OUTPUT_DIR" && echo hi > "$ADE_OUTPUT_DIR/out.txt"
echo '{"type":"run.phase.completed","payload":{"phase":"work","status":"succeeded","duration_ms":1}}'
echo '{"type":"engine.completed","payload":{"output_paths":["outputs/out.txt"]}}'"#;
    let configuration: Configuration = serde_json::from_value(json!({
        "id": "script", "version": "1", "engine": "process",
        "build": [["sh", "-c", "echo building"]],
        "command": ["sh", "-c", script],
    }))
    .expect("configuration");
    let runtime = Runtime::builder().data_dir(dir.path()).configuration(configuration).build().await.expect("runtime");
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("script"))).await;
    assert_eq!(
        types(&events),
        [
            "run.queued",
            "build.created",
            "build.started",
            "build.phase.started",
            "console.line",
            "build.phase.completed",
            "build.completed",
            "run.started",
            "run.phase.started",
            "console.line",
            "console.line", // the forbidden run.completed, turned into a warning
            "run.phase.completed",
            "run.completed",
        ]
    );
    assert!(
        matches!(&events[10].payload, EventPayload::ConsoleLine(l) if l.level == ConsoleLevel::Warn && l.message.contains("run.completed"))
    );
    assert_eq!(completion(&events).artifacts.output_paths, ["outputs/out.txt"]);
    assert_eq!(completion(&events).execution.exit_code, Some(0));
    assert_well_formed(&run, &events);
    runtime.shutdown().await;
}

/// A host that does not register the `extract` engine (crate ade-extract) still loads `extract`
/// configurations, and their runs fail cleanly, naming the crate that registers it.
#[tokio::test]
async fn without_the_extract_engine_an_extract_run_fails_naming_its_crate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let configuration: Configuration = serde_json::from_value(json!({
        "id": "members", "version": "1", "engine": "extract",
        "fields": [{ "name": "email", "type": "email" }],
    }))
    .expect("configuration");
    let runtime = Runtime::builder().data_dir(dir.path()).configuration(configuration).build().await.expect("runtime");
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("members"))).await;
    assert_eq!(run.status, RunStatus::Failed);
    let failure = completion(&events).failure.clone().expect("a failure");
    assert_eq!((failure.stage, failure.code.as_str()), (Stage::Run, "config_error"));
    assert!(failure.message.contains("ade_extract::register"), "{}", failure.message);
    assert_well_formed(&run, &events);
    runtime.shutdown().await;
}

/// Emits five validation issues and one 100-byte console line, then succeeds.
#[derive(Debug)]
struct NoisyEngine;

#[async_trait]
impl Engine for NoisyEngine {
    fn version(&self) -> &str {
        "noisy-1"
    }

    async fn run(&self, _context: EngineContext, sink: EventSink) -> EngineOutcome {
        for row in 1..=5 {
            let issue = crate::event::ValidationIssue {
                table_id: "tbl_0_0_0".to_owned(),
                severity: crate::event::Severity::Error,
                code: "invalid_email".to_owned(),
                field: Some("email".to_owned()),
                row: Some(row),
                column: None,
                value: None,
                message: format!("row {row}: not an email"),
                extra: crate::run::Extra::new(),
            };
            if let Err(e) = sink.issue(issue).await {
                return EngineOutcome::failed(EngineFailure::new("engine_error", e.to_string()));
            }
        }
        let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, "x".repeat(100)).await;
        EngineOutcome::succeeded(Vec::new())
    }
}

/// A runtime running `noisy` configurations with `limits`.
async fn noisy_runtime(dir: &std::path::Path, limits: SinkLimits) -> Runtime {
    Runtime::builder()
        .data_dir(dir)
        .sink_limits(limits)
        .engine("noisy", Arc::new(NoisyEngine), None)
        .configuration(
            serde_json::from_value(json!({ "id": "noisy", "version": "1", "engine": "noisy" })).expect("cfg"),
        )
        .build()
        .await
        .expect("runtime")
}

fn console_messages(events: &[Envelope]) -> Vec<(ConsoleLevel, &str)> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::ConsoleLine(line) => Some((line.level, line.message.as_str())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_validation_issue_cap_is_a_setting_and_the_rest_are_counted_in_one_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = noisy_runtime(dir.path(), SinkLimits::default().with_max_published_issues(3)).await;
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("noisy"))).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let rows: Vec<Option<u64>> = events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::RunValidationIssue(issue) => Some(issue.row),
            _ => None,
        })
        .collect();
    assert_eq!(rows, [Some(1), Some(2), Some(3)], "the first three are published");
    let warnings: Vec<&str> =
        console_messages(&events).into_iter().filter(|(l, _)| *l == ConsoleLevel::Warn).map(|(_, m)| m).collect();
    assert_eq!(warnings, ["2 more validation issues were counted but not published (limit 3)"]);
    assert_well_formed(&run, &events);
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_console_message_limit_is_a_setting_and_longer_lines_are_cut_and_marked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = SinkLimits::default().with_max_console_message(MIN_CONSOLE_MESSAGE);
    let runtime = noisy_runtime(dir.path(), limits).await;
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("noisy"))).await;
    let cut = format!("{}…[truncated {} bytes]", "x".repeat(MIN_CONSOLE_MESSAGE), 100 - MIN_CONSOLE_MESSAGE);
    assert_eq!(console_messages(&events), [(ConsoleLevel::Info, cut.as_str())]);
    let published = types(&events).iter().filter(|t| **t == "run.validation.issue").count();
    assert_eq!(published, 5, "the issue cap is still the default");
    assert_well_formed(&run, &events);
    runtime.shutdown().await;
}

/// Settings that say two different things about where runs and events are kept are refused,
/// before any store is opened, rather than one of them silently winning.
#[tokio::test]
async fn contradicting_store_settings_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = || {
        crate::Backend::new(
            Arc::new(crate::store::MemoryEventStore::new()),
            Arc::new(crate::store::MemoryRunStore::new()),
        )
    };
    let refused = Runtime::builder().data_dir(dir.path()).backend(backend()).in_memory().build().await;
    assert!(matches!(&refused, Err(Error::Settings(reason)) if reason.contains("in_memory")), "{refused:?}");
    let store: Arc<dyn crate::store::EventStore> = Arc::new(crate::store::MemoryEventStore::new());
    let refused = Runtime::builder().data_dir(dir.path()).backend(backend()).event_store(store).build().await;
    assert!(matches!(&refused, Err(Error::Settings(reason)) if reason.contains("event_store")), "{refused:?}");
    // Alone, a backend of one runtime's stores is used as given (the data directory is not locked).
    let runtime = Runtime::builder().data_dir(dir.path()).backend(backend()).build().await.expect("runtime");
    let second = Runtime::builder().data_dir(dir.path()).backend(backend()).build().await.expect("no lock");
    second.shutdown().await;
    runtime.shutdown().await;
}

/// A relative data directory is made absolute when the runtime is built: a `process` engine runs
/// in its configuration's directory, where the relative path would name another place, so its
/// inputs would not be found and its outputs would land beside the configuration.
#[tokio::test]
async fn a_relative_data_directory_still_reaches_engines_that_run_elsewhere() {
    let config_dir = tempfile::tempdir().expect("configuration dir");
    let script = r#"set -eu
path=$(printf '%s' "$ADE_INPUT_PATHS_JSON" | tr -d '[]"')
mkdir -p "$ADE_OUTPUT_DIR"
cp "$path" "$ADE_OUTPUT_DIR/copy.txt"
echo '{"type":"engine.completed","payload":{"output_paths":["outputs/copy.txt"]}}'"#;
    std::fs::write(config_dir.path().join("copy.sh"), script).expect("script");
    let configuration = json!({ "id": "copy", "version": "1", "engine": "process", "command": ["sh", "copy.sh"] });
    std::fs::write(config_dir.path().join("copy.json"), configuration.to_string()).expect("configuration");
    // A directory under the test's working directory, named relative to it.
    let data = tempfile::tempdir_in(".").expect("data dir");
    let relative = PathBuf::from(data.path().file_name().expect("a name"));
    assert!(relative.is_relative());
    let runtime =
        Runtime::builder().data_dir(&relative).configurations_dir(config_dir.path()).build().await.expect("runtime");
    assert!(runtime.data_dir().is_absolute(), "{}", runtime.data_dir().display());
    let document = runtime
        .upload_document(&WorkspaceId::default(), "in.txt", None, &b"hello\n"[..], 1 << 20)
        .await
        .expect("upload");
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("copy")).document(document.id)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", completion(&events).failure);
    let copy = runtime.run_dir(&run.workspace_id, run.id).join("outputs/copy.txt");
    assert_eq!(std::fs::read(&copy).expect("the output, in the data directory"), b"hello\n");
    assert!(!config_dir.path().join(&relative).exists(), "nothing is written beside the configuration");
    runtime.shutdown().await;
}
