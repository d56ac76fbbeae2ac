//! The `process` engine and builder end to end, with real `sh` subprocesses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::dispatch::{After, DispatchOptions, Dispatcher, RunContext, RunWriter};
use crate::engine::{InputDocument, MAX_CONSOLE_MESSAGE};
use crate::event::{BuildId, ConfigurationId, ConsoleScope, DocumentId, EventSource, TableSummary};
use crate::run::{RunMode, RunOptions};
use crate::store::{MemoryEventStore, RunKey};
use crate::testing::{completed, run_key};

/// A hang guard: every engine run in these tests ends well before it.
const GUARD: Duration = Duration::from_secs(30);

/// A run with an in-memory log and a directory.
struct Harness {
    dispatcher: Dispatcher,
    writer: Arc<RunWriter>,
    key: RunKey,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dispatcher = Dispatcher::new(Arc::new(MemoryEventStore::new()), DispatchOptions::default());
        let key = run_key("acme");
        let context =
            RunContext::new(key.workspace_id.clone(), ConfigurationId::new("members").expect("valid id"), key.run_id);
        let writer = Arc::new(dispatcher.open_run(context).await.expect("open run"));
        let dir = tempfile::tempdir().expect("tempdir");
        Self { dispatcher, writer, key, dir }
    }

    fn sink(&self, scope: ConsoleScope) -> EventSink {
        EventSink::new(self.writer.clone(), scope)
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn context(&self, spec: ProcessSpec) -> EngineContext {
        let input = self.dir.path().join("members.csv");
        EngineContext {
            run_id: self.key.run_id,
            workspace_id: self.key.workspace_id.clone(),
            configuration_id: ConfigurationId::new("members").expect("valid id"),
            build_id: None,
            mode: RunMode::ValidateOnly,
            options: RunOptions { force_rebuild: Some(true), ..RunOptions::default() },
            inputs: vec![InputDocument { id: DocumentId::new(), filename: "members.csv".to_owned(), path: input }],
            output_dir: self.run_dir().join("outputs"),
            run_dir: self.run_dir(),
            cancel: CancellationToken::new(),
            configuration: Arc::new(configuration(EngineSpec::Process(spec))),
            build: None,
        }
    }

    fn build_context(&self, spec: ProcessSpec) -> BuildContext {
        BuildContext {
            run_id: self.key.run_id,
            build_id: BuildId::new(),
            configuration: Arc::new(configuration(EngineSpec::Process(spec))),
            fingerprint: "sha256:abc".to_owned(),
            build_dir: self.dir.path().join("build"),
            cancel: CancellationToken::new(),
        }
    }

    /// Runs the engine with a hang guard.
    async fn run(&self, engine: &ProcessEngine, context: EngineContext) -> EngineOutcome {
        tokio::time::timeout(GUARD, engine.run(context, self.sink(ConsoleScope::Run)))
            .await
            .expect("the engine must not hang")
    }

    /// Every event of the run, as `(type, payload)`; all but `run.completed` came from the engine.
    async fn events(&self) -> Vec<(String, Value)> {
        self.writer.flush().await.expect("flush");
        let stream = self.dispatcher.store().read_after(&self.key, 0).await.expect("read");
        let stored: Vec<Arc<crate::event::StoredEvent>> = stream.try_collect().await.expect("events");
        stored
            .iter()
            .map(|event| {
                let envelope = event.envelope().expect("typed envelope");
                if !envelope.is_terminal() {
                    assert_eq!(envelope.source, EventSource::Engine);
                }
                let json = serde_json::to_value(envelope).expect("json");
                (envelope.event_type().to_owned(), json["payload"].clone())
            })
            .collect()
    }
}

fn configuration(engine: EngineSpec) -> Configuration {
    Configuration {
        id: ConfigurationId::new("members").expect("valid id"),
        version: "1".to_owned(),
        description: None,
        timeout_s: None,
        engine,
    }
}

fn spec(command: &[&str]) -> ProcessSpec {
    ProcessSpec {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        build: Vec::new(),
        env: BTreeMap::new(),
        source_dir: None,
    }
}

fn sh(script: &str) -> ProcessSpec {
    spec(&["sh", "-c", script])
}

/// Console lines of `stream`, as `(level, message)`.
fn console_lines(events: &[(String, Value)], stream: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|(t, p)| t == "console.line" && p["stream"] == stream)
        .map(|(_, p)| {
            let level = p["level"].as_str().expect("level").to_owned();
            (level, p["message"].as_str().expect("message").to_owned())
        })
        .collect()
}

fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

fn failure_code(outcome: &EngineOutcome) -> Option<&str> {
    outcome.failure.as_ref().map(|f| f.code.as_str())
}

#[tokio::test]
async fn a_well_behaved_engine_emits_events_console_lines_and_reports_outputs() {
    let h = Harness::new().await;
    let table = serde_json::to_string(&json!({
        "type": "run.table.summary",
        "sequence": 99,
        "payload": TableSummary { table_id: "tbl_0_0_0".to_owned(), row_count: 3, ..TableSummary::default() },
    }))
    .expect("json");
    let script = format!(
        r#"
echo "run=$ADE_RUN_ID build=[$ADE_BUILD_ID] workspace=$ADE_WORKSPACE_ID configuration=$ADE_CONFIGURATION_ID mode=$ADE_MODE"
echo "options=$ADE_RUN_OPTIONS_JSON"
echo "inputs=$ADE_INPUT_PATHS_JSON"
echo "output_dir=$ADE_OUTPUT_DIR exists=$(test -d "$ADE_OUTPUT_DIR" && echo yes)"
echo "greeting=$GREETING cwd=$(pwd -P)"
echo '{{"type":"run.phase.started","payload":{{"phase":"mapping"}}}}'
cat <<'JSON'
{table}
JSON
echo '{{"type":"x.custom","payload":{{"answer":42}}}}'
echo '{{"type":"console.line","created_at":"2026-01-02T03:04:05Z","payload":{{"scope":"run","stream":"stdout","level":"debug","message":"own line"}}}}'
echo '{{"type":"run.phase.completed","payload":{{"phase":"mapping","status":"succeeded","duration_ms":3}}}}'
echo 'plain text'
echo 'to stderr' >&2
echo '{{"type":"engine.completed","payload":{{"output_paths":["outputs/normalized.csv"]}}}}'
"#
    );
    let mut spec = sh(&script);
    spec.env.insert("GREETING".to_owned(), "hello".to_owned());
    let context = h.context(spec);
    let (run_dir, output_dir, input) =
        (h.run_dir(), context.output_dir.clone(), context.inputs[0].path.to_string_lossy().into_owned());
    let outcome = h.run(&ProcessEngine::default(), context).await;
    assert_eq!(
        outcome,
        EngineOutcome { exit_code: Some(0), ..EngineOutcome::succeeded(vec!["outputs/normalized.csv".to_owned()]) }
    );

    let events = h.events().await;
    let stdout: Vec<&(String, Value)> =
        events.iter().filter(|(t, p)| !(t == "console.line" && p["stream"] == "stderr")).collect();
    let stdout_types: Vec<&str> = stdout.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        stdout_types,
        [
            "console.line",
            "console.line",
            "console.line",
            "console.line",
            "console.line",
            "run.phase.started",
            "run.table.summary",
            "x.custom",
            "console.line",
            "run.phase.completed",
            "console.line",
        ],
        "engine.completed is consumed, never published"
    );
    let message = |i: usize| stdout[i].1["message"].as_str().expect("message").to_owned();
    assert_eq!(
        message(0),
        format!("run={} build=[] workspace=acme configuration=members mode=validate_only", h.key.run_id)
    );
    assert_eq!(message(1), r#"options={"force_rebuild":true}"#);
    assert_eq!(message(2), format!("inputs={}", json!([input])));
    assert_eq!(message(3), format!("output_dir={} exists=yes", output_dir.display()));
    let cwd = run_dir.canonicalize().expect("run dir");
    assert_eq!(message(4), format!("greeting=hello cwd={}", cwd.display()));
    assert_eq!(stdout[0].1["level"], "info");
    assert_eq!(stdout[0].1["scope"], "run");
    assert_eq!(stdout[5].1, json!({"phase": "mapping"}));
    assert_eq!(stdout[6].1["table_id"], "tbl_0_0_0");
    assert_eq!(stdout[6].1["row_count"], 3);
    assert_eq!(stdout[7].1, json!({"answer": 42}));
    assert_eq!(
        stdout[8].1,
        json!({"scope": "run", "stream": "stdout", "level": "debug", "message": "own line",
               "engine_timestamp": "2026-01-02T03:04:05Z"})
    );
    assert_eq!(stdout[9].1["status"], "succeeded");
    assert_eq!(message(10), "plain text");
    assert_eq!(console_lines(&events, "stderr"), [("warn".to_owned(), "to stderr".to_owned())]);
}

#[tokio::test]
async fn garbage_lines_become_console_lines() {
    let h = Harness::new().await;
    let script = r#"
echo 'not json'
echo '[1, 2]'
echo '{"no_type": 1}'
echo '{"type": 5}'
echo '{broken'
printf 'crlf\r\n'
printf '\377bad\n'
echo ''
echo '{"type":"x.y","payload":[1]}'
"#;
    let outcome = h.run(&ProcessEngine::default(), h.context(sh(script))).await;
    assert_eq!(failure_code(&outcome), None, "{outcome:?}");
    let events = h.events().await;
    assert!(types(&events).iter().all(|t| *t == "console.line"), "{events:?}");
    let info = |m: &str| ("info".to_owned(), m.to_owned());
    assert_eq!(
        console_lines(&events, "stdout"),
        [
            info("not json"),
            info("[1, 2]"),
            info(r#"{"no_type": 1}"#),
            info(r#"{"type": 5}"#),
            info("{broken"),
            info("crlf"),
            info("\u{FFFD}bad"),
            info(""),
            ("warn".to_owned(), r#"rejected event "x.y": `payload` must be a JSON object, not an array"#.to_owned()),
        ]
    );
}

#[tokio::test]
async fn invalid_payloads_are_warnings_not_events() {
    let h = Harness::new().await;
    let script = r#"
echo '{"type":"run.phase.started","payload":{"phase":5}}'
echo '{"type":"engine.completed","payload":{"output_paths":"outputs/a.csv"}}'
echo '{"type":"engine.completed","payload":{"output_paths":["/etc/passwd"]}}'
echo '{"type":"engine.completed","payload":{"output_paths":["../escape.csv"]}}'
echo '{"type":"","payload":{}}'
echo done
"#;
    let outcome = h.run(&ProcessEngine::default(), h.context(sh(script))).await;
    assert_eq!(outcome, EngineOutcome { exit_code: Some(0), ..EngineOutcome::succeeded(Vec::new()) });
    let events = h.events().await;
    assert!(types(&events).iter().all(|t| *t == "console.line"), "{events:?}");
    let lines = console_lines(&events, "stdout");
    assert_eq!(lines.len(), 6);
    assert!(lines[..5].iter().all(|(level, _)| level == "warn"), "{lines:?}");
    assert!(lines[0].1.starts_with(r#"rejected event "run.phase.started": "#), "{}", lines[0].1);
    assert!(lines[0].1.contains("expected a string"), "{}", lines[0].1);
    assert_eq!(
        lines[1].1,
        r#"rejected event "engine.completed": `output_paths` must be an array of strings, not a string"#
    );
    assert!(lines[2].1.contains(r#"output path "/etc/passwd" must be relative"#), "{}", lines[2].1);
    assert!(lines[3].1.contains(r#"output path "../escape.csv" must be relative"#), "{}", lines[3].1);
    assert_eq!(lines[4].1, r#"rejected event "": the type is empty"#);
    assert_eq!(lines[5], ("info".to_owned(), "done".to_owned()));
}

#[tokio::test]
async fn orchestrator_only_types_are_refused_with_a_warning() {
    let h = Harness::new().await;
    let script = r#"
echo '{"type":"run.completed","payload":{"status":"succeeded"}}'
echo '{"type":"run.started"}'
echo '{"type":"build.completed","payload":{}}'
"#;
    let outcome = h.run(&ProcessEngine::default(), h.context(sh(script))).await;
    assert_eq!(failure_code(&outcome), None, "{outcome:?}");
    let events = h.events().await;
    let warn = |t: &str| ("warn".to_owned(), format!("rejected event {t:?}: emitted by ade itself, not by engines"));
    assert_eq!(console_lines(&events, "stdout"), [warn("run.completed"), warn("run.started"), warn("build.completed")]);
    assert_eq!(events.len(), 3, "nothing else was published: {events:?}");
}

#[tokio::test]
async fn a_two_mib_line_is_cut_and_the_engine_goes_on() {
    let h = Harness::new().await;
    let script = r#"
head -c 2097152 /dev/zero | tr '\0' 'a'; echo
printf '{"type":"x.big","payload":{"data":"'; head -c 2097152 /dev/zero | tr '\0' 'b'; echo '"}}'
echo after
"#;
    let outcome = h.run(&ProcessEngine::default(), h.context(sh(script))).await;
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(failure_code(&outcome), None, "{outcome:?}");
    let events = h.events().await;
    assert!(types(&events).iter().all(|t| *t == "console.line"), "{events:?}");
    let lines = console_lines(&events, "stdout");
    assert_eq!(lines.len(), 3, "{:?}", types(&events));
    let (level, cut) = &lines[0];
    assert_eq!(level, "info");
    assert!(cut.len() <= MAX_CONSOLE_MESSAGE, "{}", cut.len());
    let kept = cut.find('…').expect("marked");
    assert!(cut[..kept].bytes().all(|b| b == b'a'));
    assert_eq!(cut[kept..], format!("…[truncated {} bytes]", 2 * 1024 * 1024 - kept));
    assert_eq!(lines[1].0, "warn");
    assert!(lines[1].1.starts_with("rejected a line of "), "{}", lines[1].1);
    assert!(lines[1].1.ends_with("that looks like an event: over the 1048576-byte line limit"), "{}", lines[1].1);
    assert_eq!(lines[2], ("info".to_owned(), "after".to_owned()));
}

#[tokio::test]
async fn a_last_line_without_a_newline_is_kept() {
    let h = Harness::new().await;
    let outcome = h.run(&ProcessEngine::default(), h.context(sh("printf 'first\\nlast'; printf 'err' >&2"))).await;
    assert_eq!(failure_code(&outcome), None, "{outcome:?}");
    let events = h.events().await;
    let info = |m: &str| ("info".to_owned(), m.to_owned());
    assert_eq!(console_lines(&events, "stdout"), [info("first"), info("last")]);
    assert_eq!(console_lines(&events, "stderr"), [("warn".to_owned(), "err".to_owned())]);
}

#[tokio::test]
async fn a_nonzero_exit_fails_the_run() {
    let h = Harness::new().await;
    let script =
        r#"echo before; echo '{"type":"engine.completed","payload":{"output_paths":["outputs/a.csv"]}}'; exit 3"#;
    let outcome = h.run(&ProcessEngine::default(), h.context(sh(script))).await;
    assert_eq!(
        outcome,
        EngineOutcome {
            failure: Some(EngineFailure::new("engine_exit_nonzero", "engine exited with code 3")),
            output_paths: Vec::new(),
            exit_code: Some(3),
        }
    );
    assert_eq!(console_lines(&h.events().await, "stdout"), [("info".to_owned(), "before".to_owned())]);
}

#[tokio::test]
async fn an_engine_killed_by_a_signal_fails_and_says_which() {
    let h = Harness::new().await;
    let outcome = h.run(&ProcessEngine::default(), h.context(sh("echo dying; kill -9 $$"))).await;
    assert_eq!(
        outcome,
        EngineOutcome::failed(EngineFailure::new("engine_exit_nonzero", "engine was killed by signal SIGKILL"))
    );
    assert_eq!(console_lines(&h.events().await, "stdout"), [("info".to_owned(), "dying".to_owned())]);
}

/// Starts the engine in a task, waits until it printed `ready`, cancels, and returns the outcome
/// and how long it took after the cancel.
async fn cancel_when_ready(h: &Harness, engine: ProcessEngine, script: &str) -> (EngineOutcome, Duration) {
    let mut live = h.dispatcher.subscribe(h.key.clone(), After(0)).await.expect("subscribe");
    let context = h.context(sh(script));
    let cancel = context.cancel.clone();
    let sink = h.sink(ConsoleScope::Run);
    let task = tokio::spawn(async move { engine.run(context, sink).await });
    tokio::time::timeout(GUARD, async {
        while let Some(event) = live.next().await {
            let event = event.expect("live event");
            let payload = serde_json::to_value(event.envelope().expect("typed")).expect("json");
            if payload["payload"]["message"] == "ready" {
                return;
            }
        }
        panic!("the engine never got ready");
    })
    .await
    .expect("the engine must get ready");
    let cancelled_at = Instant::now();
    cancel.cancel();
    let outcome = tokio::time::timeout(GUARD, task).await.expect("the engine must stop").expect("no panic");
    (outcome, cancelled_at.elapsed())
}

#[tokio::test]
async fn cancel_sends_sigterm_and_an_engine_that_handles_it_stops() {
    let h = Harness::new().await;
    let script = r#"
sleep 30 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid; echo got TERM; exit 0' TERM
echo ready
wait $pid
"#;
    let engine = ProcessEngine::default().with_grace(Duration::from_secs(20));
    let (outcome, took) = cancel_when_ready(&h, engine, script).await;
    assert!(took < Duration::from_secs(10), "stopped by SIGTERM, not after the grace period: {took:?}");
    assert_eq!(
        outcome,
        EngineOutcome {
            failure: Some(EngineFailure::new("cancelled", "cancelled: the engine was stopped with SIGTERM")),
            output_paths: Vec::new(),
            exit_code: Some(0),
        }
    );
    let lines = console_lines(&h.events().await, "stdout");
    assert_eq!(lines.last(), Some(&("info".to_owned(), "got TERM".to_owned())), "{lines:?}");
}

#[tokio::test]
async fn cancel_kills_an_engine_that_ignores_sigterm_after_the_grace_period() {
    let h = Harness::new().await;
    let grace = Duration::from_millis(200);
    let script = "trap '' TERM; echo ready; exec sleep 30";
    let (outcome, took) = cancel_when_ready(&h, ProcessEngine::default().with_grace(grace), script).await;
    assert!(took >= grace, "SIGKILL only after the grace period: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(
        outcome,
        EngineOutcome::failed(EngineFailure::new(
            "cancelled",
            "cancelled: the engine did not exit within 200ms of SIGTERM and was killed with SIGKILL"
        ))
    );
}

#[tokio::test]
async fn cancel_also_stops_what_the_engine_started() {
    let h = Harness::new().await;
    let pid_file = h.dir.path().join("grandchild.pid");
    // A wrapper that does not `exec`: its child must not outlive the cancel.
    let script = format!("sleep 300 & echo $! > '{}'; echo ready; wait", pid_file.display());
    let (outcome, _) = cancel_when_ready(&h, ProcessEngine::default(), &script).await;
    assert_eq!(failure_code(&outcome), Some("cancelled"));
    let pid: i32 = std::fs::read_to_string(&pid_file).expect("pid").trim().parse().expect("a pid");
    // The group got SIGTERM; the grandchild is gone (possibly a zombie of init for a moment).
    let alive =
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|stat| !stat.contains(") Z ")).unwrap_or(false);
    // Signal delivery is asynchronous: poll the condition, bounded.
    let mut polls = 0;
    while alive() && polls < 500 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        polls += 1;
    }
    assert!(!alive(), "the engine's child {pid} survived the cancel");
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_runs_nothing() {
    let h = Harness::new().await;
    let context = h.context(sh("echo should not run"));
    context.cancel.cancel();
    let outcome = h.run(&ProcessEngine::default(), context).await;
    assert_eq!(failure_code(&outcome), Some("cancelled"));
    assert_eq!(h.events().await, []);
}

#[tokio::test]
async fn a_background_process_holding_the_output_does_not_hang_the_engine() {
    let h = Harness::new().await;
    let started = Instant::now();
    let outcome = h.run(&ProcessEngine::default(), h.context(sh("sleep 5 & echo done"))).await;
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(failure_code(&outcome), None, "{outcome:?}");
    let events = h.events().await;
    assert_eq!(console_lines(&events, "stdout"), [("info".to_owned(), "done".to_owned())]);
    let stderr = console_lines(&events, "stderr");
    assert_eq!(stderr.len(), 1);
    assert!(stderr[0].1.contains("output stayed open"), "{stderr:?}");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_an_engine_error() {
    let h = Harness::new().await;
    let outcome = h.run(&ProcessEngine::default(), h.context(spec(&["/nonexistent/ade-engine", "x"]))).await;
    let failure = outcome.failure.expect("failure");
    assert_eq!(failure.code, "engine_error");
    assert!(failure.message.contains("\"/nonexistent/ade-engine\""), "{}", failure.message);
    assert!(failure.message.contains("os error 2"), "{}", failure.message);
    assert_eq!(h.events().await, []);
}

#[tokio::test]
async fn a_relative_program_runs_from_the_configuration_directory() {
    let h = Harness::new().await;
    let source = h.dir.path().join("config");
    std::fs::create_dir_all(&source).expect("mkdir");
    std::fs::write(source.join("engine.sh"), "echo \"from $(basename \"$(pwd)\")\"\n").expect("write");
    let mut spec = spec(&["sh", "./engine.sh"]);
    spec.source_dir = Some(source);
    let outcome = h.run(&ProcessEngine::default(), h.context(spec)).await;
    assert_eq!(failure_code(&outcome), None, "{outcome:?}");
    assert_eq!(console_lines(&h.events().await, "stdout"), [("info".to_owned(), "from config".to_owned())]);
}

#[tokio::test]
async fn bad_configurations_are_config_errors() {
    let h = Harness::new().await;
    let outcome = h.run(&ProcessEngine::default(), h.context(spec(&[]))).await;
    assert_eq!(failure_code(&outcome), Some("config_error"));
    let mut context = h.context(sh("true"));
    context.configuration =
        Arc::new(configuration(EngineSpec::Custom { engine: "other".to_owned(), settings: crate::run::Extra::new() }));
    let outcome = h.run(&ProcessEngine::default(), context).await;
    let failure = outcome.failure.expect("failure");
    assert_eq!(failure.code, "config_error");
    assert!(failure.message.contains("\"other\""), "{}", failure.message);
    assert_eq!(h.events().await, []);
}

#[tokio::test]
async fn a_complete_log_stops_forwarding_but_the_engine_is_drained_and_fails() {
    let h = Harness::new().await;
    h.writer.emit(EventSource::Api, completed(&h.key, 1)).await.expect("complete the run");
    // Far more than a pipe holds: the child only exits if both pipes are drained.
    let script = "i=0; while [ $i -lt 5000 ]; do echo line $i ........................................; \
                  echo err $i ........................................ >&2; i=$((i+1)); done";
    let outcome = h.run(&ProcessEngine::default(), h.context(sh(script))).await;
    let failure = outcome.failure.expect("failure");
    assert_eq!(failure.code, "engine_error");
    assert!(failure.message.contains("complete"), "{}", failure.message);
    assert_eq!(types(&h.events().await), ["run.completed"]);
}

#[tokio::test]
async fn the_builder_runs_every_command_with_phases() {
    let h = Harness::new().await;
    let mut spec = sh("true");
    spec.build = vec![
        vec!["sh".to_owned(), "-c".to_owned(), "echo one".to_owned()],
        vec!["sh".to_owned(), "-c".to_owned(), "echo \"dir=$ADE_BUILD_DIR id=$ADE_BUILD_ID\" >&2".to_owned()],
    ];
    let builder = ProcessBuilder::default();
    assert!(builder.needs_build(&configuration(EngineSpec::Process(spec.clone()))));
    assert!(!builder.needs_build(&configuration(EngineSpec::Process(sh("true")))));
    let context = h.build_context(spec);
    let (build_id, build_dir) = (context.build_id, context.build_dir.clone());
    let outcome =
        tokio::time::timeout(GUARD, builder.build(context, h.sink(ConsoleScope::Build))).await.expect("no hang");
    assert_eq!(
        outcome,
        BuildOutcome {
            result: Ok(BuildArtifact {
                build_id,
                fingerprint: "sha256:abc".to_owned(),
                dir: build_dir.clone(),
                data: json!({}),
            }),
            exit_code: Some(0),
            summary: Some("2 build commands succeeded".to_owned()),
        }
    );
    assert!(build_dir.is_dir());
    let events = h.events().await;
    assert_eq!(
        types(&events),
        [
            "build.phase.started",
            "console.line",
            "build.phase.completed",
            "build.phase.started",
            "console.line",
            "build.phase.completed"
        ]
    );
    assert_eq!(events[0].1, json!({"phase": "command_1", "message": "sh -c echo one"}));
    assert_eq!(
        events[1].1,
        json!({"scope": "build", "stream": "stdout", "level": "info", "message": "one", "phase": "command_1"})
    );
    assert_eq!(events[2].1["phase"], "command_1");
    assert_eq!(events[2].1["status"], "succeeded");
    assert_eq!(events[4].1["message"], format!("dir={} id={build_id}", build_dir.display()));
    assert_eq!((&events[4].1["stream"], &events[4].1["phase"]), (&json!("stderr"), &json!("command_2")));
    assert_eq!(events[5].1["status"], "succeeded");
}

#[tokio::test]
async fn the_builder_stops_at_the_first_failing_command() {
    let h = Harness::new().await;
    let mut spec = sh("true");
    spec.build = vec![
        vec!["true".to_owned()],
        vec!["sh".to_owned(), "-c".to_owned(), "exit 4".to_owned()],
        vec!["sh".to_owned(), "-c".to_owned(), "echo never".to_owned()],
    ];
    let outcome = tokio::time::timeout(
        GUARD,
        ProcessBuilder::default().build(h.build_context(spec), h.sink(ConsoleScope::Build)),
    )
    .await
    .expect("no hang");
    assert_eq!(
        outcome.result,
        Err(EngineFailure::new("build_failed", "build command 2 (`sh -c exit 4`) exited with code 4"))
    );
    assert_eq!(outcome.exit_code, Some(4));
    let events = h.events().await;
    assert_eq!(
        types(&events),
        ["build.phase.started", "build.phase.completed", "build.phase.started", "build.phase.completed"]
    );
    assert_eq!((&events[1].1["phase"], &events[1].1["status"]), (&json!("command_1"), &json!("succeeded")));
    assert_eq!((&events[3].1["phase"], &events[3].1["status"]), (&json!("command_2"), &json!("failed")));
}

#[tokio::test]
async fn a_cancelled_build_stops_its_command_and_fails_the_phase() {
    let h = Harness::new().await;
    let mut spec = sh("true");
    spec.build = vec![
        vec!["sh".to_owned(), "-c".to_owned(), "echo ready; exec sleep 30".to_owned()],
        vec!["sh".to_owned(), "-c".to_owned(), "echo never".to_owned()],
    ];
    let mut live = h.dispatcher.subscribe(h.key.clone(), After(0)).await.expect("subscribe");
    let context = h.build_context(spec);
    let cancel = context.cancel.clone();
    let (builder, sink) = (ProcessBuilder::default(), h.sink(ConsoleScope::Build));
    let task = tokio::spawn(async move { builder.build(context, sink).await });
    tokio::time::timeout(GUARD, async {
        while let Some(event) = live.next().await {
            let event = event.expect("live event");
            if serde_json::to_value(event.envelope().expect("typed")).expect("json")["payload"]["message"] == "ready" {
                return;
            }
        }
    })
    .await
    .expect("the build must get ready");
    cancel.cancel();
    let outcome = tokio::time::timeout(GUARD, task).await.expect("the build must stop").expect("no panic");
    assert_eq!(
        outcome.result,
        Err(EngineFailure::new(
            "cancelled",
            "cancelled: the build command 1 (`sh -c echo ready; exec sleep 30`) was stopped with SIGTERM"
        ))
    );
    let events = h.events().await;
    assert_eq!(types(&events), ["build.phase.started", "console.line", "build.phase.completed"]);
    assert_eq!(events[2].1["status"], "failed");
}
