//! The PostgreSQL backend (SPEC §6, feature `postgres`): the schema every PostgreSQL store shares,
//! and [`PgEventStore`], the event logs in table `ade_events`.
//!
//! The schema is created and migrated when a store opens (`ade_schema_version` holds its version;
//! concurrent openers take turns on an advisory lock). An append is one transaction: it reads the
//! log's tail, inserts the whole batch with one `INSERT … SELECT FROM UNNEST(…)` and calls
//! `pg_notify('ade_events', '<run_id>:<last sequence>')`, which PostgreSQL delivers on commit only.
//! The primary key `(run_id, sequence)` is the last word: of two writers that raced past the tail
//! check, one fails. Reads go through the primary key, one bounded page at a time.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

use super::{Announcement, Announcements, Durability, EventStore, EventStream, LogTail, RunKey, check_continues};
use crate::error::{Error, Result};
use crate::event::StoredEvent;

/// How many events a read fetches per query.
const READ_PAGE: i64 = 256;

/// Connections of a pool opened from a URL.
const MAX_CONNECTIONS: u32 = 16;

/// Any advisory-lock key of ours: migrations of concurrent openers take turns on it.
const MIGRATION_LOCK: i64 = 0x0ade_0001;

/// Schema migrations in order: applying `MIGRATIONS[i]` takes the version from `i` to `i + 1`.
/// Never edit a released migration; append a new one.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: usize = MIGRATIONS.len();

const SCHEMA_V1: &str = r#"
CREATE TABLE ade_events (
    workspace_id TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    sequence     BIGINT  NOT NULL CHECK (sequence >= 1),
    terminal     BOOLEAN NOT NULL,
    json         BYTEA   NOT NULL, -- the event's exact JSON line, without newline
    PRIMARY KEY (run_id, sequence)
);

CREATE TABLE ade_runs (
    id                    TEXT    COLLATE "C" NOT NULL PRIMARY KEY, -- byte order = id order
    workspace_id          TEXT    NOT NULL,
    configuration_id      TEXT    NOT NULL,
    configuration_version TEXT    NOT NULL,
    build_id              TEXT,
    status                TEXT    NOT NULL,
    mode                  TEXT    NOT NULL,
    document_ids          TEXT    NOT NULL, -- JSON array
    options               TEXT    NOT NULL, -- JSON object
    created_at            TEXT    NOT NULL, -- RFC 3339
    created_at_us         BIGINT  NOT NULL, -- the same instant, for ordering
    started_at            TEXT,
    completed_at          TEXT,
    exit_code             INTEGER,
    failure               TEXT,             -- JSON object
    last_sequence         BIGINT  NOT NULL,
    summary               TEXT,             -- JSON object
    links                 TEXT    NOT NULL, -- JSON object
    lease_owner           TEXT,
    lease_until_us        BIGINT
);

CREATE INDEX ade_runs_by_time ON ade_runs (created_at_us DESC, id DESC);
CREATE INDEX ade_runs_by_workspace ON ade_runs (workspace_id, created_at_us DESC, id DESC);
CREATE INDEX ade_runs_by_configuration ON ade_runs (configuration_id, created_at_us DESC, id DESC);
CREATE INDEX ade_runs_by_status ON ade_runs (status, created_at_us, id);

CREATE TABLE ade_documents (
    id            TEXT    NOT NULL PRIMARY KEY,
    workspace_id  TEXT    NOT NULL,
    filename      TEXT    NOT NULL,
    byte_size     BIGINT  NOT NULL,
    sha256        TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    created_at_us BIGINT  NOT NULL
);

CREATE TABLE ade_idempotency_keys (
    workspace_id  TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    run_id        TEXT    COLLATE "C" NOT NULL REFERENCES ade_runs (id) ON DELETE CASCADE,
    created_at_us BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, key)
);

CREATE INDEX ade_idempotency_keys_by_run ON ade_idempotency_keys (run_id);
"#;

/// Leases on the database's clock (instances' clocks may disagree), and cancel requests for runs
/// another instance executes.
const SCHEMA_V2: &str = r#"
CREATE FUNCTION ade_now_us() RETURNS BIGINT LANGUAGE SQL VOLATILE
    AS $$ SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT $$;

ALTER TABLE ade_runs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX ade_runs_active_by_lease ON ade_runs (lease_until_us) WHERE status IN ('building', 'running');
"#;

/// Event exporters' durable cursors: the last sequence of a run each exporter acknowledged.
const SCHEMA_V3: &str = r#"
CREATE TABLE ade_export_cursors (
    exporter TEXT   NOT NULL,
    run_id   TEXT   COLLATE "C" NOT NULL REFERENCES ade_runs (id) ON DELETE CASCADE,
    sequence BIGINT NOT NULL,
    PRIMARY KEY (exporter, run_id)
);
"#;

pub(crate) fn db(error: sqlx::Error) -> Error {
    Error::Database(error.to_string())
}

/// Opens a pool on `url` (`postgres://user@host:port/database`).
pub(crate) async fn connect(url: &str) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::Database(format!("invalid PostgreSQL URL (postgres://user@host:port/database): {e}")))?;
    // Named without the user or password, which the URL may carry.
    let target =
        format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or_default());
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| Error::Database(format!("cannot connect to PostgreSQL at {target}: {e}")))
}

/// How long opening a pool (and later, waiting for a free connection) may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Brings the schema (in the pool's `search_path`) up to date, in one transaction.
pub(crate) async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(db)?;
    migrate_on(&mut conn).await
}

async fn migrate_on(conn: &mut PgConnection) -> Result<()> {
    let mut tx = conn.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await.map_err(db)?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS ade_schema_version (version BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM ade_schema_version").fetch_one(&mut *tx).await.map_err(db)?;
    let current = usize::try_from(version.unwrap_or(0))
        .map_err(|_| Error::Database(format!("bad schema version {version:?}")))?;
    if current > SCHEMA_VERSION {
        return Err(Error::Database(format!(
            "the database has schema version {current}, newer than the {SCHEMA_VERSION} this version of ade knows"
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        sqlx::raw_sql(*migration).execute(&mut *tx).await.map_err(db)?;
        sqlx::query("DELETE FROM ade_schema_version").execute(&mut *tx).await.map_err(db)?;
        sqlx::query("INSERT INTO ade_schema_version (version) VALUES ($1)")
            .bind(i64::try_from(index + 1).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Database(format!("{what} {value} is too large to store")))
}

/// The channel a released queued run is announced on (payload empty): workers of every instance
/// may claim it.
pub(crate) const WORK_CHANNEL: &str = "ade_work";

/// The channel cancel requests are announced on, payload `cancel:<run_id>`.
pub(crate) const CONTROL_CHANNEL: &str = "ade_control";

/// Listens on the channels of every announcement (events appended, work, control) with one
/// connection of `pool`. Listening has begun when this returns, so nothing announced after it is
/// missed; a lost connection is re-established and reported as [`Announcement::Resync`].
///
/// # Errors
/// [`Error::Database`] when the first connection cannot be made.
pub(crate) async fn listen(pool: &PgPool) -> Result<Announcements> {
    let mut listener = PgListener::connect_with(pool).await.map_err(db)?;
    listener.listen_all([PgEventStore::NOTIFY_CHANNEL, WORK_CHANNEL, CONTROL_CHANNEL]).await.map_err(db)?;
    let announcements = futures::stream::unfold(listener, |mut listener| async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let payload = notification.payload();
                    let announcement = match notification.channel() {
                        PgEventStore::NOTIFY_CHANNEL => Announcement::appended(payload),
                        WORK_CHANNEL => Some(Announcement::Work),
                        CONTROL_CHANNEL => Announcement::control(payload),
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

    use super::*;
    use crate::store::conformance;
    use crate::test_util::postgres as testing;
    use crate::testing::{lines, run_key};

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
        let newer = crate::store::PgRunStore::with_pool(pool).await;
        assert!(matches!(newer, Err(Error::Database(ref m)) if m.contains("newer")), "{newer:?}");
    }
}
