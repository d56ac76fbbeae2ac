//! The run store (SPEC §3, §6): runs, documents and idempotency keys, behind [`RunStore`].

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::event::{BuildId, DocumentId, RunId, Timestamp, WorkspaceId};
use crate::run::{Failure, Run, RunStatus};
use crate::summary::RunSummary;

pub use crate::run::{Document, RunFilter};

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<Run>,
    /// Where the next page starts; `None` on the last page. Opaque to callers.
    pub next_cursor: Option<String>,
}

impl RunPage {
    /// A page from up to `limit + 1` runs fetched in order: the extra one only says that there is
    /// a next page, which starts after the page's last run.
    pub fn from_overfetch(mut runs: Vec<Run>, limit: usize, cursor: impl Fn(&Run) -> String) -> Self {
        let next_cursor = if runs.len() > limit {
            runs.truncate(limit);
            runs.last().map(cursor)
        } else {
            None
        };
        Self { runs, next_cursor }
    }
}

/// An `Idempotency-Key` with the hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key, as the client sent it.
    pub key: String,
    /// Hash of the request body; the same key with another body is a conflict.
    pub request_hash: String,
}

/// How long an idempotency key holds.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// What [`RunStore::create_run`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CreateOutcome {
    /// The run was stored.
    Created(Run),
    /// The idempotency key was seen with the same request within the window: this is that run.
    Existing(Run),
    /// The idempotency key was seen with a different request: nothing was stored.
    KeyConflict,
}

/// Changes that go with a status transition.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Transition {
    /// The new status.
    pub to: Option<RunStatus>,
    /// Set the build id.
    pub build_id: Option<BuildId>,
    /// Set when the engine started.
    pub started_at: Option<Timestamp>,
    /// Set the last sequence.
    pub last_sequence: Option<u64>,
}

impl Transition {
    /// A transition to `status`.
    pub fn to(status: RunStatus) -> Self {
        Self { to: Some(status), ..Self::default() }
    }

    /// With a build id.
    #[must_use]
    pub fn build_id(mut self, build_id: BuildId) -> Self {
        self.build_id = Some(build_id);
        self
    }

    /// With a start time.
    #[must_use]
    pub fn started_at(mut self, at: Timestamp) -> Self {
        self.started_at = Some(at);
        self
    }

    /// With the last sequence.
    #[must_use]
    pub fn last_sequence(mut self, sequence: u64) -> Self {
        self.last_sequence = Some(sequence);
        self
    }
}

/// The terminal state of a run, written in the same step as its `run.completed` is persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct Finalization {
    /// `succeeded`, `failed` or `cancelled`.
    pub status: RunStatus,
    /// When it ended.
    pub completed_at: Timestamp,
    /// The engine's exit code.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The run summary of `run.completed`.
    pub summary: RunSummary,
    /// The sequence of `run.completed`.
    pub last_sequence: u64,
}

/// A run an exporter has not acknowledged to its end (see [`RunStore::export_backlog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportBacklog {
    /// The run's log.
    pub run: crate::store::RunKey,
    /// The last sequence the exporter acknowledged (0: none).
    pub acked: u64,
}

impl ExportBacklog {
    /// `run`, acknowledged up to `acked` (for run stores outside this crate).
    pub fn new(run: crate::store::RunKey, acked: u64) -> Self {
        Self { run, acked }
    }
}

/// Where runs, documents and idempotency keys live.
///
/// Every method that names a run or document by id also takes its workspace when the caller is
/// scoped to one: an object of another workspace is `None`, exactly as if it did not exist.
#[async_trait]
pub trait RunStore: Send + Sync + Debug + 'static {
    /// Stores a new run (status `queued`), honouring an idempotency key within
    /// [`IDEMPOTENCY_WINDOW`] in the run's workspace.
    async fn create_run(&self, run: &Run, idempotency: Option<&IdempotencyKey>) -> Result<CreateOutcome>;

    /// A run by id, `None` when absent or in another workspace than `workspace_id` (when given).
    async fn get_run(&self, workspace_id: Option<&WorkspaceId>, id: RunId) -> Result<Option<Run>>;

    /// Runs matching `filter`, newest first (`created_at`, then id), at most `limit`, starting
    /// after `cursor` (from a previous page).
    ///
    /// # Errors
    /// [`Error::InvalidCursor`](crate::Error::InvalidCursor) for a cursor this store did not make.
    async fn list_runs(&self, filter: &RunFilter, limit: usize, cursor: Option<&str>) -> Result<RunPage>;

    /// Applies a transition; the status change must be allowed by the state machine from the
    /// current status.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) when it is not (the run is
    /// unchanged); [`Error::RunNotFound`](crate::Error::RunNotFound).
    async fn transition(&self, id: RunId, transition: Transition) -> Result<Run>;

    /// Makes the run terminal with its summary, and releases its lease.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) when it already is terminal;
    /// [`Error::RunNotFound`](crate::Error::RunNotFound).
    async fn finalize(&self, id: RunId, finalization: Finalization) -> Result<Run>;

    /// Claims the oldest queued run that no live lease holds, for `owner` until `lease` from now.
    async fn claim_queued(&self, owner: &str, lease: Duration) -> Result<Option<Run>>;

    /// Extends `owner`'s lease on a run; `false` when `owner` no longer holds it.
    async fn renew_lease(&self, id: RunId, owner: &str, lease: Duration) -> Result<bool>;

    /// Every run in one of `statuses` (for recovery at start-up), oldest first.
    async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<Run>>;

    /// Drops every lease (at start-up of the only process using the store: whoever held them is
    /// gone).
    async fn clear_leases(&self) -> Result<()>;

    // Leases taken for other processes, cancels between them and their announcements are a
    // `Coordinator`'s (crate::coordinate), given with the stores it coordinates.

    /// The last sequence of `run` that the exporter named `exporter` acknowledged; 0 when none.
    async fn export_cursor(&self, exporter: &str, run: RunId) -> Result<u64>;

    /// Records, durably, that the exporter named `exporter` has every event of `run` up to
    /// `sequence`. A cursor never moves back: acknowledging less than it holds changes nothing.
    async fn ack_export(&self, exporter: &str, run: RunId, sequence: u64) -> Result<()>;

    /// Runs the exporter named `exporter` may not have every event of, ordered by id, after
    /// `after` (the last id of the previous page), at most `limit`: every run not terminal yet
    /// (its log may grow), and every terminal run whose cursor is behind its `last_sequence`.
    async fn export_backlog(&self, exporter: &str, after: Option<RunId>, limit: usize) -> Result<Vec<ExportBacklog>>;

    /// Stores a document's metadata.
    async fn create_document(&self, document: &Document) -> Result<()>;

    /// A document by id, `None` when absent or in another workspace than `workspace_id`.
    async fn get_document(&self, workspace_id: Option<&WorkspaceId>, id: DocumentId) -> Result<Option<Document>>;
}

mod memory;
mod sqlite;

/// What SQL run stores share (SQLite here, PostgreSQL in `ade-postgres`): rows decoded into runs,
/// documents and export backlogs, the state machine's checks, page cursors, value conversions.
pub mod sql {
    pub use super::memory::{
        check_finalization, check_transition, decode_cursor, encode_cursor, key_is_live, page_size,
    };
    pub use super::sqlite::{
        Columns, backlog_from_row, document_from_row, enum_text, finalizable_statuses, from_enum_text, json, json_opt,
        now_us, run_from_row, statuses_before, to_i64,
    };
}

pub use memory::MemoryRunStore;
pub use sqlite::SqliteRunStore;

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
