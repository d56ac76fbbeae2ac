//! [`PgCoordinator`]: several runtimes on one PostgreSQL database, as one system (SPEC §6).
//!
//! Leases are columns of `ade_runs`, on the database's clock: a run is created leased to its
//! creator until `run.queued` is written, claimed with `FOR UPDATE SKIP LOCKED`, and taken over by
//! another instance once its lease expires. Work, cancel requests and appends are announced with
//! `pg_notify`, delivered on commit, to every instance's listener.

use std::time::Duration;

use ade_core::Result;
use ade_core::coordinate::{Announcement, Announcements, Coordinator};
use ade_core::event::RunId;
use ade_core::run::Run;
use ade_core::store::{CreateOutcome, IdempotencyKey};
use async_trait::async_trait;
use futures::StreamExt;
use sqlx::postgres::{PgListener, PgPool};

use crate::database::db;
use crate::events::PgEventStore;
use crate::runs::{PgRunStore, lease_us, run_from_row};

/// Leases, claims, cancels and announcements of the runtimes on one database (the tables of a
/// [`PgRunStore`]). Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PgCoordinator {
    runs: PgRunStore,
}

impl PgCoordinator {
    /// The coordinator of the runs `runs` keeps.
    pub fn new(runs: PgRunStore) -> Self {
        Self { runs }
    }
}

#[async_trait]
impl Coordinator for PgCoordinator {
    async fn create_run(
        &self,
        run: &Run,
        idempotency: Option<&IdempotencyKey>,
        owner: &str,
        lease: Duration,
    ) -> Result<CreateOutcome> {
        self.runs.create(run, idempotency, Some((owner, lease))).await
    }

    async fn release(&self, id: RunId, owner: &str) -> Result<()> {
        // Released and announced in one statement: the notification goes out on commit.
        sqlx::query(
            "WITH released AS (
                 UPDATE ade_runs SET lease_owner = NULL, lease_until_us = NULL
                 WHERE id = $1 AND lease_owner = $2 AND status = 'queued'
                 RETURNING id
             )
             SELECT pg_notify($3, '') FROM released",
        )
        .bind(id.to_string())
        .bind(owner)
        .bind(WORK_CHANNEL)
        .execute(self.runs.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn claim_abandoned(&self, owner: &str, lease: Duration) -> Result<Option<Run>> {
        self.runs
            .claim_first(
                "UPDATE ade_runs SET lease_owner = $1, lease_until_us = ade_now_us() + $2
             WHERE id = (
                 SELECT id FROM ade_runs
                 WHERE status IN ('building', 'running')
                   AND (lease_until_us IS NULL OR lease_until_us <= ade_now_us())
                 ORDER BY lease_until_us NULLS FIRST, id
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED
             )
             RETURNING *",
                owner,
                lease,
            )
            .await
    }

    async fn claim_run(&self, id: RunId, owner: &str, lease: Duration) -> Result<Option<Run>> {
        let row = sqlx::query(
            "UPDATE ade_runs SET lease_owner = $2, lease_until_us = ade_now_us() + $3
             WHERE id = $1 AND status = 'queued' AND (lease_until_us IS NULL OR lease_until_us <= ade_now_us())
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(owner)
        .bind(lease_us(lease))
        .fetch_optional(self.runs.pool())
        .await
        .map_err(db)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn request_cancel(&self, id: RunId) -> Result<()> {
        sqlx::query(
            "WITH requested AS (
                 UPDATE ade_runs SET cancel_requested = TRUE
                 WHERE id = $1 AND status IN ('queued', 'building', 'running')
                 RETURNING id
             )
             SELECT pg_notify($2, 'cancel:' || id) FROM requested",
        )
        .bind(id.to_string())
        .bind(CONTROL_CHANNEL)
        .execute(self.runs.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn cancel_requested(&self, id: RunId) -> Result<bool> {
        let requested: Option<bool> = sqlx::query_scalar("SELECT cancel_requested FROM ade_runs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.runs.pool())
            .await
            .map_err(db)?;
        Ok(requested.unwrap_or(false))
    }

    async fn announcements(&self) -> Result<Announcements> {
        listen(self.runs.pool()).await
    }
}

/// The channel a released queued run is announced on (payload empty): workers of every instance
/// may claim it.
const WORK_CHANNEL: &str = "ade_work";

/// The channel cancel requests are announced on, payload `cancel:<run_id>`.
const CONTROL_CHANNEL: &str = "ade_control";

/// Listens on the channels of every announcement (events appended, work, control) with one
/// connection of `pool`. Listening has begun when this returns, so nothing announced after it is
/// missed; a lost connection is re-established and reported as [`Announcement::Resync`].
///
/// # Errors
/// [`ade_core::Error::Database`] when the first connection cannot be made.
async fn listen(pool: &PgPool) -> Result<Announcements> {
    let mut listener = PgListener::connect_with(pool).await.map_err(db)?;
    listener.listen_all([PgEventStore::NOTIFY_CHANNEL, WORK_CHANNEL, CONTROL_CHANNEL]).await.map_err(db)?;
    let announcements = futures::stream::unfold(listener, |mut listener| async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let payload = notification.payload();
                    let announcement = match notification.channel() {
                        PgEventStore::NOTIFY_CHANNEL => appended(payload),
                        WORK_CHANNEL => Some(Announcement::Work),
                        CONTROL_CHANNEL => control(payload),
                        _ => None,
                    };
                    match announcement {
                        Some(announcement) => return Some((announcement, listener)),
                        None => tracing::warn!(channel = notification.channel(), payload, "ignoring a notification"),
                    }
                }
                // Reconnected (and listening again): what was announced meanwhile is lost.
                Ok(None) => return Some((Announcement::Resync, listener)),
                Err(error) => {
                    tracing::warn!(%error, "lost the PostgreSQL listener; reconnecting");
                    tokio::time::sleep(LISTEN_RETRY).await;
                }
            }
        }
    });
    Ok(announcements.boxed())
}

/// How long to wait before reconnecting a listener that failed to reconnect.
const LISTEN_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Parses a notification's payload `<run_id>:<last sequence>`.
fn appended(payload: &str) -> Option<Announcement> {
    let (run_id, sequence) = payload.split_once(':')?;
    Some(Announcement::Appended { run_id: run_id.parse().ok()?, last_sequence: sequence.parse().ok()? })
}

/// Parses a control notification's payload (`cancel:<run_id>`).
fn control(payload: &str) -> Option<Announcement> {
    let run_id = payload.strip_prefix("cancel:")?;
    Some(Announcement::CancelRequested(run_id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use ade_core::run::RunStatus;
    use ade_core::store::run_conformance::queued_run;
    use ade_core::store::{RunStore, Transition};

    use super::*;
    use crate::test_util as testing;

    #[test]
    fn payloads_parse_and_garbage_is_ignored() {
        let run_id = RunId::new();
        assert_eq!(appended(&format!("{run_id}:42")), Some(Announcement::Appended { run_id, last_sequence: 42 }));
        assert_eq!(control(&format!("cancel:{run_id}")), Some(Announcement::CancelRequested(run_id)));
        for garbage in ["", "nope", "run_x:1", &format!("{run_id}:-1"), &format!("{run_id}"), "cancel:"] {
            assert_eq!(appended(garbage), None, "{garbage}");
            assert_eq!(control(garbage), None, "{garbage}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn leases_hold_off_claims_until_released_or_expired() {
        let Some(url) = testing::url() else { return };
        let (pool, _schema) = testing::fresh_schema(&url).await;
        let store = PgRunStore::with_pool(pool).await.expect("open");
        let coordinator = PgCoordinator::new(store.clone());
        let long = Duration::from_secs(60);
        // Created leased: nobody claims it until its creator releases it.
        let run = queued_run("acme", "members");
        assert!(matches!(
            coordinator.create_run(&run, None, "creator", long).await.expect("create"),
            CreateOutcome::Created(_)
        ));
        assert_eq!(store.claim_queued("worker", long).await.expect("claim"), None);
        assert_eq!(coordinator.claim_run(run.id, "canceller", long).await.expect("claim one"), None);
        coordinator.release(run.id, "someone else").await.expect("release");
        assert_eq!(store.claim_queued("worker", long).await.expect("claim"), None, "only the holder releases");
        coordinator.release(run.id, "creator").await.expect("release");
        let claimed = store.claim_queued("worker", long).await.expect("claim").expect("claimable now");
        assert_eq!(claimed.id, run.id);
        // A running run is abandoned only once its lease has expired.
        store.transition(run.id, Transition::to(RunStatus::Building)).await.expect("building");
        store.transition(run.id, Transition::to(RunStatus::Running)).await.expect("running");
        assert_eq!(coordinator.claim_abandoned("reaper", long).await.expect("reap"), None);
        assert!(store.renew_lease(run.id, "worker", Duration::ZERO).await.expect("renew"));
        let taken = coordinator.claim_abandoned("reaper", long).await.expect("reap").expect("expired");
        assert_eq!(taken.id, run.id);
        assert!(!store.renew_lease(run.id, "worker", long).await.expect("renew"), "the old owner lost it");
        assert_eq!(coordinator.claim_abandoned("another", long).await.expect("reap"), None, "taken once");
        // Cancel requests are recorded for whoever holds the run.
        assert!(!coordinator.cancel_requested(run.id).await.expect("flag"));
        coordinator.request_cancel(run.id).await.expect("request");
        assert!(coordinator.cancel_requested(run.id).await.expect("flag"));
    }
}
