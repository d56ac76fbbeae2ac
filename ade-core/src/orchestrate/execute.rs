//! One run, from its claim to `run.completed`: build (cached), engine, finalization.

use std::path::{Component, Path};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{ActiveRun, Runtime, StopReason};
use crate::config::Configuration;
use crate::dispatch::{RunWriter, WriteFailure, lock};
use crate::engine::{BuildArtifact, BuildContext, EngineContext, EngineOutcome, EventSink, fingerprint};
use crate::error::{Error, Result};
use crate::event::{
    Artifacts, BuildCompleted, BuildCreated, BuildEnv, BuildId, BuildReason, BuildStarted, BuildStatus, BuildingStatus,
    ConsoleLevel, ConsoleScope, ConsoleStream, ErrorInfo, EventSource, Execution, InProgressStatus, QueuedStatus,
    RunCompleted, RunError, RunId, RunQueued, RunStarted, Timestamp,
};
use crate::metrics;
use crate::run::{Extra, Failure, Run, RunMode, RunOutcome, RunStatus, Stage, failure_code};
use crate::store::{Finalization, RunKey, Transition};
use crate::summary::bounds::{MAX_FAILURE_MESSAGE_BYTES, MAX_TEXT_BYTES, bound_failure, shorten};
use crate::summary::{RunOutcomeInfo, RunSummary};

/// How a run ends, before its summary is folded.
#[derive(Debug, Clone)]
pub(super) struct Ending {
    pub(super) status: RunOutcome,
    pub(super) failure: Option<Failure>,
    pub(super) exit_code: Option<i32>,
    pub(super) output_paths: Vec<String>,
}

impl Ending {
    fn succeeded(exit_code: Option<i32>, output_paths: Vec<String>) -> Self {
        Self { status: RunOutcome::Succeeded, failure: None, exit_code, output_paths }
    }

    pub(super) fn failed(stage: Stage, code: &str, message: impl Into<String>) -> Self {
        Self {
            status: RunOutcome::Failed,
            failure: Some(Failure { stage, code: code.to_owned(), message: message.into() }),
            exit_code: None,
            output_paths: Vec::new(),
        }
    }

    fn stopped(reason: StopReason, stage: Stage, timeout_s: u64) -> Self {
        match reason {
            StopReason::Cancelled => Self {
                status: RunOutcome::Cancelled,
                failure: Some(Failure {
                    stage,
                    code: failure_code::CANCELLED.to_owned(),
                    message: "cancelled on request".to_owned(),
                }),
                exit_code: None,
                output_paths: Vec::new(),
            },
            StopReason::TimedOut => {
                Self::failed(stage, failure_code::TIMEOUT, format!("the run exceeded its timeout of {timeout_s} s"))
            }
            // Another instance has ended it already; this ending's writes will be refused.
            StopReason::LeaseLost => Self::failed(
                stage,
                failure_code::ORCHESTRATOR_LOST,
                "this instance lost the run's lease to another instance",
            ),
            StopReason::StoreError => {
                Self::failed(stage, failure_code::STORE_ERROR, "events of this run could not be persisted")
            }
        }
    }

    /// The ending of a run some of whose events were lost: `failed`, `store_error`, saying from
    /// which sequence on, whatever the engine's outcome was.
    fn lost_events(stage: Stage, failure: &WriteFailure) -> Self {
        let message = format!(
            "events from sequence {} on could not be persisted ({}); the run cannot succeed",
            failure.first_lost, failure.reason
        );
        Self::failed(stage, failure_code::STORE_ERROR, message)
    }
}

/// The writer of a claimed run: the one its creator left, or a new one; makes sure `run.queued`
/// is the log's first event.
async fn writer_for(runtime: &Runtime, run: &Run) -> Result<RunWriter> {
    let context = runtime.writer_context(run);
    let writer = loop {
        // The creator may still hold the writer, about to hand it over: wait for either.
        let handed_over = runtime.inner.pending_ready.notified();
        let released = runtime.inner.dispatcher.writer_released().notified();
        tokio::pin!(handed_over, released);
        handed_over.as_mut().enable();
        released.as_mut().enable();
        if let Some(writer) = lock(&runtime.inner.pending_writers).remove(&run.id) {
            return Ok(writer);
        }
        match runtime.inner.dispatcher.open_run(context.clone()).await {
            Err(Error::WriterBusy(_)) => tokio::select! {
                () = handed_over => {}
                () = released => {}
            },
            other => break other?,
        }
    };
    super::live::attach(runtime, run, &writer);
    if writer.next_sequence() == 1 {
        // The creating process stopped between storing the run and writing its first event.
        let queued = RunQueued { mode: run.mode, options: run.options.clone(), ..RunQueued::default() };
        writer.emit(EventSource::Api, queued).await?;
    }
    Ok(writer)
}

/// Whether the run's log holds nothing but `run.queued`: only such a run may start its engine.
pub(super) fn never_started(writer: &RunWriter) -> bool {
    writer.first_sequence() <= 2
}

/// Marks a run as handled by this process until dropped.
pub(super) struct InFlight {
    runtime: Runtime,
    id: RunId,
}

impl InFlight {
    /// Claims the run for this process; `None` when something in this process already handles it.
    pub(super) fn claim(runtime: &Runtime, id: RunId) -> Option<Self> {
        lock(&runtime.inner.in_flight).insert(id).then(|| Self { runtime: runtime.clone(), id })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        super::live::forget(&self.runtime, self.id);
        lock(&self.runtime.inner.in_flight).remove(&self.id);
    }
}

/// Executes a claimed run to its end. Errors are logged: the run always ends if its log can still
/// be written.
///
/// Returns once the engine is done: finishing the run (summary, `run.completed` fsynced, terminal
/// row) happens in a task of its own, so that a worker's next run does not wait for that fsync.
/// At most `finishing` such tasks are pending; beyond that the worker waits.
pub(super) async fn execute(runtime: &Runtime, run: Run, in_flight: InFlight) {
    let id = run.id;
    let writer = match writer_for(runtime, &run).await {
        Ok(writer) => Arc::new(writer),
        Err(Error::RunComplete(_)) => {
            // The log is finished but the table is not: finish the table from the log.
            if let Err(error) = super::recovery::finalize_from_log(runtime, &run).await {
                tracing::error!(run_id = %id, %error, "could not finalize a completed run");
            }
            return;
        }
        Err(error) => {
            tracing::error!(run_id = %id, %error, "could not open the run's log");
            return;
        }
    };
    if !never_started(&writer) {
        // An earlier execution got further than `run.queued` and then lost track of the run (its
        // row update was refused): an engine runs at most once per run, so this one ends it.
        let message = "an earlier execution of this run stopped before it finished; a run is never executed twice";
        let ending = Ending::failed(Stage::Run, failure_code::ORCHESTRATOR_LOST, message);
        finish(runtime, &run, &writer, ending, run.started_at).await;
        drop(in_flight);
        return;
    }
    let cancel = CancellationToken::new();
    let reason = Arc::new(Mutex::new(None));
    lock(&runtime.inner.active).insert(id, ActiveRun { cancel: cancel.clone(), reason: reason.clone() });
    // Another instance may have been asked to cancel it before this one claimed it.
    let cancel_asked = runtime.cancel_requested_elsewhere(id).await;
    if lock(&runtime.inner.cancel_requests).remove(&id) || cancel_asked {
        lock(&reason).get_or_insert(StopReason::Cancelled);
        cancel.cancel();
    }
    let lease = spawn_lease_renewal(runtime, id, cancel.clone(), reason.clone());
    let mut execution = RunExecution { runtime, run, writer, cancel, reason, started_at: None, build_id: None };
    let ending = match execution.run_to_end().await {
        Ok(ending) => ending,
        Err(error) => {
            if let Some(suppressed) = RUN_ERRORS_LOGGED.allow() {
                tracing::error!(run_id = %id, %error, suppressed, "the run failed inside the runtime");
            }
            let message = format!("ade could not record the run: {error}");
            if execution.writer.write_failure().is_none() {
                // Lost events are reported by `finalize`; anything else (the run store refused
                // an update) here. Best effort: the store that refused may refuse this too.
                let _ = execution.emit_error(Stage::Run, failure_code::STORE_ERROR, message.clone()).await;
            }
            Ending::failed(Stage::Run, failure_code::STORE_ERROR, message)
        }
    };
    let RunExecution { run, writer, started_at, .. } = execution;
    let Ok(permit) = runtime.inner.finishing.clone().acquire_owned().await else {
        return; // never closed
    };
    let runtime = runtime.clone();
    runtime.inner.tasks.clone().spawn(async move {
        finish(&runtime, &run, &writer, ending, started_at).await;
        lease.cancel();
        lock(&runtime.inner.active).remove(&id);
        lock(&runtime.inner.cancel_requests).remove(&id);
        drop((permit, in_flight));
    });
}

/// Failures to finish a run are logged at most once a second (a full disk fails them all).
static RUN_ERRORS_LOGGED: crate::log_limit::LogLimit = crate::log_limit::LogLimit::every_second();

/// Finalizes an executed run, retrying until its `run.completed` and terminal row are written or
/// the runtime shuts down (recovery then finishes it at the next start). The run stays in this
/// process's hands meanwhile, so no worker executes it again, and its subscribers see it end as
/// soon as the store takes writes again (a disk that was full has room).
async fn finish(runtime: &Runtime, run: &Run, writer: &RunWriter, ending: Ending, started_at: Option<Timestamp>) {
    let mut delay = RETRY_FIRST;
    loop {
        let attempt = if writer.is_completed() {
            // run.completed is in the log; only the row is missing.
            super::recovery::finalize_from_log(runtime, run).await
        } else {
            finalize(runtime, run, writer, ending.clone(), started_at).await.map(drop)
        };
        let Err(error) = attempt else { return };
        if let Some(suppressed) = RUN_ERRORS_LOGGED.allow() {
            tracing::error!(run_id = %run.id, %error, suppressed, retry_in = ?delay, "could not finalize the run");
        }
        tokio::select! {
            () = runtime.inner.shutdown.cancelled() => {
                tracing::warn!(run_id = %run.id, "shutting down with a run not finalized; recovery will at the next start");
                return;
            }
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// The first and the longest wait between two attempts to finalize a run.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(250);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Ends a queued run that nobody executes yet as `cancelled`.
pub(super) async fn cancel_queued(runtime: &Runtime, run: Run) -> Result<Run> {
    let writer = writer_for(runtime, &run).await?;
    let ending = Ending::stopped(StopReason::Cancelled, Stage::Run, 0);
    finalize(runtime, &run, &writer, ending, None).await
}

/// Renews this process's lease on the run until the returned token is cancelled. A lost lease
/// (another instance took the run over) stops the run: its writes are refused anyway. With
/// shared stores, a cancel requested on another instance and missed here is seen at renewal.
fn spawn_lease_renewal(
    runtime: &Runtime,
    id: RunId,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
) -> CancellationToken {
    let done = CancellationToken::new();
    let (stop, runtime) = (done.clone(), runtime.clone());
    tokio::spawn(async move {
        let every = runtime.inner.lease / 3;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match runtime.inner.runs.renew_lease(id, &runtime.inner.owner, runtime.inner.lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(run_id = %id, "lost the lease on a running run; stopping it here");
                    lock(&reason).get_or_insert(StopReason::LeaseLost);
                    cancel.cancel();
                    return;
                }
                Err(error) => tracing::warn!(run_id = %id, %error, "could not renew a lease"),
            }
            if runtime.cancel_requested_elsewhere(id).await {
                lock(&reason).get_or_insert(StopReason::Cancelled);
                cancel.cancel();
            }
        }
    });
    done
}

struct RunExecution<'a> {
    runtime: &'a Runtime,
    run: Run,
    writer: Arc<RunWriter>,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    started_at: Option<Timestamp>,
    build_id: Option<BuildId>,
}

impl RunExecution<'_> {
    fn stop_reason(&self) -> Option<StopReason> {
        *lock(&self.reason)
    }

    fn transition(&self, from: RunStatus, transition: Transition) -> impl Future<Output = Result<Run>> + '_ {
        let to = transition.to.map_or("", RunStatus::as_str);
        metrics::gauge_move(from.as_str(), to);
        self.runtime.inner.runs.transition(self.run.id, transition)
    }

    async fn run_to_end(&mut self) -> Result<Ending> {
        let configuration = self.runtime.configuration(&self.run.configuration_id);
        let Some(configuration) = configuration else {
            let message = format!("configuration {} is not known to this server", self.run.configuration_id);
            return self.fail(Stage::Run, failure_code::CONFIG_ERROR, message).await;
        };
        let timeout = configuration.timeout();
        let timer = spawn_timeout(timeout, self.cancel.clone(), self.reason.clone());
        let watcher = spawn_write_watch(self.writer.clone(), self.cancel.clone(), self.reason.clone());
        let ending = self.build_and_run(configuration).await;
        timer.cancel();
        watcher.abort();
        ending
    }

    async fn build_and_run(&mut self, configuration: Arc<Configuration>) -> Result<Ending> {
        let timeout_s = configuration.timeout().as_secs();
        if let Some(reason) = self.stop_reason() {
            return Ok(Ending::stopped(reason, Stage::Run, timeout_s));
        }
        let name = configuration.engine.engine_name().to_owned();
        let Some(entry) = self.runtime.inner.engines.get(&name).cloned() else {
            let message = missing_engine_message(&name);
            return self.fail(Stage::Run, failure_code::CONFIG_ERROR, message).await;
        };
        let run_sink =
            EventSink::new(self.writer.clone(), ConsoleScope::Run).with_limits(self.runtime.inner.sink_limits);
        let mut env = None;
        let mut build = None;
        if let Some(builder) = entry.builder.as_ref().filter(|b| b.needs_build(&configuration)) {
            self.transition(RunStatus::Queued, Transition::to(RunStatus::Building)).await?;
            match self.build(builder.as_ref(), &configuration, entry.engine.version(), &run_sink).await? {
                Ok((artifact, build_env)) => {
                    build = Some(artifact);
                    env = Some(build_env);
                }
                Err(ending) => return Ok(ending),
            }
            if let Some(reason) = self.stop_reason() {
                return Ok(Ending::stopped(reason, Stage::Build, timeout_s));
            }
        }
        let from = if build.is_some() { RunStatus::Building } else { RunStatus::Queued };
        let started_at = Timestamp::now();
        let mut transition = Transition::to(RunStatus::Running).started_at(started_at);
        if let Some(build_id) = self.build_id {
            transition = transition.build_id(build_id);
        }
        self.transition(from, transition).await?;
        self.started_at = Some(started_at);
        self.writer
            .emit(
                EventSource::Api,
                RunStarted {
                    status: InProgressStatus::Value,
                    mode: self.run.mode,
                    engine_version: Some(entry.engine.version().to_owned()),
                    config_version: Some(configuration.version.clone()),
                    env,
                    extra: Extra::new(),
                },
            )
            .await?;
        let run_dir = self.runtime.run_dir(&self.run.workspace_id, self.run.id);
        let output_dir = run_dir.join("outputs");
        let context = EngineContext {
            run_id: self.run.id,
            workspace_id: self.run.workspace_id.clone(),
            configuration_id: self.run.configuration_id.clone(),
            build_id: self.build_id,
            mode: self.run.mode,
            options: self.run.options.clone(),
            inputs: match self.runtime.input_documents(&self.run.workspace_id, &self.run.document_ids).await {
                Ok(inputs) => inputs,
                Err(error) => return self.fail(Stage::Run, failure_code::INPUT_ERROR, error.to_string()).await,
            },
            output_dir,
            run_dir: run_dir.clone(),
            cancel: self.cancel.clone(),
            configuration: configuration.clone(),
            build,
        };
        let outcome = self.run_engine(entry.engine.run(context, run_sink.clone())).await;
        let unpublished = run_sink.unpublished_issues();
        if unpublished > 0 {
            let message = format!(
                "{unpublished} more validation issues were counted but not published (limit {})",
                run_sink.limits().max_published_issues
            );
            self.console_warn(ConsoleScope::Run, message).await?;
        }
        if let Some(reason) = self.stop_reason() {
            // A store error's run.error is written by `finalize`, with the run.completed.
            let mut ending = Ending::stopped(reason, Stage::Run, timeout_s);
            if reason == StopReason::TimedOut {
                self.emit_error(Stage::Run, failure_code::TIMEOUT, ending.failure_message()).await?;
            }
            ending.exit_code = outcome.as_ref().and_then(|o| o.exit_code);
            return Ok(ending);
        }
        let Some(outcome) = outcome else {
            return self.fail(Stage::Run, failure_code::ENGINE_ERROR, "the engine did not return").await;
        };
        match outcome.failure {
            Some(mut failure) => {
                // Cut as the summary cuts it, so that run.error fits and says what run.completed says.
                shorten(&mut failure.code, MAX_TEXT_BYTES);
                shorten(&mut failure.message, MAX_FAILURE_MESSAGE_BYTES);
                self.emit_error(Stage::Run, &failure.code, failure.message.clone()).await?;
                let mut ending = Ending::failed(Stage::Run, &failure.code, failure.message);
                ending.exit_code = outcome.exit_code;
                Ok(ending)
            }
            None => {
                let outputs = match self.run.mode {
                    RunMode::Execute => self.checked_outputs(&run_dir, outcome.output_paths).await?,
                    _ => Vec::new(),
                };
                Ok(Ending::succeeded(outcome.exit_code, outputs))
            }
        }
    }

    /// Waits for the engine; once the run is stopped, gives it `cancel_grace` to return.
    async fn run_engine(&self, engine: impl Future<Output = EngineOutcome>) -> Option<EngineOutcome> {
        tokio::pin!(engine);
        tokio::select! {
            outcome = &mut engine => return Some(outcome),
            () = self.cancel.cancelled() => {}
        }
        tokio::select! {
            outcome = &mut engine => Some(outcome),
            () = tokio::time::sleep(self.runtime.inner.cancel_grace) => {
                tracing::warn!(run_id = %self.run.id, "the engine ignored cancellation; abandoning it");
                None
            }
        }
    }

    /// Output paths the engine reported, relative to the run's directory; others are dropped with
    /// a warning.
    async fn checked_outputs(&self, run_dir: &Path, reported: Vec<String>) -> Result<Vec<String>> {
        let mut outputs = Vec::new();
        for path in reported {
            let candidate = Path::new(&path);
            let relative = if candidate.is_absolute() {
                candidate.strip_prefix(run_dir).ok().map(Path::to_path_buf)
            } else {
                Some(candidate.to_path_buf())
            };
            match relative.filter(|p| p.components().all(|c| matches!(c, Component::Normal(_)))) {
                Some(relative) if run_dir.join(&relative).is_file() => {
                    outputs.push(relative.to_string_lossy().replace('\\', "/"));
                }
                _ => {
                    let message = format!("output {path:?} is not a file inside the run's directory; not listed");
                    self.console_warn(ConsoleScope::Run, message).await?;
                }
            }
        }
        Ok(outputs)
    }

    /// The build phase: cache lookup, or a build. `Err(ending)` when the run ends here.
    async fn build(
        &mut self,
        builder: &dyn crate::engine::Builder,
        configuration: &Arc<Configuration>,
        engine_version: &str,
        run_sink: &EventSink,
    ) -> Result<std::result::Result<(Arc<BuildArtifact>, BuildEnv), Ending>> {
        let fingerprint = fingerprint(configuration, engine_version);
        let force = self.run.options.force_rebuild.unwrap_or(false);
        let cached =
            if force { None } else { self.runtime.inner.builds.get(self.runtime.data_dir(), &fingerprint).await };
        if let Some(artifact) = cached {
            self.set_build(artifact.build_id);
            self.writer
                .emit(
                    EventSource::Api,
                    BuildCreated {
                        status: QueuedStatus::Value,
                        reason: BuildReason::CacheHit,
                        should_build: false,
                        fingerprint,
                        extra: Extra::new(),
                    },
                )
                .await?;
            let env = BuildEnv { reason: BuildReason::CacheHit, reused: true };
            self.writer
                .emit(
                    EventSource::Api,
                    BuildCompleted {
                        status: BuildStatus::Reused,
                        duration_ms: None,
                        exit_code: None,
                        summary: Some("reused a cached build".to_owned()),
                        env: Some(env.clone()),
                        error: None,
                        extra: Extra::new(),
                    },
                )
                .await?;
            ::metrics::counter!(metrics::BUILDS_TOTAL, "status" => "reused").increment(1);
            return Ok(Ok((artifact, env)));
        }
        let reason = if force { BuildReason::ForceRebuild } else { BuildReason::CacheMiss };
        let build_id = BuildId::new();
        self.set_build(build_id);
        let created = BuildCreated {
            status: QueuedStatus::Value,
            reason,
            should_build: true,
            fingerprint: fingerprint.clone(),
            extra: Extra::new(),
        };
        self.writer.emit(EventSource::Api, created).await?;
        let started = BuildStarted { status: BuildingStatus::Value, reason, extra: Extra::new() };
        self.writer.emit(EventSource::Api, started).await?;
        let context = BuildContext {
            run_id: self.run.id,
            build_id,
            configuration: configuration.clone(),
            fingerprint,
            build_dir: self.runtime.data_dir().join("builds").join(build_id.to_string()),
            cancel: self.cancel.clone(),
        };
        let clock = Instant::now();
        let mut outcome = builder.build(context, run_sink.for_scope(ConsoleScope::Build)).await;
        if let Err(failure) = &mut outcome.result {
            // Cut as the summary cuts it, so that build.completed and run.error fit; with room for
            // the "the build failed: " the run's failure adds.
            shorten(&mut failure.code, MAX_TEXT_BYTES);
            shorten(&mut failure.message, MAX_FAILURE_MESSAGE_BYTES - 64);
        }
        let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let env = BuildEnv { reason, reused: false };
        let (status, error) = match &outcome.result {
            Ok(_) => (BuildStatus::Succeeded, None),
            Err(failure) => (
                BuildStatus::Failed,
                Some(ErrorInfo { code: failure.code.clone(), message: failure.message.clone(), details: None }),
            ),
        };
        let completed = BuildCompleted {
            status,
            duration_ms: Some(duration_ms),
            exit_code: outcome.exit_code,
            summary: outcome.summary.clone(),
            env: Some(env.clone()),
            error,
            extra: Extra::new(),
        };
        self.writer.emit(EventSource::Api, completed).await?;
        match outcome.result {
            Ok(artifact) => {
                ::metrics::counter!(metrics::BUILDS_TOTAL, "status" => "succeeded").increment(1);
                let artifact = Arc::new(artifact);
                self.runtime.inner.builds.put(self.runtime.data_dir(), artifact.clone()).await;
                Ok(Ok((artifact, env)))
            }
            Err(failure) => {
                ::metrics::counter!(metrics::BUILDS_TOTAL, "status" => "failed").increment(1);
                if let Some(reason) = self.stop_reason() {
                    let timeout_s = configuration.timeout().as_secs();
                    return Ok(Err(Ending::stopped(reason, Stage::Build, timeout_s)));
                }
                let message = format!("the build failed: {}", failure.message);
                self.emit_error(Stage::Build, failure_code::BUILD_FAILED, message.clone()).await?;
                let mut ending = Ending::failed(Stage::Build, failure_code::BUILD_FAILED, message);
                ending.exit_code = outcome.exit_code;
                Ok(Err(ending))
            }
        }
    }

    fn set_build(&mut self, build_id: BuildId) {
        self.build_id = Some(build_id);
        self.writer.set_build_id(build_id);
    }

    async fn emit_error(&self, stage: Stage, code: &str, message: String) -> Result<()> {
        let error = RunError { stage, code: code.to_owned(), message, phase: None, details: None, extra: Extra::new() };
        self.writer.emit(EventSource::Api, error).await.map(drop)
    }

    async fn console_warn(&self, scope: ConsoleScope, message: String) -> Result<()> {
        let line = crate::event::ConsoleLine {
            scope,
            stream: ConsoleStream::Stderr,
            level: ConsoleLevel::Warn,
            message,
            phase: None,
            logger: Some("ade".to_owned()),
            engine_timestamp: None,
            extra: Extra::new(),
        };
        self.writer.emit(EventSource::Api, line).await.map(drop)
    }

    /// Emits `run.error` and ends the run failed.
    async fn fail(&self, stage: Stage, code: &str, message: impl Into<String>) -> Result<Ending> {
        let message = message.into();
        self.emit_error(stage, code, message.clone()).await?;
        Ok(Ending::failed(stage, code, message))
    }
}

impl Ending {
    fn failure_message(&self) -> String {
        self.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default()
    }
}

/// Stops the run (reason `TimedOut`) when `timeout` passes, unless the returned token is cancelled
/// first.
/// Why no engine named `name` can run. The reference engine `extract` says where it comes from,
/// so that its absence from a host that did not register it is not a mystery.
pub(super) fn missing_engine_message(name: &str) -> String {
    if name == "extract" {
        return "no engine named \"extract\" is registered: the host registers the reference \
                spreadsheet engine with the crate ade-extract (`ade_extract::register`)"
            .to_owned();
    }
    format!("no engine named {name:?} is registered")
}

/// Stops the run (reason `StoreError`) as soon as one of its writes fails, until aborted.
fn spawn_write_watch(
    writer: Arc<RunWriter>,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        writer.write_failed().await;
        lock(&reason).get_or_insert(StopReason::StoreError);
        cancel.cancel();
    })
}

fn spawn_timeout(
    timeout: std::time::Duration,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
) -> CancellationToken {
    let done = CancellationToken::new();
    let stop = done.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(timeout) => {
                lock(&reason).get_or_insert(StopReason::TimedOut);
                cancel.cancel();
            }
        }
    });
    done
}

/// Folds the run's log into its summary.
pub(super) async fn fold_summary(runtime: &Runtime, run: &Run, outcome: &RunOutcomeInfo) -> Result<RunSummary> {
    let configuration = runtime.configuration(&run.configuration_id);
    let mut builder = super::live::builder_for(run, configuration.as_deref());
    let key = RunKey::new(run.workspace_id.clone(), run.id);
    let mut events = runtime.inner.dispatcher.store().read_after(&key, 0).await?;
    while let Some(event) = events.next().await {
        match event?.envelope() {
            Ok(envelope) => builder.push(envelope),
            Err(error) => tracing::warn!(run_id = %run.id, %error, "skipping an unreadable event in the summary"),
        }
    }
    Ok(builder.summary(Some(outcome)))
}

/// Writes `run.completed` (fsynced) and, in the same step, the terminal row with its summary.
pub(super) async fn finalize(
    runtime: &Runtime,
    run: &Run,
    writer: &RunWriter,
    mut ending: Ending,
    started_at: Option<Timestamp>,
) -> Result<Run> {
    // Everything emitted so far must be in the log before it is folded.
    let _ = writer.flush().await; // a failure is the writer's `write_failure`, read next
    let mut report = None;
    if let Some(failure) = writer.write_failure() {
        // Events are missing from the log: whatever the engine said, the run did not succeed,
        // and a run.error says so right before run.completed.
        let stage = ending.failure.as_ref().map_or(Stage::Run, |f| f.stage);
        ending = Ending { exit_code: ending.exit_code, ..Ending::lost_events(stage, &failure) };
        report = Some(RunError {
            stage,
            code: failure_code::STORE_ERROR.to_owned(),
            message: ending.failure_message(),
            phase: None,
            details: None,
            extra: Extra::new(),
        });
    }
    let completed_at = Timestamp::now();
    if let Some(failure) = &mut ending.failure {
        bound_failure(failure);
    }
    let status = RunStatus::from(ending.status);
    let outcome = RunOutcomeInfo { status, failure: ending.failure.clone(), completed_at: Some(completed_at) };
    // Folded as the events were persisted when this process wrote the whole log; otherwise read back.
    let summary = match super::live::get(runtime, run.id) {
        Some(live) => live.summary(Some(&outcome)),
        None => fold_summary(runtime, run, &outcome).await?,
    };
    let since = started_at.or(summary.run.started_at).unwrap_or(run.created_at);
    let completed = RunCompleted {
        status: ending.status,
        failure: ending.failure.clone(),
        execution: Execution {
            exit_code: ending.exit_code,
            started_at: started_at.or(summary.run.started_at),
            completed_at,
            duration_ms: completed_at.millis_since(since),
        },
        artifacts: Artifacts { output_paths: ending.output_paths, events_path: "logs/events.ndjson".to_owned() },
        summary: summary.clone(),
        event_count: writer.next_sequence(),
        extra: Extra::new(),
    };
    // Persisted, then the row, then published: whoever sees run.completed finds the run finished.
    // A failed write hands its sequence out again; one retry covers a transient error.
    // With `report`, the run.error of lost events goes right before it (again after a failed
    // write, which drops whatever it held).
    let persist = |completed: RunCompleted, report: Option<RunError>| async move {
        if let Some(error) = report {
            writer.emit(EventSource::Api, error).await?;
        }
        let completed = RunCompleted { event_count: writer.next_sequence(), ..completed };
        let (sequence, gate) = writer.emit_gated(EventSource::Api, completed.clone()).await?;
        writer.flush().await?;
        Ok::<_, Error>((completed, sequence, gate))
    };
    // One too large to be written at all is replaced by a small failed one: the run must end.
    let (completed, sequence, gate) = match persist(completed.clone(), report.clone()).await {
        Ok(persisted) => persisted,
        Err(Error::EventTooLarge { size, limit }) => {
            tracing::error!(run_id = %run.id, size, limit, "run.completed is over the event size limit; the run ends failed");
            // The run.error, if any, is queued already: it goes out with this one.
            persist(too_large(completed, size, limit), None).await?
        }
        Err(_) => persist(completed, report).await?,
    };
    let status = RunStatus::from(completed.status);
    let finalization = Finalization {
        status,
        completed_at,
        exit_code: ending.exit_code,
        failure: completed.failure,
        summary: completed.summary,
        last_sequence: sequence,
    };
    let finished = runtime.inner.runs.finalize(run.id, finalization).await;
    drop(gate);
    let finished = finished?;
    ::metrics::counter!(metrics::RUNS_TOTAL, "status" => status.as_str()).increment(1);
    ::metrics::histogram!(metrics::RUN_DURATION_SECONDS)
        .record(completed_at.millis_since(run.created_at) as f64 / 1000.0);
    metrics::gauge_move(run.status.as_str(), "");
    Ok(finished)
}

/// The `run.completed` that replaces `completed` when it is `size` bytes, over the event limit
/// (`limit`): `failed` with `completion_too_large`, no outputs, and the minimal summary.
fn too_large(completed: RunCompleted, size: usize, limit: usize) -> RunCompleted {
    let was = match &completed.failure {
        Some(failure) => format!("{} ({})", RunStatus::from(completed.status).as_str(), failure.code),
        None => RunStatus::from(completed.status).as_str().to_owned(),
    };
    let mut failure = Failure {
        stage: completed.failure.as_ref().map_or(Stage::Run, |f| f.stage),
        code: failure_code::COMPLETION_TOO_LARGE.to_owned(),
        message: format!(
            "the run ended {was}, but its run.completed was {size} bytes, over the event size limit of {limit} \
             bytes: it is recorded failed, without its outputs and the summary's lists"
        ),
    };
    bound_failure(&mut failure);
    let mut summary = completed.summary.minimal();
    summary.run.status = RunStatus::Failed;
    summary.run.failure_stage = Some(failure.stage);
    summary.run.failure_code = Some(failure.code.clone());
    summary.run.failure_message = Some(failure.message.clone());
    RunCompleted {
        status: RunOutcome::Failed,
        failure: Some(failure),
        artifacts: Artifacts { output_paths: Vec::new(), ..completed.artifacts },
        summary,
        ..completed
    }
}

#[cfg(test)]
mod tests {
    use super::missing_engine_message;

    #[test]
    fn a_missing_extract_engine_names_the_crate_that_registers_it() {
        let message = missing_engine_message("extract");
        assert!(message.contains("ade_extract::register"), "{message}");
        assert_eq!(missing_engine_message("mine"), "no engine named \"mine\" is registered");
    }
}
