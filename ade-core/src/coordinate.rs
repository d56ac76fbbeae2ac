//! Coordination between runtimes that share their stores (SPEC §6): who executes which run,
//! how a cancel reaches the process executing the run, and what one process tells the others.
//!
//! A runtime alone on its stores (memory, or the data directory it locks) needs no
//! [`Coordinator`]: its queue, writers and cancel switches live in the process, and recovery at
//! start-up ends whatever a dead predecessor left active. Several runtimes on one database need
//! one (`ade-postgres` provides it): runs are claimed under leases kept in the database, writes are
//! fenced by those leases, a run whose lease expires is ended by another instance, and cancels and
//! appends are announced to every instance.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::event::RunId;
use crate::run::Run;
use crate::store::{CreateOutcome, EventStore, IdempotencyKey, RunStore};

/// Leases, claims, cancels and announcements between the runtimes that share a backend's stores.
///
/// The run store keeps the runs; a coordinator decides which process may work on them. Every
/// method is called with this process's lease owner name (unique per runtime).
#[async_trait]
pub trait Coordinator: Send + Sync + Debug + 'static {
    /// Stores a new run as [`RunStore::create_run`](crate::store::RunStore::create_run) does,
    /// leased to `owner` for `lease`, so that no worker of another process claims it before its
    /// creator has written `run.queued` and called [`release`](Self::release) (if the creator
    /// dies first, the lease expires and the run is claimed as usual).
    async fn create_run(
        &self,
        run: &Run,
        idempotency: Option<&IdempotencyKey>,
        owner: &str,
        lease: Duration,
    ) -> Result<CreateOutcome>;

    /// Gives up `owner`'s lease on a queued run, so any worker may claim it now, and tells the
    /// other processes there is work.
    async fn release(&self, id: RunId, owner: &str) -> Result<()>;

    /// Takes over, for `owner` until `lease` from now, the oldest `building` or `running` run
    /// whose lease has expired: its process is gone (or too slow to renew), and the taker ends it.
    async fn claim_abandoned(&self, owner: &str, lease: Duration) -> Result<Option<Run>>;

    /// Claims one queued run, for `owner` until `lease` from now, if no live lease holds it (to
    /// cancel it); `None` otherwise.
    async fn claim_run(&self, id: RunId, owner: &str, lease: Duration) -> Result<Option<Run>>;

    /// Records that someone asked to cancel a run another process executes, and announces it
    /// ([`Announcement::CancelRequested`]).
    async fn request_cancel(&self, id: RunId) -> Result<()>;

    /// Whether a cancel was requested with [`request_cancel`](Self::request_cancel) (a worker
    /// asks between its claim and the engine's start, when an announcement may have been missed).
    async fn cancel_requested(&self, id: RunId) -> Result<bool>;

    /// What the processes announce from now on, this one included. Called once, when the runtime
    /// is built.
    async fn announcements(&self) -> Result<Announcements>;
}

/// Something a process announced (through the database, for PostgreSQL: `LISTEN`/`NOTIFY`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Announcement {
    /// Events of `run_id` up to `last_sequence` were appended: local subscribers may read them.
    Appended {
        /// The run.
        run_id: RunId,
        /// The last sequence of the appended batch.
        last_sequence: u64,
    },
    /// A queued run may be claimed.
    Work,
    /// Someone asked to cancel `run_id`.
    CancelRequested(RunId),
    /// The listener lost its connection and has a new one: announcements may have been missed,
    /// so whoever waits on one should look at the stores again.
    Resync,
}

/// The announcements a process receives, in the order they were made; it never ends while the
/// process lives.
pub type Announcements = BoxStream<'static, Announcement>;

/// Stores that come together, and the coordinator of the runtimes that share them: what a
/// backend crate hands to [`RuntimeBuilder::backend`](crate::RuntimeBuilder::backend)
/// (`ade_postgres::connect`, for several runtimes on one PostgreSQL database).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Backend {
    /// Where runs' event logs live.
    pub events: Arc<dyn EventStore>,
    /// Where runs, documents' metadata and idempotency keys live.
    pub runs: Arc<dyn RunStore>,
    /// Who executes which run, when other processes share the stores; `None` when the stores
    /// belong to one runtime (recovery at start-up then ends whatever was left active).
    pub coordinator: Option<Arc<dyn Coordinator>>,
}

impl Backend {
    /// Stores used by one runtime only.
    pub fn new(events: Arc<dyn EventStore>, runs: Arc<dyn RunStore>) -> Self {
        Self { events, runs, coordinator: None }
    }

    /// Stores shared by several runtimes, which `coordinator` keeps from getting in each other's way.
    pub fn shared(events: Arc<dyn EventStore>, runs: Arc<dyn RunStore>, coordinator: Arc<dyn Coordinator>) -> Self {
        Self { events, runs, coordinator: Some(coordinator) }
    }
}
