//! Engines and builders (SPEC §8): what executes a run, and what prepares a configuration for it.
//!
//! An [`Engine`] gets an [`EngineContext`] and an [`EventSink`] and returns an [`EngineOutcome`];
//! a [`Builder`] does the same for builds and returns a cacheable [`BuildArtifact`] keyed by a
//! fingerprint (configuration content + engine version). Engines never stamp events: everything
//! they emit goes through the sink to the dispatcher.
//!
//! The `process` engine is built in. Others are registered by the host
//! ([`RuntimeBuilder::engine`](crate::RuntimeBuilder::engine)): the reference spreadsheet engine
//! is the crate `ade-extract` (`ade_extract::register`), so that embedders who need only
//! `process` or their own engines compile no spreadsheet crates.

mod orphans;
mod process;
mod sink;
mod spawn;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub(crate) use orphans::kill_orphans;
pub use process::{ProcessBuilder, ProcessEngine};
pub use sink::{EventSink, MAX_CONSOLE_MESSAGE, MAX_PUBLISHED_ISSUES, MIN_CONSOLE_MESSAGE, SinkError, SinkLimits};

use crate::config::Configuration;
use crate::event::{BuildId, ConfigurationId, DocumentId, RunId, WorkspaceId};
use crate::run::{RunMode, RunOptions};

/// An input document of a run, on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDocument {
    /// The document's id.
    pub id: DocumentId,
    /// The name it was uploaded with (sanitized).
    pub filename: String,
    /// Where its bytes are.
    pub path: PathBuf,
}

/// Everything an engine is told about the run it executes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineContext {
    /// The run.
    pub run_id: RunId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Its configuration's id.
    pub configuration_id: ConfigurationId,
    /// The build it runs with, if the configuration needed one.
    pub build_id: Option<BuildId>,
    /// What to do.
    pub mode: RunMode,
    /// Options as requested.
    pub options: RunOptions,
    /// Input documents, in the order given.
    pub inputs: Vec<InputDocument>,
    /// Where outputs go (the run's `outputs/` directory); paths reported back are relative to the
    /// run's directory.
    pub output_dir: PathBuf,
    /// The run's directory (outputs and logs live below it).
    pub run_dir: PathBuf,
    /// Cancelled when the run is cancelled or times out: stop soon after.
    pub cancel: CancellationToken,
    /// The configuration.
    pub configuration: Arc<Configuration>,
    /// The built configuration, when there was a build.
    pub build: Option<Arc<BuildArtifact>>,
}

/// Everything a builder is told about the build it makes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuildContext {
    /// The run that asked for the build.
    pub run_id: RunId,
    /// The build.
    pub build_id: BuildId,
    /// The configuration to build.
    pub configuration: Arc<Configuration>,
    /// The cache key of the build.
    pub fingerprint: String,
    /// A directory the build may fill; it is kept with the cached artifact.
    pub build_dir: PathBuf,
    /// Cancelled when the run is cancelled or times out.
    pub cancel: CancellationToken,
}

/// Why an engine or a build failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFailure {
    /// Machine-readable code, e.g. `engine_error`, `input_error`, `config_invalid`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl EngineFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// How an engine run ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EngineOutcome {
    /// `None` on success.
    pub failure: Option<EngineFailure>,
    /// Output files, relative to the run's directory (e.g. `outputs/normalized.xlsx`).
    pub output_paths: Vec<String>,
    /// The exit code of a subprocess engine.
    pub exit_code: Option<i32>,
}

impl EngineOutcome {
    /// Success with these outputs.
    pub fn succeeded(output_paths: Vec<String>) -> Self {
        Self { failure: None, output_paths, exit_code: None }
    }

    /// Failure.
    pub fn failed(failure: EngineFailure) -> Self {
        Self { failure: Some(failure), output_paths: Vec::new(), exit_code: None }
    }
}

/// What a successful build produced; cached by fingerprint and handed to every run that uses it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildArtifact {
    /// The build that made it.
    pub build_id: BuildId,
    /// Its cache key.
    pub fingerprint: String,
    /// The directory the build filled.
    pub dir: PathBuf,
    /// Anything the builder wants the engine to get (compiled rules, paths, …).
    pub data: serde_json::Value,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BuildOutcome {
    /// The artifact, or why there is none.
    pub result: Result<BuildArtifact, EngineFailure>,
    /// The exit code of a subprocess build.
    pub exit_code: Option<i32>,
    /// A word for people (`build.completed.summary`).
    pub summary: Option<String>,
}

impl BuildOutcome {
    /// A build that made `artifact`.
    pub fn succeeded(artifact: BuildArtifact) -> Self {
        Self { result: Ok(artifact), exit_code: None, summary: None }
    }

    /// A build that failed.
    pub fn failed(failure: EngineFailure) -> Self {
        Self { result: Err(failure), exit_code: None, summary: None }
    }

    /// The same outcome with a word for people (`build.completed.summary`).
    #[must_use]
    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// The same outcome with the exit code of the build's subprocess.
    #[must_use]
    pub fn with_exit_code(mut self, exit_code: i32) -> Self {
        self.exit_code = Some(exit_code);
        self
    }
}

/// Executes runs of configurations of one engine kind.
#[async_trait]
pub trait Engine: Send + Sync + Debug + 'static {
    /// The engine's version: part of the build fingerprint and reported in `run.started`.
    fn version(&self) -> &str;

    /// Whether this engine could run `configuration`: what it would refuse when a run starts,
    /// refused when the configuration is put instead (`PUT /configurations/{id}`,
    /// [`Runtime::put_configuration`](crate::Runtime::put_configuration)). The default takes
    /// every configuration.
    ///
    /// # Errors
    /// Why not, for people (e.g. naming the field whose pattern does not compile).
    fn check(&self, _configuration: &Configuration) -> Result<(), String> {
        Ok(())
    }

    /// Runs. Everything that happens goes to `sink`; the outcome says how it ended. Must return
    /// soon after `context.cancel` fires.
    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome;
}

/// Prepares configurations of one engine kind; builds are cached by fingerprint.
#[async_trait]
pub trait Builder: Send + Sync + Debug + 'static {
    /// Whether this configuration needs a build at all; without one there are no `build.*` events.
    fn needs_build(&self, configuration: &Configuration) -> bool;

    /// Builds. Phases and console lines go to `sink` (scope `build`).
    async fn build(&self, context: BuildContext, sink: EventSink) -> BuildOutcome;
}

/// The build cache key: sha256 of the canonical configuration JSON plus the engine version
/// (SPEC §8.3), as `sha256:<hex>`.
pub fn fingerprint(configuration: &Configuration, engine_version: &str) -> String {
    // `serde_json::Value` keeps object keys sorted, which makes the JSON canonical.
    let canonical = serde_json::to_value(configuration).map(|v| v.to_string()).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(canonical.as_bytes());
    hasher.update(b"\n");
    hasher.update(engine_version.as_bytes());
    format!("sha256:{:x}", hasher.finalize())
}

/// The content hash of a configuration (`configuration_version` of runs): sha256 of its canonical
/// JSON, as `sha256:<hex>`.
pub fn configuration_version(configuration: &Configuration) -> String {
    let canonical = serde_json::to_value(configuration).map(|v| v.to_string()).unwrap_or_default();
    format!("sha256:{:x}", Sha256::digest(canonical.as_bytes()))
}
