//! Event storage (SPEC §6): the [`EventStore`] trait and its backends.
//!
//! A store keeps one log per run. Appends come from the run's single writer, in batches that must
//! continue the log exactly (first sequence = stored last + 1, then +1 each), so two writers can
//! never store the same `(run_id, sequence)`. Reads return the events after a sequence, in order,
//! as a stream, without loading the whole log.

#[cfg(any(test, feature = "test-util"))]
pub mod faults;
mod memory;
mod ndjson;
mod runs;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use memory::MemoryEventStore;
pub use ndjson::NdjsonEventStore;
#[cfg(any(test, feature = "test-util"))]
pub use runs::conformance as run_conformance;
#[cfg(test)]
pub(crate) use runs::conformance::queued_run;
pub use runs::{
    CreateOutcome, Document, ExportBacklog, Finalization, IDEMPOTENCY_WINDOW, IdempotencyKey, MemoryRunStore,
    RunFilter, RunPage, RunStore, SqliteRunStore, Transition, sql,
};

use crate::error::{Error, Result};
use crate::event::{RunId, StoredEvent, WorkspaceId};

/// A stream of stored events, in sequence order.
pub type EventStream = BoxStream<'static, Result<Arc<StoredEvent>>>;

/// Names one run's log: the workspace is part of where the embedded store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    /// The run's workspace.
    pub workspace_id: WorkspaceId,
    /// The run.
    pub run_id: RunId,
}

impl RunKey {
    /// The key of `run_id` in `workspace_id`.
    pub fn new(workspace_id: WorkspaceId, run_id: RunId) -> Self {
        Self { workspace_id, run_id }
    }
}

/// The end of a run's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogTail {
    /// The last stored sequence; 0 for an empty (or absent) log.
    pub last_sequence: u64,
    /// Whether the last event is `run.completed`: nothing will ever follow.
    pub terminal: bool,
}

/// Whether an append waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Written to the operating system per batch: survives a process crash, not a power loss.
    #[default]
    Buffered,
    /// Written and fsynced per batch: survives a power loss.
    Fsync,
}

/// Where runs' event logs live.
#[async_trait]
pub trait EventStore: Send + Sync + Debug + 'static {
    /// Appends a batch of one run's events.
    ///
    /// The batch must be non-empty, contiguous, and start right after the stored last sequence;
    /// otherwise nothing is written and [`Error::SequenceConflict`] is returned. Nothing may follow
    /// a stored `run.completed` ([`Error::RunComplete`]). On success every event of the batch is
    /// stored; on failure none is visible to readers.
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], durability: Durability) -> Result<()>;

    /// [`append`](Self::append), only while `owner` holds the run's lease (fencing): a store
    /// shared by several processes refuses the batch with [`Error::LeaseLost`] once another
    /// process has taken the run over, so a paused old owner can never write after a takeover.
    /// A store used by one process only has no one to fence off; the default just appends.
    async fn append_leased(
        &self,
        run: &RunKey,
        events: &[Arc<StoredEvent>],
        durability: Durability,
        owner: &str,
    ) -> Result<()> {
        let _ = owner;
        self.append(run, events, durability).await
    }

    /// The events with `sequence > after`, in order, as they are stored when the read reaches
    /// them. An absent log is an empty stream.
    async fn read_after(&self, run: &RunKey, after: u64) -> Result<EventStream>;

    /// The end of the run's log.
    async fn tail(&self, run: &RunKey) -> Result<LogTail>;

    /// The run's writer is done: the store may drop what it keeps open for appends.
    async fn release(&self, _run: &RunKey) {}
}

/// Checks that `events` continue a log whose tail is `tail`: the batch is non-empty, contiguous,
/// starts right after `tail.last_sequence`, belongs to `run`, and follows no `run.completed`; a
/// `run.completed` may only be the batch's last event. What every [`EventStore::append`] must
/// check before it writes anything ([`Error::SequenceConflict`], [`Error::RunComplete`]).
///
/// # Errors
/// The first rule the batch breaks.
pub fn check_continues(run: &RunKey, tail: LogTail, events: &[Arc<StoredEvent>]) -> Result<()> {
    if tail.terminal {
        return Err(Error::RunComplete(run.run_id));
    }
    let last = tail.last_sequence + events.len() as u64;
    for (expected, event) in (tail.last_sequence + 1..).zip(events) {
        if event.sequence() != expected || event.envelope()?.run_id != run.run_id {
            return Err(Error::SequenceConflict { run_id: run.run_id, expected, got: event.sequence() });
        }
        if event.is_terminal() && expected != last {
            // run.completed must be the last event of its batch, and so of the log.
            return Err(Error::RunComplete(run.run_id));
        }
    }
    Ok(())
}

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
