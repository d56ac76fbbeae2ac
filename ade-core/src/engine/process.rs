//! The `process` engine and builder (SPEC §8.2): any program that speaks NDJSON on stdout.
//!
//! Both run commands through one function, [`run_subprocess`]: spawn with the `ADE_*`
//! environment, read stdout and stderr line by line (bounded memory, lossy UTF-8), turn stdout
//! JSON lines with a string `type` into events and every other line into `console.line`, forward
//! cancellation as SIGTERM then SIGKILL, and always reap the child.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{
    BuildArtifact, BuildContext, BuildOutcome, Builder, Engine, EngineContext, EngineFailure, EngineOutcome, EventSink,
    SinkError,
};
use crate::config::{Configuration, EngineSpec, ProcessSpec};
use crate::event::{ConsoleLevel, ConsoleStream, EventPayload, PhaseStatus};
use crate::run::RunMode;

/// Longest line read from an engine; the rest of a longer line is discarded (SPEC §8.2).
const MAX_LINE: usize = 1024 * 1024;
/// How long the output of an exited child is still read: a background process that inherited the
/// pipes must not hold the engine forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The default time between SIGTERM and SIGKILL.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Counter `{reason}`: engine events that were not published.
const REJECTED_EVENTS_TOTAL: &str = "ade_engine_rejected_events_total";
/// The type an engine uses to report its outputs; consumed, never published.
const ENGINE_COMPLETED: &str = "engine.completed";
/// Catalog types only the orchestrator emits (SPEC §8.1), refused before their payload is checked
/// so the warning says why; the sink refuses them too.
const ORCHESTRATOR_ONLY: [&str; 6] =
    ["run.queued", "run.started", "build.created", "build.started", "build.completed", "run.completed"];

/// Runs a configuration's `command` as a subprocess.
#[derive(Debug, Clone)]
pub struct ProcessEngine {
    /// How long a cancelled engine has between SIGTERM and SIGKILL (default 5 s).
    pub grace: Duration,
}

impl Default for ProcessEngine {
    fn default() -> Self {
        Self { grace: DEFAULT_GRACE }
    }
}

impl ProcessEngine {
    /// Sets the time between SIGTERM and SIGKILL when a run is cancelled.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// Runs a configuration's `build` commands as subprocesses.
#[derive(Debug, Clone)]
pub struct ProcessBuilder {
    /// How long a cancelled build command has between SIGTERM and SIGKILL (default 5 s).
    pub grace: Duration,
}

impl Default for ProcessBuilder {
    fn default() -> Self {
        Self { grace: DEFAULT_GRACE }
    }
}

impl ProcessBuilder {
    /// Sets the time between SIGTERM and SIGKILL when a build is cancelled.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// The `process` settings of a configuration, or why it has none.
fn process_spec(configuration: &Configuration) -> Result<&ProcessSpec, EngineFailure> {
    match &configuration.engine {
        EngineSpec::Process(spec) => Ok(spec),
        other => Err(EngineFailure::new(
            "config_error",
            format!(
                "configuration {:?} uses engine {:?}, not \"process\"",
                configuration.id.as_str(),
                other.engine_name()
            ),
        )),
    }
}

#[async_trait]
impl Engine for ProcessEngine {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome {
        let spec = match process_spec(&context.configuration) {
            Ok(spec) => spec,
            Err(failure) => return EngineOutcome::failed(failure),
        };
        if spec.command.is_empty() {
            return EngineOutcome::failed(EngineFailure::new(
                "config_error",
                "`command` is empty: it must name a program",
            ));
        }
        if let Err(e) = tokio::fs::create_dir_all(&context.output_dir).await {
            return EngineOutcome::failed(EngineFailure::new(
                "engine_error",
                format!("cannot create the output directory {}: {e}", context.output_dir.display()),
            ));
        }
        let env = match engine_env(&context, spec) {
            Ok(env) => env,
            Err(message) => return EngineOutcome::failed(EngineFailure::new("engine_error", message)),
        };
        let cwd = spec.source_dir.as_deref().unwrap_or(&context.run_dir);
        let invocation = Invocation { argv: &spec.command, cwd, env };
        let finished = match run_subprocess(invocation, &sink, &context.cancel, self.grace).await {
            Ok(finished) => finished,
            Err(message) => return EngineOutcome::failed(EngineFailure::new("engine_error", message)),
        };
        let (failure, exit_code) = finished.failure("engine", "engine_exit_nonzero", self.grace);
        match failure {
            None => EngineOutcome { failure: None, output_paths: finished.output_paths.unwrap_or_default(), exit_code },
            Some(failure) => EngineOutcome { failure: Some(failure), output_paths: Vec::new(), exit_code },
        }
    }
}

/// `spec.env` plus the `ADE_*` variables of SPEC §8.2 (later entries win).
fn engine_env(context: &EngineContext, spec: &ProcessSpec) -> Result<Vec<(String, String)>, String> {
    let options = serde_json::to_string(&context.options).map_err(|e| format!("cannot encode the run options: {e}"))?;
    let inputs: Vec<String> = context.inputs.iter().map(|input| input.path.to_string_lossy().into_owned()).collect();
    let inputs = serde_json::to_string(&inputs).map_err(|e| format!("cannot encode the input paths: {e}"))?;
    let mode = match context.mode {
        RunMode::Execute => "execute",
        RunMode::ValidateOnly => "validate_only",
        RunMode::DryRun => "dry_run",
    };
    let mut env: Vec<(String, String)> = spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.extend([
        ("ADE_RUN_ID".to_owned(), context.run_id.to_string()),
        ("ADE_BUILD_ID".to_owned(), context.build_id.map(|id| id.to_string()).unwrap_or_default()),
        ("ADE_WORKSPACE_ID".to_owned(), context.workspace_id.to_string()),
        ("ADE_CONFIGURATION_ID".to_owned(), context.configuration_id.to_string()),
        ("ADE_MODE".to_owned(), mode.to_owned()),
        ("ADE_RUN_OPTIONS_JSON".to_owned(), options),
        ("ADE_INPUT_PATHS_JSON".to_owned(), inputs),
        ("ADE_OUTPUT_DIR".to_owned(), context.output_dir.to_string_lossy().into_owned()),
    ]);
    Ok(env)
}

#[async_trait]
impl Builder for ProcessBuilder {
    fn needs_build(&self, configuration: &Configuration) -> bool {
        matches!(&configuration.engine, EngineSpec::Process(spec) if !spec.build.is_empty())
    }

    async fn build(&self, context: BuildContext, mut sink: EventSink) -> BuildOutcome {
        let failed = |code: &str, message: String, exit_code: Option<i32>| BuildOutcome {
            result: Err(EngineFailure::new(code, message)),
            exit_code,
            summary: None,
        };
        let spec = match process_spec(&context.configuration) {
            Ok(spec) => spec,
            Err(failure) => return BuildOutcome { result: Err(failure), exit_code: None, summary: None },
        };
        if let Some(n) = spec.build.iter().position(Vec::is_empty) {
            let n = n + 1;
            return failed("config_error", format!("build command {n} is empty: it must name a program"), None);
        }
        if let Err(e) = tokio::fs::create_dir_all(&context.build_dir).await {
            let message = format!("cannot create the build directory {}: {e}", context.build_dir.display());
            return failed("engine_error", message, None);
        }
        let mut env: Vec<(String, String)> = spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.extend([
            ("ADE_RUN_ID".to_owned(), context.run_id.to_string()),
            ("ADE_BUILD_ID".to_owned(), context.build_id.to_string()),
            ("ADE_CONFIGURATION_ID".to_owned(), context.configuration.id.to_string()),
            ("ADE_BUILD_DIR".to_owned(), context.build_dir.to_string_lossy().into_owned()),
        ]);
        let cwd = spec.source_dir.as_deref().unwrap_or(&context.build_dir);
        let mut exit_code = None;
        for (i, argv) in spec.build.iter().enumerate() {
            let n = i + 1;
            let who = format!("build command {n} (`{}`)", argv.join(" "));
            let phase = format!("command_{n}");
            if context.cancel.is_cancelled() {
                return failed("cancelled", format!("cancelled before the {who} started"), exit_code);
            }
            if let Err(e) = sink.phase_started(&phase, Some(&argv.join(" "))).await {
                return failed("engine_error", format!("the run's event log refused a build event: {e}"), exit_code);
            }
            let started = Instant::now();
            let invocation = Invocation { argv, cwd, env: env.clone() };
            let outcome = run_subprocess(invocation, &sink, &context.cancel, self.grace).await;
            let (failure, code) = match outcome {
                Ok(finished) => finished.failure(&who, "build_failed", self.grace),
                Err(message) => (Some(EngineFailure::new("build_failed", format!("{who}: {message}"))), None),
            };
            exit_code = code;
            let status = if failure.is_some() { PhaseStatus::Failed } else { PhaseStatus::Succeeded };
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let completed = sink.phase_completed(&phase, status, duration_ms, None).await;
            if let Some(failure) = failure {
                return BuildOutcome { result: Err(failure), exit_code, summary: Some(format!("{who} failed")) };
            }
            if let Err(e) = completed {
                return failed("engine_error", format!("the run's event log refused a build event: {e}"), exit_code);
            }
        }
        let count = spec.build.len();
        let summary = match count {
            1 => "1 build command succeeded".to_owned(),
            n => format!("{n} build commands succeeded"),
        };
        BuildOutcome {
            result: Ok(BuildArtifact {
                build_id: context.build_id,
                fingerprint: context.fingerprint.clone(),
                dir: context.build_dir.clone(),
                data: serde_json::json!({}),
            }),
            exit_code,
            summary: Some(summary),
        }
    }
}

/// One command to run: a non-empty argv, its working directory and its extra environment.
struct Invocation<'a> {
    argv: &'a [String],
    cwd: &'a Path,
    env: Vec<(String, String)>,
}

/// How a child ended.
#[derive(Debug)]
enum Ending {
    /// It exited (or was killed) on its own.
    Exited(ExitStatus),
    /// The token fired: it got SIGTERM (and SIGKILL when `killed`), or was never started.
    Cancelled { status: Option<ExitStatus>, killed: bool },
}

/// What [`run_subprocess`] saw.
#[derive(Debug)]
struct Finished {
    ending: Ending,
    /// The last `engine.completed` report.
    output_paths: Option<Vec<String>>,
    /// Why the run's log stopped taking events, if it did.
    log_error: Option<String>,
}

impl Finished {
    /// The failure (None on success) and the exit code; `who` names the command in messages,
    /// `nonzero` is the code of a failed exit.
    fn failure(&self, who: &str, nonzero: &str, grace: Duration) -> (Option<EngineFailure>, Option<i32>) {
        match &self.ending {
            Ending::Cancelled { status, killed } => {
                let message = match (status, killed) {
                    (None, _) => format!("cancelled before the {who} started"),
                    (Some(_), false) => format!("cancelled: the {who} was stopped with SIGTERM"),
                    (Some(_), true) => {
                        format!(
                            "cancelled: the {who} did not exit within {grace:?} of SIGTERM and was killed with SIGKILL"
                        )
                    }
                };
                (Some(EngineFailure::new("cancelled", message)), status.and_then(|s| s.code()))
            }
            Ending::Exited(status) => {
                let exit_code = status.code();
                if let Some(e) = &self.log_error {
                    let message = format!("the run's event log refused an event of the {who}: {e}");
                    return (Some(EngineFailure::new("engine_error", message)), exit_code);
                }
                let message = match (status.code(), status.signal()) {
                    (Some(0), _) => return (None, exit_code),
                    (Some(code), _) => format!("{who} exited with code {code}"),
                    (None, Some(signal)) => format!("{who} was killed by signal {}", signal_name(signal)),
                    (None, None) => format!("{who} ended abnormally ({status})"),
                };
                (Some(EngineFailure::new(nonzero, message)), exit_code)
            }
        }
    }
}

/// `SIGKILL` for 9; the number when nix does not know it.
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| signal.to_string())
}

/// Runs one command to its end: spawns it, pumps its output into `sink`, forwards cancellation
/// (SIGTERM, then SIGKILL after `grace`), reaps it, and gives its readers [`DRAIN_TIMEOUT`] after
/// it exits.
///
/// # Errors
/// A message when the program cannot be started or waited for.
async fn run_subprocess(
    invocation: Invocation<'_>,
    sink: &EventSink,
    cancel: &CancellationToken,
    grace: Duration,
) -> Result<Finished, String> {
    let Invocation { argv, cwd, env } = invocation;
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".to_owned());
    };
    if cancel.is_cancelled() {
        let ending = Ending::Cancelled { status: None, killed: false };
        return Ok(Finished { ending, output_paths: None, log_error: None });
    }
    // A relative path with a slash (`./engine.sh`) is relative to the working directory.
    let resolved = match Path::new(program) {
        path if path.is_relative() && program.contains('/') => cwd.join(path),
        _ => PathBuf::from(program),
    };
    let mut command = Command::new(&resolved);
    command
        .args(args)
        .current_dir(cwd)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a cancel also stops what a wrapper script started.
        .process_group(0)
        .kill_on_drop(true);
    // Killed by the kernel if ade dies (Linux): no engine outlives its server.
    let mut child = super::spawn::spawn(command)
        .await
        .map_err(|e| format!("cannot start {program:?} (working directory {}): {e}", cwd.display()))?;

    let mut out = PumpState::default();
    let mut err = PumpState::default();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut pumps = Box::pin(async {
        let out_pump = async {
            if let Some(stdout) = stdout {
                pump(stdout, ConsoleStream::Stdout, sink, &mut out).await;
            }
        };
        let err_pump = async {
            if let Some(stderr) = stderr {
                pump(stderr, ConsoleStream::Stderr, sink, &mut err).await;
            }
        };
        tokio::join!(out_pump, err_pump);
    });

    let mut pumps_done = false;
    let mut terminated = false;
    let mut killed = false;
    let kill_at = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(kill_at);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = &mut pumps, if !pumps_done => pumps_done = true,
            () = cancel.cancelled(), if !terminated => {
                terminated = true;
                signal_group(child.id(), nix::sys::signal::Signal::SIGTERM);
                kill_at.as_mut().reset(tokio::time::Instant::now() + grace);
            }
            () = &mut kill_at, if terminated && !killed => {
                killed = true;
                signal_group(child.id(), nix::sys::signal::Signal::SIGKILL);
                // Fails only when the child is already gone, which `wait` is about to report.
                let _ = child.start_kill();
            }
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let _ = child.start_kill();
            return Err(format!("waiting for {program:?} failed: {e}"));
        }
    };

    let mut stalled = false;
    if !pumps_done {
        stalled = tokio::time::timeout(DRAIN_TIMEOUT, &mut pumps).await.is_err();
    }
    drop(pumps);
    let log_error = out.log_error.or(err.log_error);
    if stalled && log_error.is_none() {
        let message = format!(
            "{program:?} exited but its output stayed open (a background process still holds it); \
             stopped reading it after {DRAIN_TIMEOUT:?}"
        );
        let _ = sink.console(ConsoleLevel::Warn, ConsoleStream::Stderr, message).await;
    }
    let ending = if terminated { Ending::Cancelled { status: Some(status), killed } } else { Ending::Exited(status) };
    Ok(Finished { ending, output_paths: out.output_paths, log_error })
}

/// Signals the process group of a child that has not been reaped yet (so its pid, which is
/// also its group's id, is still its own): the engine and whatever it started.
fn signal_group(pid: Option<u32>, signal: nix::sys::signal::Signal) {
    use nix::unistd::Pid;
    if let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) {
        // Fails only when the group is already gone, which `wait` is about to report.
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), signal);
    }
}

/// What one stream's reader keeps.
#[derive(Debug, Default)]
struct PumpState {
    /// The last `engine.completed` report (stdout only).
    output_paths: Option<Vec<String>>,
    /// Set when the sink's writer failed: nothing more is forwarded, the pipe is only drained.
    log_error: Option<String>,
}

/// Why an engine event was not published: the `reason` label.
#[derive(Debug, Clone, Copy)]
enum Rejection {
    Forbidden,
    InvalidPayload,
    NotAnObject,
    TooLarge,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::InvalidPayload => "invalid_payload",
            Self::NotAnObject => "not_an_object",
            Self::TooLarge => "too_large",
        }
    }
}

/// Reads one stream to its end and forwards every line.
async fn pump<R: AsyncRead + Unpin>(reader: R, stream: ConsoleStream, sink: &EventSink, state: &mut PumpState) {
    let mut lines = LineReader::new(reader, MAX_LINE);
    let mut line = Vec::new();
    loop {
        match lines.next_line(&mut line).await {
            Ok(Some(dropped)) => {
                if state.log_error.is_none() {
                    forward_line(&line, dropped, stream, sink, state).await;
                }
            }
            Ok(None) => return,
            Err(e) => {
                if state.log_error.is_none() {
                    let name = stream_name(stream);
                    let message = format!("reading the engine's {name} failed: {e}");
                    let _ = sink.console(ConsoleLevel::Warn, stream, message).await;
                }
                return;
            }
        }
    }
}

fn stream_name(stream: ConsoleStream) -> &'static str {
    match stream {
        ConsoleStream::Stdout => "stdout",
        ConsoleStream::Stderr => "stderr",
    }
}

/// One line of output: an event (stdout JSON with a string `type`) or a console line.
async fn forward_line(bytes: &[u8], dropped: usize, stream: ConsoleStream, sink: &EventSink, state: &mut PumpState) {
    let text = String::from_utf8_lossy(bytes);
    let level = match stream {
        ConsoleStream::Stderr => ConsoleLevel::Warn,
        ConsoleStream::Stdout => ConsoleLevel::Info,
    };
    let looks_like_json = stream == ConsoleStream::Stdout && text.trim_start().starts_with('{');
    if dropped > 0 {
        let total = bytes.len() + dropped;
        if looks_like_json {
            let message = format!(
                "rejected a line of {total} bytes that looks like an event: over the {MAX_LINE}-byte line limit"
            );
            reject(sink, state, Rejection::TooLarge, message).await;
        } else {
            let message = cut_message(&text, dropped, sink.limits().max_console_message);
            let result = sink.console(level, stream, message).await;
            note(state, result);
        }
        return;
    }
    if looks_like_json
        && let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(&text)
        && let Some(Value::String(event_type)) = object.remove("type")
    {
        forward_event(event_type, object, sink, state).await;
        return;
    }
    let result = sink.console(level, stream, text.into_owned()).await;
    note(state, result);
}

/// An event line from stdout: `type` taken out, the rest of the object (`payload`, ignored envelope
/// fields) in `object`.
async fn forward_event(event_type: String, mut object: Map<String, Value>, sink: &EventSink, state: &mut PumpState) {
    if event_type.is_empty() {
        return reject(sink, state, Rejection::InvalidPayload, "rejected event \"\": the type is empty".to_owned())
            .await;
    }
    let mut payload = match object.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(payload)) => payload,
        Some(other) => {
            let message =
                format!("rejected event {event_type:?}: `payload` must be a JSON object, not {}", kind(&other));
            return reject(sink, state, Rejection::NotAnObject, message).await;
        }
    };
    if event_type == ENGINE_COMPLETED {
        match output_paths(&payload) {
            Ok(paths) => state.output_paths = Some(paths),
            Err(why) => {
                let message = format!("rejected event {ENGINE_COMPLETED:?}: {why}");
                reject(sink, state, Rejection::InvalidPayload, message).await;
            }
        }
        return;
    }
    if ORCHESTRATOR_ONLY.contains(&event_type.as_str()) {
        let message = format!("rejected event {event_type:?}: emitted by ade itself, not by engines");
        return reject(sink, state, Rejection::Forbidden, message).await;
    }
    // The engine's own clock, when it wrote one.
    if event_type == "console.line"
        && !payload.contains_key("engine_timestamp")
        && let Some(Value::String(at)) = object.get("created_at").or_else(|| object.get("timestamp"))
    {
        payload.insert("engine_timestamp".to_owned(), Value::String(at.clone()));
    }
    let payload = match EventPayload::from_parts(&event_type, Value::Object(payload)) {
        Ok(payload) => payload,
        Err(e) => {
            let message = format!("rejected event {event_type:?}: {e}");
            return reject(sink, state, Rejection::InvalidPayload, message).await;
        }
    };
    match sink.emit(payload).await {
        Ok(_) => {}
        Err(SinkError::Forbidden(_)) => {
            let message = format!("rejected event {event_type:?}: emitted by ade itself, not by engines");
            reject(sink, state, Rejection::Forbidden, message).await;
        }
        Err(SinkError::Writer(crate::Error::EventTooLarge { size, limit })) => {
            let message = format!("rejected event {event_type:?}: {size} bytes, over the {limit}-byte event limit");
            reject(sink, state, Rejection::TooLarge, message).await;
        }
        Err(e) => state.log_error = Some(e.to_string()),
    }
}

/// `engine.completed`'s `output_paths`: relative paths without `..`; absent means none.
fn output_paths(payload: &Map<String, Value>) -> Result<Vec<String>, String> {
    let Some(value) = payload.get("output_paths") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(format!("`output_paths` must be an array of strings, not {}", kind(value)));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(path) if is_relative_inside(path) => Ok(path.clone()),
            Value::String(path) => {
                Err(format!("output path {path:?} must be relative to the run's directory, without `..`"))
            }
            other => Err(format!("`output_paths` must be an array of strings, not of {}", kind(other))),
        })
        .collect()
}

fn is_relative_inside(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Counts a rejected event and says why in a warning on stdout (where the event came from).
async fn reject(sink: &EventSink, state: &mut PumpState, reason: Rejection, message: String) {
    metrics::counter!(REJECTED_EVENTS_TOTAL, "reason" => reason.label()).increment(1);
    let result = sink.console(ConsoleLevel::Warn, ConsoleStream::Stdout, message).await;
    note(state, result);
}

/// Remembers a writer failure: from then on the stream is drained, not forwarded.
fn note(state: &mut PumpState, result: Result<u64, SinkError>) {
    if let Err(e) = result {
        state.log_error.get_or_insert_with(|| e.to_string());
    }
}

/// A console message for a line that was cut: at most `max` bytes (the sink's console limit, so
/// the sink does not cut it again), marked like the sink marks its own cuts, counting every byte
/// that was dropped.
fn cut_message(text: &str, dropped: usize, max: usize) -> String {
    let worst = format!("…[truncated {} bytes]", text.len() + dropped);
    let mut keep = max.saturating_sub(worst.len()).min(text.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let (kept, cut) = text.split_at(keep);
    format!("{kept}…[truncated {} bytes]", cut.len() + dropped)
}

/// Reads lines of at most `max` bytes; the rest of a longer line is read and discarded.
#[derive(Debug)]
struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(reader: R, max: usize) -> Self {
        Self { inner: BufReader::new(reader), max }
    }

    /// Reads the next line into `line` (without `\n` or a trailing `\r`); returns how many bytes
    /// of it were discarded, or `None` at the end of the stream. A line cut at `max` ends on a
    /// UTF-8 character boundary.
    async fn next_line(&mut self, line: &mut Vec<u8>) -> io::Result<Option<usize>> {
        line.clear();
        let mut dropped = 0usize;
        let mut read_any = false;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if !read_any {
                    return Ok(None);
                }
                break;
            }
            read_any = true;
            let (content, consumed, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            let take = content.len().min(self.max.saturating_sub(line.len()));
            line.extend_from_slice(&content[..take]);
            dropped += content.len() - take;
            self.inner.consume(consumed);
            if complete {
                break;
            }
        }
        if dropped == 0 {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        } else {
            dropped += trim_partial_char(line);
        }
        Ok(Some(dropped))
    }
}

/// Removes an incomplete UTF-8 sequence at the end of `bytes`; returns how many bytes went.
fn trim_partial_char(bytes: &mut Vec<u8>) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the lead is further back
        }
        let needed = match byte {
            b if b & 0x80 == 0 => 1,
            b if b & 0xE0 == 0xC0 => 2,
            b if b & 0xF0 == 0xE0 => 3,
            b if b & 0xF8 == 0xF0 => 4,
            _ => 1, // not UTF-8 at all: lossy conversion deals with it
        };
        if needed > back {
            bytes.truncate(len - back);
            return back;
        }
        return 0;
    }
    0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use futures::{StreamExt, TryStreamExt};
    use serde_json::json;

    use super::*;
    use crate::dispatch::{After, DispatchOptions, Dispatcher, RunContext, RunWriter};
    use crate::engine::{InputDocument, MAX_CONSOLE_MESSAGE, MIN_CONSOLE_MESSAGE};
    use crate::event::{BuildId, ConfigurationId, ConsoleScope, DocumentId, EventSource, TableSummary};
    use crate::run::RunOptions;
    use crate::store::{MemoryEventStore, RunKey};
    use crate::testing::{completed, console, run_key};

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
            let context = RunContext::new(
                key.workspace_id.clone(),
                ConfigurationId::new("members").expect("valid id"),
                key.run_id,
            );
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
                (
                    "warn".to_owned(),
                    r#"rejected event "x.y": `payload` must be a JSON object, not an array"#.to_owned()
                ),
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
        let warn =
            |t: &str| ("warn".to_owned(), format!("rejected event {t:?}: emitted by ade itself, not by engines"));
        assert_eq!(
            console_lines(&events, "stdout"),
            [warn("run.completed"), warn("run.started"), warn("build.completed")]
        );
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
        context.configuration = Arc::new(configuration(EngineSpec::Custom {
            engine: "other".to_owned(),
            settings: crate::run::Extra::new(),
        }));
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
                if serde_json::to_value(event.envelope().expect("typed")).expect("json")["payload"]["message"]
                    == "ready"
                {
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

    #[tokio::test]
    async fn the_line_reader_cuts_long_lines_on_a_character_boundary() {
        let input: &[u8] = b"ab\xc3\xa9cd\nshort\r\n\nlast";
        let mut reader = LineReader::new(input, 3);
        let mut line = Vec::new();
        // "ab" + the first byte of "é" fits in 3 bytes; the partial character goes too.
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(4));
        assert_eq!(line, b"ab");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(3));
        assert_eq!(line, b"sho");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(0));
        assert_eq!(line, b"");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(1));
        assert_eq!(line, b"las");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), None);
        let mut reader = LineReader::new(&b"x\r\n"[..], 10);
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(0));
        assert_eq!(line, b"x");
    }

    #[test]
    fn cut_messages_fit_the_console_limit_and_count_everything_dropped() {
        let text = "é".repeat(MAX_CONSOLE_MESSAGE);
        let message = cut_message(&text, 1000, MAX_CONSOLE_MESSAGE);
        assert!(message.len() <= MAX_CONSOLE_MESSAGE);
        let kept = message.find('…').expect("marked");
        assert_eq!(message[kept..], format!("…[truncated {} bytes]", text.len() - kept + 1000));
        // The smallest limit still holds the marker and some text.
        let message = cut_message(&"z".repeat(100), 5, MIN_CONSOLE_MESSAGE);
        assert!(message.len() <= MIN_CONSOLE_MESSAGE, "{message}");
        let kept = message.find('…').expect("marked");
        assert!(kept > 0, "{message}");
        assert_eq!(message[kept..], format!("…[truncated {} bytes]", 105 - kept));
    }

    #[test]
    fn the_orchestrator_only_list_matches_the_catalog() {
        for event_type in ORCHESTRATOR_ONLY {
            assert!(EventPayload::CATALOG_TYPES.contains(&event_type), "{event_type}");
        }
        let run = run_key("acme");
        assert!(completed(&run, 1).is_orchestrator_only());
        assert!(!console("x").is_orchestrator_only());
        let count = EventPayload::CATALOG_TYPES.len();
        let engine_types = ["build.phase.started", "build.phase.completed", "console.line", "run.phase.started"];
        let more =
            ["run.phase.completed", "run.table.summary", "run.validation.issue", "run.validation.summary", "run.error"];
        assert_eq!(count, ORCHESTRATOR_ONLY.len() + engine_types.len() + more.len());
        for t in engine_types.iter().chain(&more) {
            assert!(EventPayload::CATALOG_TYPES.contains(t) && !ORCHESTRATOR_ONLY.contains(t), "{t}");
        }
    }
}
