//! The `process` engine and builder (SPEC §8.2): any program that speaks NDJSON on stdout.
//!
//! Both run commands through one function, [`run_subprocess`]: spawn with the `ADE_*`
//! environment, read stdout and stderr line by line (bounded memory, lossy UTF-8), turn stdout
//! JSON lines with a string `type` into events and every other line into `console.line`, forward
//! cancellation as SIGTERM then SIGKILL, and always reap the child.
//!
//! Split by concern: [`subprocess`] spawns, signals and reaps one command; [`wire`] turns its
//! output lines into events and console lines; [`line_reader`] reads bounded lines.

mod line_reader;
mod subprocess;
#[cfg(test)]
mod tests;
mod wire;

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    BuildArtifact, BuildContext, BuildOutcome, Builder, Engine, EngineContext, EngineFailure, EngineOutcome, EventSink,
};
use crate::config::{Configuration, EngineSpec, ProcessSpec};
use crate::event::PhaseStatus;
use subprocess::{Invocation, run_subprocess};

/// The default time between SIGTERM and SIGKILL.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);

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
    let mode = context.mode.as_str();
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
