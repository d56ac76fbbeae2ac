//! [`RunSummaryBuilder`]: folds a run's events into a [`RunSummary`](super::RunSummary) (SPEC §7).
//! (Being written.)

use crate::event::{ConfigurationId, Envelope, RunId, Timestamp, WorkspaceId};
use crate::run::{Failure, RunStatus};

/// A canonical field of the run's configuration, as the summary needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredField {
    /// The field's name.
    pub name: String,
    /// Its label (the name when the configuration gives none).
    pub label: String,
    /// Whether it is required.
    pub required: bool,
}

/// How the run ended, as the orchestrator knows it (SPEC §7 rule 6).
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcomeInfo {
    /// The run's status.
    pub status: RunStatus,
    /// Why it failed, when the orchestrator knows.
    pub failure: Option<Failure>,
    /// When it ended.
    pub completed_at: Option<Timestamp>,
}

/// A pure, incremental fold of a run's events into its summary.
#[derive(Debug, Clone)]
pub struct RunSummaryBuilder {
    run_id: RunId,
    workspace_id: WorkspaceId,
    configuration_id: ConfigurationId,
    fields: Vec<ConfiguredField>,
}

impl RunSummaryBuilder {
    /// A builder for one run, with its configuration's fields in configuration order.
    pub fn new(
        run_id: RunId,
        workspace_id: WorkspaceId,
        configuration_id: ConfigurationId,
        fields: Vec<ConfiguredField>,
    ) -> Self {
        Self { run_id, workspace_id, configuration_id, fields }
    }

    /// Feeds the next event, in sequence order.
    pub fn push(&mut self, _event: &Envelope) {}
}
