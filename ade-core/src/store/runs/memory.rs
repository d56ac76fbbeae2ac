//! [`MemoryRunStore`]: runs and documents in memory, for tests and embedding.
//!
//! This file also holds the rules both backends share (cursors, the transition checks, leases and
//! the idempotency window), so that the SQLite store cannot drift from the reference.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    CreateOutcome, Document, ExportBacklog, Finalization, IDEMPOTENCY_WINDOW, IdempotencyKey, RunFilter, RunPage,
    RunStore, Transition,
};
use crate::error::{Error, Result, excerpt};
use crate::event::{DocumentId, RunId, Timestamp, WorkspaceId};
use crate::run::{Run, RunStatus};
use crate::store::RunKey;
use crate::sync::lock;

// ---- Rules shared by every backend -------------------------------------------------------------

/// The cursor that continues a listing after the run at (`created_at_us`, `id`).
pub fn encode_cursor(created_at_us: i64, id: RunId) -> String {
    format!("{created_at_us}.{id}")
}

/// The (`created_at_us`, `id`) a cursor of [`encode_cursor`] continues after.
pub fn decode_cursor(cursor: &str) -> Result<(i64, RunId)> {
    let invalid = || Error::InvalidCursor(excerpt(cursor));
    let (micros, id) = cursor.split_once('.').ok_or_else(invalid)?;
    let micros = micros.parse::<i64>().map_err(|_| invalid())?;
    let id = id.parse::<RunId>().map_err(|_| invalid())?;
    Ok((micros, id))
}

/// The page size for a requested `limit`: at least one run per page.
pub fn page_size(limit: usize) -> usize {
    limit.max(1)
}

/// Refuses a status change the state machine does not allow.
pub fn check_transition(id: RunId, from: RunStatus, to: RunStatus) -> Result<()> {
    if from.can_transition_to(to) {
        Ok(())
    } else {
        Err(Error::InvalidTransition { run_id: id, from: from.as_str(), to: to.as_str() })
    }
}

/// Refuses a finalization to a status that is not terminal, or of a run that has ended already.
///
/// Any active run may be finalized, even `queued → succeeded`: a finalization records the
/// `run.completed` that the log already holds (the log is the source of truth), and a row that
/// missed an intermediate update (a write the disk refused) must still converge with its log.
pub fn check_finalization(id: RunId, from: RunStatus, to: RunStatus) -> Result<()> {
    if to.is_terminal() && !from.is_terminal() {
        Ok(())
    } else {
        Err(Error::InvalidTransition { run_id: id, from: from.as_str(), to: to.as_str() })
    }
}

/// Microseconds since the epoch until which a lease of `lease` taken at `now_us` holds.
pub(super) fn lease_until(now_us: i64, lease: Duration) -> i64 {
    now_us.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
}

/// Whether an idempotency key recorded at `created_at_us` still holds at `now_us`.
pub fn key_is_live(created_at_us: i64, now_us: i64) -> bool {
    let window = i64::try_from(IDEMPOTENCY_WINDOW.as_micros()).unwrap_or(i64::MAX);
    now_us.saturating_sub(created_at_us) < window
}

// ---- The memory store ----------------------------------------------------------------------------

/// Runs, documents and idempotency keys in memory, for tests and embedding. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct MemoryRunStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    runs: HashMap<RunId, StoredRun>,
    /// `(created_at_us, id)` of every run: listings walk it newest first.
    order: BTreeSet<(i64, RunId)>,
    /// `(created_at_us, id)` of the queued runs: claims walk it oldest first.
    queued: BTreeSet<(i64, RunId)>,
    documents: HashMap<DocumentId, Document>,
    keys: HashMap<(WorkspaceId, String), StoredKey>,
    /// Export cursors by (exporter, run).
    exports: HashMap<(String, RunId), u64>,
}

#[derive(Debug)]
struct StoredRun {
    run: Run,
    lease: Option<Lease>,
}

#[derive(Debug)]
struct Lease {
    owner: String,
    until_us: i64,
}

#[derive(Debug)]
struct StoredKey {
    request_hash: String,
    run_id: RunId,
    created_at_us: i64,
}

impl State {
    /// Sets a run's status, keeping the queued index in step.
    fn set_status(&mut self, id: RunId, status: RunStatus) {
        let Some(stored) = self.runs.get_mut(&id) else { return };
        let key = (stored.run.created_at.unix_micros(), id);
        stored.run.status = status;
        if status == RunStatus::Queued {
            self.queued.insert(key);
        } else {
            self.queued.remove(&key);
        }
    }
}

impl MemoryRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn in_workspace(workspace_id: Option<&WorkspaceId>, of: &WorkspaceId) -> bool {
    workspace_id.is_none_or(|w| w == of)
}

fn matches(filter: &RunFilter, run: &Run) -> bool {
    filter.workspace_id.as_ref().is_none_or(|w| *w == run.workspace_id)
        && filter.status.is_none_or(|s| s == run.status)
        && filter.configuration_id.as_ref().is_none_or(|c| *c == run.configuration_id)
}

#[async_trait]
impl RunStore for MemoryRunStore {
    async fn create_run(&self, run: &Run, idempotency: Option<&IdempotencyKey>) -> Result<CreateOutcome> {
        let mut state = self.state();
        if let Some(key) = idempotency {
            let now_us = Timestamp::now().unix_micros();
            let seen = state.keys.get(&(run.workspace_id.clone(), key.key.clone()));
            if let Some(seen) = seen
                && key_is_live(seen.created_at_us, now_us)
            {
                if seen.request_hash != key.request_hash {
                    return Ok(CreateOutcome::KeyConflict);
                }
                if let Some(existing) = state.runs.get(&seen.run_id) {
                    return Ok(CreateOutcome::Existing(existing.run.clone()));
                }
            }
        }
        if state.runs.contains_key(&run.id) {
            return Err(Error::Database(format!("run {} already exists", run.id)));
        }
        let key = (run.created_at.unix_micros(), run.id);
        state.order.insert(key);
        if run.status == RunStatus::Queued {
            state.queued.insert(key);
        }
        state.runs.insert(run.id, StoredRun { run: run.clone(), lease: None });
        if let Some(idempotency) = idempotency {
            state.keys.insert(
                (run.workspace_id.clone(), idempotency.key.clone()),
                StoredKey {
                    request_hash: idempotency.request_hash.clone(),
                    run_id: run.id,
                    created_at_us: run.created_at.unix_micros(),
                },
            );
        }
        Ok(CreateOutcome::Created(run.clone()))
    }

    async fn get_run(&self, workspace_id: Option<&WorkspaceId>, id: RunId) -> Result<Option<Run>> {
        let state = self.state();
        Ok(state.runs.get(&id).filter(|s| in_workspace(workspace_id, &s.run.workspace_id)).map(|s| s.run.clone()))
    }

    async fn list_runs(&self, filter: &RunFilter, limit: usize, cursor: Option<&str>) -> Result<RunPage> {
        let after = cursor.map(decode_cursor).transpose()?;
        let limit = page_size(limit);
        let state = self.state();
        let older = match after {
            Some(after) => state.order.range(..after),
            None => state.order.range(..),
        };
        let runs: Vec<Run> = older
            .rev()
            .filter_map(|(_, id)| state.runs.get(id))
            .filter(|s| matches(filter, &s.run))
            .take(limit.saturating_add(1))
            .map(|s| s.run.clone())
            .collect();
        Ok(RunPage::from_overfetch(runs, limit, |last| encode_cursor(last.created_at.unix_micros(), last.id)))
    }

    async fn transition(&self, id: RunId, transition: Transition) -> Result<Run> {
        let mut state = self.state();
        let stored = state.runs.get_mut(&id).ok_or(Error::RunNotFound(id))?;
        if let Some(to) = transition.to {
            check_transition(id, stored.run.status, to)?;
        }
        if let Some(build_id) = transition.build_id {
            stored.run.build_id = Some(build_id);
        }
        if let Some(started_at) = transition.started_at {
            stored.run.started_at = Some(started_at);
        }
        if let Some(sequence) = transition.last_sequence {
            stored.run.last_sequence = sequence;
        }
        if let Some(to) = transition.to {
            state.set_status(id, to);
        }
        state.runs.get(&id).map(|s| s.run.clone()).ok_or(Error::RunNotFound(id))
    }

    async fn finalize(&self, id: RunId, finalization: Finalization) -> Result<Run> {
        let mut state = self.state();
        let stored = state.runs.get_mut(&id).ok_or(Error::RunNotFound(id))?;
        check_finalization(id, stored.run.status, finalization.status)?;
        stored.run.completed_at = Some(finalization.completed_at);
        stored.run.exit_code = finalization.exit_code;
        stored.run.failure = finalization.failure;
        stored.run.summary = Some(finalization.summary);
        stored.run.last_sequence = finalization.last_sequence;
        stored.lease = None;
        state.set_status(id, finalization.status);
        state.runs.get(&id).map(|s| s.run.clone()).ok_or(Error::RunNotFound(id))
    }

    async fn claim_queued(&self, owner: &str, lease: Duration) -> Result<Option<Run>> {
        let now_us = Timestamp::now().unix_micros();
        let mut state = self.state();
        let state = &mut *state;
        for (_, id) in &state.queued {
            let Some(stored) = state.runs.get_mut(id) else { continue };
            if stored.lease.as_ref().is_some_and(|l| l.until_us > now_us) {
                continue;
            }
            stored.lease = Some(Lease { owner: owner.to_owned(), until_us: lease_until(now_us, lease) });
            return Ok(Some(stored.run.clone()));
        }
        Ok(None)
    }

    async fn renew_lease(&self, id: RunId, owner: &str, lease: Duration) -> Result<bool> {
        let now_us = Timestamp::now().unix_micros();
        let mut state = self.state();
        match state.runs.get_mut(&id).and_then(|s| s.lease.as_mut()) {
            Some(held) if held.owner == owner => {
                held.until_us = lease_until(now_us, lease);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<Run>> {
        let state = self.state();
        Ok(state
            .order
            .iter()
            .filter_map(|(_, id)| state.runs.get(id))
            .filter(|s| statuses.contains(&s.run.status))
            .map(|s| s.run.clone())
            .collect())
    }

    async fn clear_leases(&self) -> Result<()> {
        for stored in self.state().runs.values_mut() {
            stored.lease = None;
        }
        Ok(())
    }

    async fn export_cursor(&self, exporter: &str, run: RunId) -> Result<u64> {
        Ok(self.state().exports.get(&(exporter.to_owned(), run)).copied().unwrap_or(0))
    }

    async fn ack_export(&self, exporter: &str, run: RunId, sequence: u64) -> Result<()> {
        let mut state = self.state();
        let cursor = state.exports.entry((exporter.to_owned(), run)).or_default();
        *cursor = (*cursor).max(sequence);
        Ok(())
    }

    async fn export_backlog(&self, exporter: &str, after: Option<RunId>, limit: usize) -> Result<Vec<ExportBacklog>> {
        let state = self.state();
        let mut ids: Vec<RunId> = state.runs.keys().copied().filter(|id| after.is_none_or(|a| *id > a)).collect();
        ids.sort_unstable();
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let run = &state.runs.get(&id)?.run;
                let acked = state.exports.get(&(exporter.to_owned(), id)).copied().unwrap_or(0);
                (!run.status.is_terminal() || acked < run.last_sequence)
                    .then(|| ExportBacklog { run: RunKey::new(run.workspace_id.clone(), id), acked })
            })
            .take(page_size(limit))
            .collect())
    }

    async fn create_document(&self, document: &Document) -> Result<()> {
        let mut state = self.state();
        if state.documents.contains_key(&document.id) {
            return Err(Error::Database(format!("document {} already exists", document.id)));
        }
        state.documents.insert(document.id, document.clone());
        Ok(())
    }

    async fn get_document(&self, workspace_id: Option<&WorkspaceId>, id: DocumentId) -> Result<Option<Document>> {
        let state = self.state();
        Ok(state.documents.get(&id).filter(|d| in_workspace(workspace_id, &d.workspace_id)).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::conformance::{self, queued_run};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conforms() {
        conformance::run_all(&|| async { (Arc::new(MemoryRunStore::new()) as Arc<dyn RunStore>, ()) }).await;
    }

    #[tokio::test]
    async fn clones_share_the_runs() {
        let store = MemoryRunStore::new();
        let clone = store.clone();
        let run = queued_run("acme", "members");
        store.create_run(&run, None).await.expect("create");
        assert_eq!(clone.get_run(None, run.id).await.expect("get"), Some(run));
    }

    #[test]
    fn cursors_round_trip() {
        let id = RunId::new();
        for micros in [0, 1, -5, i64::MAX, 1_764_183_177_802_612] {
            assert_eq!(decode_cursor(&encode_cursor(micros, id)).ok(), Some((micros, id)));
        }
    }
}
