//! A run's summary folded as its events are persisted (SPEC §7), so that finishing a run does not
//! read its log back and `get_run` can show the summary so far.

use std::sync::{Arc, Mutex};

use super::Runtime;
use crate::config::Configuration;
use crate::dispatch::{PersistedObserver, RunWriter, lock};
use crate::event::{Envelope, RunId};
use crate::run::Run;
use crate::summary::{RunOutcomeInfo, RunSummary, RunSummaryBuilder};

/// The fold of one run's persisted events.
#[derive(Debug)]
pub(super) struct LiveSummary {
    builder: Mutex<RunSummaryBuilder>,
}

impl LiveSummary {
    /// The summary so far; with `outcome`, the final one.
    pub(super) fn summary(&self, outcome: Option<&RunOutcomeInfo>) -> RunSummary {
        lock(&self.builder).summary(outcome)
    }
}

impl PersistedObserver for LiveSummary {
    fn persisted(&self, event: &Envelope) {
        lock(&self.builder).push(event);
    }
}

/// A summary builder for `run`, with its configuration's fields.
pub(super) fn builder_for(run: &Run, configuration: Option<&Configuration>) -> RunSummaryBuilder {
    let fields = configuration.map(RunSummaryBuilder::fields_of).unwrap_or_default();
    RunSummaryBuilder::new(run.id, run.workspace_id.clone(), run.configuration_id.clone(), fields)
        .with_configuration_version(Some(run.configuration_version.clone()))
}

/// Folds `run`'s events as `writer` persists them, when the writer starts the log (otherwise the
/// summary is folded from the log at the end).
pub(super) fn attach(runtime: &Runtime, run: &Run, writer: &RunWriter) {
    if writer.first_sequence() != 1 {
        return;
    }
    let configuration = runtime.configuration(&run.configuration_id);
    let live = Arc::new(LiveSummary { builder: Mutex::new(builder_for(run, configuration.as_deref())) });
    if writer.observe(live.clone()) {
        lock(&runtime.inner.live).insert(run.id, live);
    }
}

/// The live summary of a run this process is writing.
pub(super) fn get(runtime: &Runtime, id: RunId) -> Option<Arc<LiveSummary>> {
    lock(&runtime.inner.live).get(&id).cloned()
}

/// Forgets a run's live summary (its run is finished, or no longer written here).
pub(super) fn forget(runtime: &Runtime, id: RunId) {
    lock(&runtime.inner.live).remove(&id);
}
