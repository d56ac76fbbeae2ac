//! [`PgEventStore`]: runs' event logs in table `ade_events`.
//!
//! An append is one transaction: it reads the log's tail, inserts the whole batch with one
//! `INSERT … SELECT FROM UNNEST(…)` and calls `pg_notify('ade_events', '<run_id>:<last sequence>')`,
//! which PostgreSQL delivers on commit only. The primary key `(run_id, sequence)` is the last word:
//! of two writers that raced past the tail check, one fails. Reads go through the primary key, one
//! bounded page at a time.

use std::sync::Arc;

use ade_core::event::StoredEvent;
use ade_core::store::sql::to_i64;
use ade_core::store::{Durability, EventStore, EventStream, LogTail, RunKey, check_continues};
use ade_core::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};

use crate::database::{connect, db, migrate};

/// How many events a read fetches per query.
const READ_PAGE: i64 = 256;

/// Runs' event logs in table `ade_events` of a PostgreSQL database. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PgEventStore {
    pool: PgPool,
}

impl PgEventStore {
    /// The channel every append notifies, with payload `<run_id>:<last sequence of the batch>`.
    pub const NOTIFY_CHANNEL: &str = "ade_events";

    /// Connects to `url` (`postgres://user@host:port/database`) and brings the schema up to date.
    ///
    /// # Errors
    /// [`Error::Database`] when the database cannot be reached or migrated, or was written by a
    /// newer version of ade.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::with_pool(connect(url).await?).await
    }

    /// A store on `pool` (whose connections' `search_path` names the schema), after bringing the
    /// schema up to date.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn with_pool(pool: PgPool) -> Result<Self> {
        migrate(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends in the transaction `tx`, which the caller commits or rolls back; with `owner`,
    /// only while `owner` holds the run's lease.
    async fn append_in(
        tx: &mut PgConnection,
        run: &RunKey,
        events: &[Arc<StoredEvent>],
        durability: Durability,
        owner: Option<&str>,
    ) -> Result<()> {
        let Some(last) = events.last() else { return Ok(()) };
        if let Some(owner) = owner {
            // The share lock holds off a takeover (an UPDATE of the lease) until this batch is
            // committed; once the lease is another's, this check refuses every later batch.
            let holder: Option<Option<String>> =
                sqlx::query_scalar("SELECT lease_owner FROM ade_runs WHERE id = $1 FOR SHARE")
                    .bind(run.run_id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if holder.flatten().as_deref() != Some(owner) {
                return Err(Error::LeaseLost(run.run_id));
            }
        }
        if durability == Durability::Buffered {
            // The commit does not wait for the WAL flush: a crash of the database server may lose
            // the last batches, never tear one.
            sqlx::query("SET LOCAL synchronous_commit TO off").execute(&mut *tx).await.map_err(db)?;
        }
        check_continues(run, Self::tail_on(&mut *tx, run).await?, events)?;
        let mut sequences = Vec::with_capacity(events.len());
        let mut terminals = Vec::with_capacity(events.len());
        let mut lines: Vec<&[u8]> = Vec::with_capacity(events.len());
        for event in events {
            sequences.push(to_i64(event.sequence(), "sequence")?);
            terminals.push(event.is_terminal());
            lines.push(event.json());
        }
        sqlx::query(
            "INSERT INTO ade_events (workspace_id, run_id, sequence, terminal, json)
             SELECT $1, $2, s, t, j FROM UNNEST($3::BIGINT[], $4::BOOLEAN[], $5::BYTEA[]) AS batch (s, t, j)",
        )
        .bind(run.workspace_id.as_str())
        .bind(run.run_id.to_string())
        .bind(&sequences)
        .bind(&terminals)
        .bind(&lines)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            // Another writer got there first; `expected: 0` (never a real one) asks the caller to
            // read the new tail after the rollback.
            sqlx::Error::Database(e) if e.is_unique_violation() => Error::SequenceConflict {
                run_id: run.run_id,
                expected: 0,
                got: events.first().map_or(0, |e| e.sequence()),
            },
            e => db(e),
        })?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(Self::NOTIFY_CHANNEL)
            .bind(format!("{}:{}", run.run_id, last.sequence()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn tail_on(conn: &mut PgConnection, run: &RunKey) -> Result<LogTail> {
        let row = sqlx::query(
            "SELECT sequence, terminal FROM ade_events
             WHERE run_id = $1 AND workspace_id = $2
             ORDER BY sequence DESC LIMIT 1",
        )
        .bind(run.run_id.to_string())
        .bind(run.workspace_id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(LogTail::default()) };
        let sequence: i64 = row.try_get("sequence").map_err(db)?;
        Ok(LogTail {
            last_sequence: u64::try_from(sequence)
                .map_err(|_| Error::Database(format!("negative sequence {sequence}")))?,
            terminal: row.try_get("terminal").map_err(db)?,
        })
    }

    /// Up to `READ_PAGE` events after `after`.
    async fn page_after(&self, run: &RunKey, after: u64) -> Result<Vec<Arc<StoredEvent>>> {
        let rows = sqlx::query(
            "SELECT json FROM ade_events
             WHERE run_id = $1 AND workspace_id = $2 AND sequence > $3
             ORDER BY sequence LIMIT $4",
        )
        .bind(run.run_id.to_string())
        .bind(run.workspace_id.as_str())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(READ_PAGE)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let json: Vec<u8> = row.try_get("json").map_err(db)?;
                Ok(Arc::new(StoredEvent::from_stored_json(Bytes::from(json))?))
            })
            .collect()
    }
}

impl PgEventStore {
    async fn append_as(
        &self,
        run: &RunKey,
        events: &[Arc<StoredEvent>],
        durability: Durability,
        owner: Option<&str>,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let mut tx = conn.begin().await.map_err(db)?;
        match Self::append_in(&mut tx, run, events, durability, owner).await {
            Ok(()) => tx.commit().await.map_err(db),
            Err(error) => {
                // Roll back now, not when the connection is next used: nothing of the batch stays.
                tx.rollback().await.map_err(db)?;
                match error {
                    Error::SequenceConflict { expected: 0, got, .. } => {
                        let tail = Self::tail_on(&mut conn, run).await?;
                        Err(if tail.terminal {
                            Error::RunComplete(run.run_id)
                        } else {
                            Error::SequenceConflict { run_id: run.run_id, expected: tail.last_sequence + 1, got }
                        })
                    }
                    error => Err(error),
                }
            }
        }
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], durability: Durability) -> Result<()> {
        self.append_as(run, events, durability, None).await
    }

    async fn append_leased(
        &self,
        run: &RunKey,
        events: &[Arc<StoredEvent>],
        durability: Durability,
        owner: &str,
    ) -> Result<()> {
        self.append_as(run, events, durability, Some(owner)).await
    }

    async fn read_after(&self, run: &RunKey, after: u64) -> Result<EventStream> {
        let store = self.clone();
        let run = run.clone();
        // Page after page through the primary key; one page in memory at a time.
        let pages = futures::stream::unfold(Some(after), move |after| {
            let store = store.clone();
            let run = run.clone();
            async move {
                let after = after?;
                match store.page_after(&run, after).await {
                    Ok(page) => {
                        let last = page.last()?.sequence();
                        let next = (page.len() as i64 == READ_PAGE).then_some(last);
                        Some((futures::stream::iter(page.into_iter().map(Ok)).boxed(), next))
                    }
                    Err(error) => Some((futures::stream::iter([Err(error)]).boxed(), None)),
                }
            }
        });
        Ok(pages.flatten().boxed())
    }

    async fn tail(&self, run: &RunKey) -> Result<LogTail> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        Self::tail_on(&mut conn, run).await
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use ade_core::store::conformance;
    use ade_core::test_util::{lines, run_key};

    use super::*;
    use crate::database::SCHEMA_VERSION;
    use crate::test_util as testing;

    #[tokio::test]
    async fn conforms() {
        let Some(url) = testing::url() else { return };
        conformance::run_all(&|| async {
            let (pool, schema) = testing::fresh_schema(&url).await;
            (Arc::new(PgEventStore::with_pool(pool).await.expect("open")) as Arc<dyn EventStore>, schema)
        })
        .await;
    }

    #[tokio::test]
    async fn reads_give_back_the_exact_lines_and_appends_notify() {
        let Some(url) = testing::url() else { return };
        let (pool, _schema) = testing::fresh_schema(&url).await;
        let store = PgEventStore::with_pool(pool.clone()).await.expect("open");
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.expect("listener");
        listener.listen(PgEventStore::NOTIFY_CHANNEL).await.expect("listen");
        let run = run_key("acme");
        let written = lines(&run, 1, 600);
        store.append(&run, &written, Durability::Buffered).await.expect("append");
        let read: Vec<_> = store.read_after(&run, 0).await.expect("read").try_collect().await.expect("events");
        assert_eq!(read.len(), written.len());
        assert!(read.iter().zip(&written).all(|(r, w)| r.json() == w.json()), "identical bytes");
        // The channel is the database's, not the schema's: tests running beside this one notify
        // on it too, so look for this run's notification.
        let ours = format!("{}:", run.run_id);
        let payload = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                let notification = listener.recv().await.expect("notification");
                if notification.payload().starts_with(&ours) {
                    return notification.payload().to_owned();
                }
            }
        })
        .await
        .expect("this run's notification arrives");
        assert_eq!(payload, format!("{}:600", run.run_id), "one notification per batch, with its last sequence");
        // Opening again (another instance) finds the schema current.
        PgEventStore::with_pool(pool).await.expect("reopen");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_writers_on_two_instances_store_one_batch() {
        let Some(url) = testing::url() else { return };
        let (pool, schema) = testing::fresh_schema(&url).await;
        let a = PgEventStore::with_pool(pool).await.expect("open a");
        let b = PgEventStore::with_pool(schema.connect().await).await.expect("open b");
        let run = run_key("acme");
        for first in (1..=60).step_by(3) {
            let (batch_a, batch_b) = (lines(&run, first, first + 2), lines(&run, first, first + 2));
            let (from_a, from_b) = tokio::join!(
                a.append(&run, &batch_a, Durability::Buffered),
                b.append(&run, &batch_b, Durability::Buffered),
            );
            let (won, lost) = if from_a.is_ok() { (from_a, from_b) } else { (from_b, from_a) };
            assert!(won.is_ok(), "{won:?}");
            let expected = first + 3;
            assert!(
                matches!(lost, Err(Error::SequenceConflict { expected: e, got, .. }) if e == expected && got == first),
                "{lost:?}"
            );
        }
        let read: Vec<_> = a.read_after(&run, 0).await.expect("read").try_collect().await.expect("events");
        assert_eq!(read.iter().map(|e| e.sequence()).collect::<Vec<_>>(), (1..=60).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_schema_version_is_set_and_a_newer_one_is_refused() {
        let Some(url) = testing::url() else { return };
        let (pool, _schema) = testing::fresh_schema(&url).await;
        let store = PgEventStore::with_pool(pool.clone()).await.expect("open");
        let version: i64 = sqlx::query_scalar("SELECT version FROM ade_schema_version")
            .fetch_one(store.pool())
            .await
            .expect("version");
        assert_eq!(version, i64::try_from(SCHEMA_VERSION).expect("small"));
        sqlx::query("UPDATE ade_schema_version SET version = version + 1").execute(&pool).await.expect("bump");
        let newer = crate::PgRunStore::with_pool(pool).await;
        assert!(matches!(newer, Err(Error::Database(ref m)) if m.contains("newer")), "{newer:?}");
    }
}
