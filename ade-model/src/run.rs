//! The run resource (SPEC §3) and the enumerations a run is described by.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{BuildId, ConfigurationId, DocumentId, RunId, Timestamp, WorkspaceId};
use crate::summary::RunSummary;

/// Unknown fields of an object, kept so that they survive a round trip.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Where a run is in its life. `queued → building → running → succeeded | failed | cancelled`;
/// `queued | building → failed | cancelled` is allowed too; terminal states are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Accepted, waiting for a worker.
    Queued,
    /// Its configuration is being built.
    Building,
    /// The engine is running.
    Running,
    /// Finished, and the engine reported success.
    Succeeded,
    /// Finished without success.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended; a terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Whether the state machine allows going from `self` to `next`.
    pub fn can_transition_to(self, next: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, next),
            (Queued, Building | Running | Failed | Cancelled)
                | (Building, Running | Failed | Cancelled)
                | (Running, Succeeded | Failed | Cancelled)
        )
    }

    /// The spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Building => "building",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How a run ended: the terminal subset of [`RunStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunOutcome {
    /// The engine reported success.
    Succeeded,
    /// The build or the engine failed, or the run was lost or timed out.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl From<RunOutcome> for RunStatus {
    fn from(outcome: RunOutcome) -> Self {
        match outcome {
            RunOutcome::Succeeded => Self::Succeeded,
            RunOutcome::Failed => Self::Failed,
            RunOutcome::Cancelled => Self::Cancelled,
        }
    }
}

/// What the engine is asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunMode {
    /// Process the inputs and write outputs.
    #[default]
    Execute,
    /// Build, then validate the inputs without writing outputs.
    ValidateOnly,
    /// Run fully but write no outputs.
    DryRun,
}

impl RunMode {
    /// The spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::ValidateOnly => "validate_only",
            Self::DryRun => "dry_run",
        }
    }
}

/// Which half of a run something happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// Preparing the configuration.
    Build,
    /// Executing the engine.
    Run,
}

/// Why a run failed. Standard codes are the constants of [`failure_code`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// Build or run.
    pub stage: Stage,
    /// Machine-readable reason, e.g. `engine_exit_nonzero`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The standard values of [`Failure::code`].
pub mod failure_code {
    /// The build of the configuration failed.
    pub const BUILD_FAILED: &str = "build_failed";
    /// The engine reported an error.
    pub const ENGINE_ERROR: &str = "engine_error";
    /// A subprocess engine exited with a non-zero code or a signal.
    pub const ENGINE_EXIT_NONZERO: &str = "engine_exit_nonzero";
    /// An input document could not be read.
    pub const INPUT_ERROR: &str = "input_error";
    /// The configuration is invalid.
    pub const CONFIG_ERROR: &str = "config_error";
    /// The run was cancelled on request.
    pub const CANCELLED: &str = "cancelled";
    /// The run exceeded its configuration's timeout.
    pub const TIMEOUT: &str = "timeout";
    /// The process that owned the run died; recovery finalized it.
    pub const ORCHESTRATOR_LOST: &str = "orchestrator_lost";
    /// The run's events could not all be persisted (a full disk, an I/O error): its log has a
    /// hole where they would be, so it can never succeed. Not in SPEC §2.3's list (decisions.md).
    pub const STORE_ERROR: &str = "store_error";
    /// The run's `run.completed` was over the event size limit even with its summary bounded (an
    /// engine listed too many outputs, say): it ended `failed` with a small one instead.
    pub const COMPLETION_TOO_LARGE: &str = "completion_too_large";
}

/// Options of a run, as requested in `POST /runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunOptions {
    /// Only these sheets of the inputs are read (all sheets when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sheet_names: Option<Vec<String>>,
    /// Build the configuration again even if a cached build exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_rebuild: Option<bool>,
    /// Caller's own data, stored with the run and echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Extra>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Links of a run resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunLinks {
    /// `/runs/{id}`
    #[serde(rename = "self")]
    pub self_: String,
    /// `/runs/{id}/events`
    pub events: String,
    /// `/runs/{id}/outputs`
    pub outputs: String,
}

impl RunLinks {
    /// The links of the run `id`.
    pub fn for_run(id: RunId) -> Self {
        Self {
            self_: format!("/runs/{id}"),
            events: format!("/runs/{id}/events"),
            outputs: format!("/runs/{id}/outputs"),
        }
    }
}

/// A run, as `GET /runs/{id}` shows it and as the run store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// The run's id.
    pub id: RunId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// The configuration it executes.
    pub configuration_id: ConfigurationId,
    /// Content hash of that configuration when the run was created (`sha256:…`).
    pub configuration_version: String,
    /// The build the run used, once known.
    pub build_id: Option<BuildId>,
    /// Where the run is in its life.
    pub status: RunStatus,
    /// What the engine is asked to do.
    pub mode: RunMode,
    /// The input documents, in the order given.
    pub document_ids: Vec<DocumentId>,
    /// Options as requested.
    pub options: RunOptions,
    /// When the run was accepted.
    pub created_at: Timestamp,
    /// When the engine started.
    pub started_at: Option<Timestamp>,
    /// When the run ended.
    pub completed_at: Option<Timestamp>,
    /// The engine's exit code, for subprocess engines.
    pub exit_code: Option<i32>,
    /// Why the run failed; `null` unless it failed or was cancelled.
    pub failure: Option<Failure>,
    /// The sequence of the run's last event so far.
    pub last_sequence: u64,
    /// The run summary: final once the run is terminal, possibly a live partial one before.
    pub summary: Option<RunSummary>,
    /// Where to find the run, its events and its outputs.
    pub links: RunLinks,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_allows_only_spec_transitions() {
        use RunStatus::*;
        let all = [Queued, Building, Running, Succeeded, Failed, Cancelled];
        for from in all {
            for to in all {
                let allowed = from.can_transition_to(to);
                if from.is_terminal() || to == Queued || from == to {
                    assert!(!allowed, "{from:?} -> {to:?} must be refused");
                }
            }
        }
        assert!(Queued.can_transition_to(Failed) && Building.can_transition_to(Cancelled));
        assert!(!Building.can_transition_to(Succeeded), "a run cannot succeed without running");
    }
}

/// An uploaded input document (`POST /documents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Document {
    /// The document's id.
    pub id: DocumentId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// The sanitized file name it was uploaded with.
    pub filename: String,
    /// Its size in bytes.
    pub byte_size: u64,
    /// Hex sha256 of its bytes.
    pub sha256: String,
    /// Its media type.
    pub content_type: String,
    /// When it was uploaded.
    pub created_at: Timestamp,
}

/// Which runs to list; every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFilter {
    /// Only this workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this configuration.
    pub configuration_id: Option<ConfigurationId>,
}

impl RunFilter {
    /// Only `workspace_id`.
    #[must_use]
    pub fn workspace(mut self, workspace_id: WorkspaceId) -> Self {
        self.workspace_id = Some(workspace_id);
        self
    }

    /// Only runs in `status`.
    #[must_use]
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs of `configuration_id`.
    #[must_use]
    pub fn configuration(mut self, configuration_id: ConfigurationId) -> Self {
        self.configuration_id = Some(configuration_id);
        self
    }
}

/// What creating a run did (`ade_core::Runtime::create_run`, `POST /runs`: 201 or 200).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Created {
    /// A new run.
    New(Run),
    /// The run an earlier request with the same idempotency key created.
    Existing(Run),
}

impl Created {
    /// The run, new or existing.
    pub fn run(&self) -> &Run {
        match self {
            Self::New(run) | Self::Existing(run) => run,
        }
    }

    /// Takes the run.
    pub fn into_run(self) -> Run {
        match self {
            Self::New(run) | Self::Existing(run) => run,
        }
    }
}
