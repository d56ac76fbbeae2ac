//! [`SqliteRunStore`]: the embedded default run store, in `<data dir>/ade.sqlite`.
//!
//! The schema is created and migrated when the store opens; its version is `PRAGMA user_version`.
//! Every write that reads before it writes runs in a `BEGIN IMMEDIATE` transaction (it takes the
//! write lock first, so it waits on `busy_timeout` instead of failing on a stale snapshot), and a
//! claim is one `UPDATE … RETURNING` statement, so two claimers never get the same run.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, Row};

use super::memory::{
    check_finalization, check_transition, decode_cursor, encode_cursor, key_is_live, lease_until, page_size,
};
use super::{
    CreateOutcome, Document, ExportBacklog, Finalization, IdempotencyKey, RunFilter, RunPage, RunStore, Transition,
};
use crate::error::{Error, Result};
use crate::event::{DocumentId, RunId, Timestamp, WorkspaceId};
use crate::run::{Run, RunStatus};
use crate::store::RunKey;

/// The database file under the data directory.
const FILE_NAME: &str = "ade.sqlite";

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of a file store (WAL lets readers run beside the one writer).
const MAX_CONNECTIONS: u32 = 4;

/// Schema migrations in order: applying `MIGRATIONS[i]` takes `user_version` from `i` to `i + 1`.
/// Never edit a released migration; append a new one.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2];
const _: () = assert!(!MIGRATIONS.is_empty());

/// The schema version this build writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: usize = MIGRATIONS.len();

const SCHEMA_V1: &str = r#"
CREATE TABLE runs (
    id                    TEXT    NOT NULL PRIMARY KEY,
    workspace_id          TEXT    NOT NULL,
    configuration_id      TEXT    NOT NULL,
    configuration_version TEXT    NOT NULL,
    build_id              TEXT,
    status                TEXT    NOT NULL,
    mode                  TEXT    NOT NULL,
    document_ids          TEXT    NOT NULL, -- JSON array
    options               TEXT    NOT NULL, -- JSON object
    created_at            TEXT    NOT NULL, -- RFC 3339
    created_at_us         INTEGER NOT NULL, -- the same instant, for ordering
    started_at            TEXT,
    completed_at          TEXT,
    exit_code             INTEGER,
    failure               TEXT,             -- JSON object
    last_sequence         INTEGER NOT NULL,
    summary               TEXT,             -- JSON object
    links                 TEXT    NOT NULL, -- JSON object
    lease_owner           TEXT,
    lease_until_us        INTEGER
) STRICT;

CREATE INDEX runs_by_time ON runs (created_at_us DESC, id DESC);
CREATE INDEX runs_by_workspace ON runs (workspace_id, created_at_us DESC, id DESC);
CREATE INDEX runs_by_configuration ON runs (configuration_id, created_at_us DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at_us, id);

CREATE TABLE documents (
    id            TEXT    NOT NULL PRIMARY KEY,
    workspace_id  TEXT    NOT NULL,
    filename      TEXT    NOT NULL,
    byte_size     INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL
) STRICT;

CREATE TABLE idempotency_keys (
    workspace_id  TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    run_id        TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
) STRICT;

CREATE INDEX idempotency_keys_by_run ON idempotency_keys (run_id);
"#;

/// Event exporters' durable cursors: the last sequence of a run each exporter acknowledged.
const SCHEMA_V2: &str = r#"
CREATE TABLE export_cursors (
    exporter TEXT    NOT NULL,
    run_id   TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    PRIMARY KEY (exporter, run_id)
) STRICT;
"#;

/// Runs, documents and idempotency keys in `ade.sqlite` under the data directory. Cloning shares
/// the connection pool.
#[derive(Debug, Clone)]
pub struct SqliteRunStore {
    /// Replaced once when a store opened read-only (see `read_only`) can write again.
    pool: Arc<std::sync::RwLock<SqlitePool>>,
    /// Set when the store opened on a full disk: reads work, writes first try to reopen.
    read_only: Arc<AtomicBool>,
    path: Option<PathBuf>,
    /// Writes of this process take turns here instead of in SQLite's busy handler, which sleeps
    /// (milliseconds at a time) while another connection holds the write lock.
    writes: Arc<tokio::sync::Mutex<()>>,
}

fn db(error: sqlx::Error) -> Error {
    // SQLITE_FULL (13): the disk (or the database's size limit) is full; SQLITE_IOERR_SHMSIZE
    // (4874): no room to make the shared-memory index a connection needs.
    let full = matches!(&error, sqlx::Error::Database(e) if matches!(e.code().as_deref(), Some("13" | "4874")))
        || matches!(&error, sqlx::Error::Io(e) if crate::error::io_out_of_space(e));
    if full {
        return Error::StorageFull { what: "the run store (ade.sqlite)", detail: error.to_string() };
    }
    Error::Database(error.to_string())
}

/// Runs a write statement that returns the row it wrote, and steps it to its end.
///
/// Outside a transaction SQLite commits when the statement finishes. `fetch_optional` stops after
/// the first row and resets the statement, which commits then, and any error of that commit (a
/// full disk) is lost: the caller would be told of a write the database then rolled back.
async fn write_returning<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    pool: &SqlitePool,
) -> Result<Option<SqliteRow>> {
    Ok(query.fetch_all(pool).await.map_err(db)?.into_iter().next())
}

/// Whether a connection coming back to the pool may be used again: not when it is still inside a
/// transaction. That happens when a `COMMIT` fails (a full disk) and SQLite has already rolled the
/// transaction back itself: the `ROLLBACK` that follows fails too, and the connection would refuse
/// every later `BEGIN` ("non-zero transaction depth") until the process restarts.
fn reusable(
    conn: &mut SqliteConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        // Lets a rollback queued by a dropped transaction finish before the depth is read.
        conn.ping().await?;
        Ok(!conn.is_in_transaction())
    })
}

impl SqliteRunStore {
    /// Opens (creating it and `data_dir` if needed) `<data_dir>/ade.sqlite`, in WAL mode, and
    /// brings its schema up to date.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created; [`Error::Database`] when the database
    /// cannot be opened or migrated, or was written by a newer version of ade.
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = data_dir.as_ref();
        tokio::fs::create_dir_all(dir).await.map_err(|source| Error::Io {
            action: "create",
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let (pool, read_only) = match open_writable(&path).await {
            Ok(pool) => (pool, false),
            // A full disk: SQLite cannot make its shared-memory index (`ade.sqlite-shm`). Serve
            // reads from the file as it is, and open it for writing again once the disk has room.
            Err(error) if error.is_out_of_space() => match open_read_only(&path).await {
                Ok(pool) => {
                    tracing::warn!(%error, "ade.sqlite is read-only until the disk has room again");
                    (pool, true)
                }
                Err(_) => return Err(error),
            },
            Err(error) => return Err(error),
        };
        Ok(Self {
            pool: Arc::new(std::sync::RwLock::new(pool)),
            read_only: Arc::new(AtomicBool::new(read_only)),
            path: Some(path),
            writes: Arc::default(),
        })
    }

    /// A store in a private in-memory database (one connection), for tests.
    ///
    /// # Errors
    /// [`Error::Database`] when SQLite cannot be set up.
    pub async fn open_in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
        // The database lives as long as its only connection: never let the pool drop it.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_release(reusable)
            .connect_with(options)
            .await
            .map_err(db)?;
        let mut conn = pool.acquire().await.map_err(db)?;
        migrate(&mut conn).await?;
        drop(conn);
        Ok(Self {
            pool: Arc::new(std::sync::RwLock::new(pool)),
            read_only: Arc::default(),
            path: None,
            writes: Arc::default(),
        })
    }

    /// The database file; `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Closes every connection (checkpointing the WAL); later calls on the store fail.
    pub async fn close(&self) {
        self.reader().close().await;
    }

    /// The pool reads go to.
    fn reader(&self) -> SqlitePool {
        self.pool.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pool writes go to (call it holding `writes`): when the store was opened read-only on
    /// a full disk, it tries to open the database for writing first.
    ///
    /// # Errors
    /// [`Error::StorageFull`] while the database still cannot be opened for writing.
    async fn writer(&self) -> Result<SqlitePool> {
        if !self.read_only.load(Ordering::Acquire) {
            return Ok(self.reader());
        }
        let Some(path) = &self.path else { return Ok(self.reader()) };
        let pool = open_writable(path).await?;
        let old = std::mem::replace(&mut *self.pool.write().unwrap_or_else(|p| p.into_inner()), pool.clone());
        self.read_only.store(false, Ordering::Release);
        tracing::info!("ade.sqlite takes writes again");
        old.close().await;
        Ok(pool)
    }
}

/// Opens `path` (creating it) for reading and writing: WAL, migrations, the pool.
async fn open_writable(path: &Path) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        // In WAL mode, NORMAL survives a process crash and loses at most the last commits on
        // a power loss; the event log (whose `run.completed` is always fsynced) is the source
        // of truth that recovery reconciles the table with.
        .synchronous(SqliteSynchronous::Normal);
    // WAL is a property of the file, and switching to it takes a lock `busy_timeout` does not
    // wait for: do it, and the migrations, on one connection before the pool opens.
    let mut setup =
        SqliteConnection::connect_with(&options.clone().journal_mode(SqliteJournalMode::Wal)).await.map_err(db)?;
    migrate(&mut setup).await?;
    setup.close().await.map_err(db)?;
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .after_release(reusable)
        .connect_with(options)
        .await
        .map_err(db)
}

/// Opens an existing `path` read-only as it is on disk (`immutable`: no locks, no shared-memory
/// index, which a full disk has no room for). Its schema must be the current one.
///
/// A process that stopped cleanly left nothing in the write-ahead log, so reads are exact; after a
/// crash the last updates may be missing from reads until the database can be opened for writing.
async fn open_read_only(path: &Path) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true).immutable(true);
    let pool = SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(options).await.map_err(db)?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&pool).await.map_err(db)?;
    if usize::try_from(version).ok() != Some(SCHEMA_VERSION) {
        return Err(Error::Database(format!("ade.sqlite has schema version {version}, not {SCHEMA_VERSION}")));
    }
    Ok(pool)
}

/// Applies the migrations the database lacks, in one transaction.
async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await.map_err(db)?;
    let current = usize::try_from(version).map_err(|_| Error::Database(format!("bad schema version {version}")))?;
    if current > SCHEMA_VERSION {
        return Err(Error::Database(format!(
            "the database has schema version {current}, newer than the {SCHEMA_VERSION} this version of ade knows"
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        sqlx::raw_sql(*migration).execute(&mut *tx).await.map_err(db)?;
        // PRAGMA takes no parameters; the version is a number of ours, not input.
        sqlx::query(AssertSqlSafe(format!("PRAGMA user_version = {}", index + 1)))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

// ---- Encoding ------------------------------------------------------------------------------------

/// `value` as JSON text, as the stores keep structured columns.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

/// [`json`] of an optional value.
pub fn json_opt<T: Serialize>(value: Option<&T>) -> Result<Option<String>> {
    value.map(json).transpose()
}

/// The wire spelling of a unit enum (`RunMode`, …).
pub fn enum_text<T: Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(text) => Ok(text),
        other => Err(Error::Database(format!("expected a string for an enum, got {other}"))),
    }
}

/// `value` as the stores' signed 64-bit integers; [`Error::Database`] past `i64::MAX`.
pub fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Database(format!("{what} {value} is too large to store")))
}

fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(|e| Error::Database(format!("column {name}: {e}")))
}

/// The columns a run store reads back: the same TEXT and integer columns in every SQL backend,
/// so one decoder serves them all.
pub trait Columns {
    /// A TEXT column.
    fn text(&self, name: &str) -> Result<String>;
    /// A nullable TEXT column.
    fn text_opt(&self, name: &str) -> Result<Option<String>>;
    /// A 64-bit integer column.
    fn int(&self, name: &str) -> Result<i64>;
    /// A nullable 32-bit integer column.
    fn int32_opt(&self, name: &str) -> Result<Option<i32>>;
}

impl Columns for SqliteRow {
    fn text(&self, name: &str) -> Result<String> {
        column(self, name)
    }
    fn text_opt(&self, name: &str) -> Result<Option<String>> {
        column(self, name)
    }
    fn int(&self, name: &str) -> Result<i64> {
        column(self, name)
    }
    fn int32_opt(&self, name: &str) -> Result<Option<i32>> {
        column(self, name)
    }
}

fn parsed<T: FromStr<Err: Into<Error>>>(row: &impl Columns, name: &str) -> Result<T> {
    row.text(name)?.parse().map_err(Into::into)
}

fn parsed_opt<T: FromStr<Err: Into<Error>>>(row: &impl Columns, name: &str) -> Result<Option<T>> {
    row.text_opt(name)?.map(|text| text.parse().map_err(Into::into)).transpose()
}

fn from_json<T: DeserializeOwned>(row: &impl Columns, name: &str) -> Result<T> {
    Ok(serde_json::from_str(&row.text(name)?)?)
}

fn from_json_opt<T: DeserializeOwned>(row: &impl Columns, name: &str) -> Result<Option<T>> {
    Ok(row.text_opt(name)?.map(|text| serde_json::from_str(&text)).transpose()?)
}

/// A unit enum (`RunStatus`, …) from its wire spelling in a TEXT column.
pub fn from_enum_text<T: DeserializeOwned>(row: &impl Columns, name: &str) -> Result<T> {
    Ok(serde_json::from_value(serde_json::Value::String(row.text(name)?))?)
}

fn to_u64(row: &impl Columns, name: &str) -> Result<u64> {
    let value = row.int(name)?;
    u64::try_from(value).map_err(|_| Error::Database(format!("column {name}: negative value {value}")))
}

/// An [`ExportBacklog`] from a row of `id`, `workspace_id` and `acked`.
pub fn backlog_from_row(row: &impl Columns) -> Result<ExportBacklog> {
    Ok(ExportBacklog {
        run: RunKey::new(parsed(row, "workspace_id")?, parsed(row, "id")?),
        acked: to_u64(row, "acked")?,
    })
}

/// A run from a row of the runs table.
pub fn run_from_row(row: &impl Columns) -> Result<Run> {
    Ok(Run {
        id: parsed(row, "id")?,
        workspace_id: parsed(row, "workspace_id")?,
        configuration_id: parsed(row, "configuration_id")?,
        configuration_version: row.text("configuration_version")?,
        build_id: parsed_opt(row, "build_id")?,
        status: from_enum_text(row, "status")?,
        mode: from_enum_text(row, "mode")?,
        document_ids: from_json(row, "document_ids")?,
        options: from_json(row, "options")?,
        created_at: parsed(row, "created_at")?,
        started_at: parsed_opt(row, "started_at")?,
        completed_at: parsed_opt(row, "completed_at")?,
        exit_code: row.int32_opt("exit_code")?,
        failure: from_json_opt(row, "failure")?,
        last_sequence: to_u64(row, "last_sequence")?,
        summary: from_json_opt(row, "summary")?,
        links: from_json(row, "links")?,
    })
}

/// A document from a row of the documents table.
pub fn document_from_row(row: &impl Columns) -> Result<Document> {
    Ok(Document {
        id: parsed(row, "id")?,
        workspace_id: parsed(row, "workspace_id")?,
        filename: row.text("filename")?,
        byte_size: to_u64(row, "byte_size")?,
        sha256: row.text("sha256")?,
        content_type: row.text("content_type")?,
        created_at: parsed(row, "created_at")?,
    })
}

async fn insert_run(conn: &mut SqliteConnection, run: &Run) -> Result<()> {
    sqlx::query(
        "INSERT INTO runs (id, workspace_id, configuration_id, configuration_version, build_id, status, mode,
             document_ids, options, created_at, created_at_us, started_at, completed_at, exit_code, failure,
             last_sequence, summary, links)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(run.id.to_string())
    .bind(run.workspace_id.as_str())
    .bind(run.configuration_id.as_str())
    .bind(run.configuration_version.as_str())
    .bind(run.build_id.map(|id| id.to_string()))
    .bind(run.status.as_str())
    .bind(enum_text(&run.mode)?)
    .bind(json(&run.document_ids)?)
    .bind(json(&run.options)?)
    .bind(run.created_at.to_string())
    .bind(run.created_at.unix_micros())
    .bind(run.started_at.map(|t| t.to_string()))
    .bind(run.completed_at.map(|t| t.to_string()))
    .bind(run.exit_code)
    .bind(json_opt(run.failure.as_ref())?)
    .bind(to_i64(run.last_sequence, "last_sequence")?)
    .bind(json_opt(run.summary.as_ref())?)
    .bind(json(&run.links)?)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// The current status of run `id`, inside a transaction.
async fn current_status(conn: &mut SqliteConnection, id: RunId) -> Result<RunStatus> {
    let row = sqlx::query("SELECT status FROM runs WHERE id = ?1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or(Error::RunNotFound(id))?;
    from_enum_text(&row, "status")
}

/// Every status, for the state machine's checks in SQL.
pub(super) const STATUSES: [RunStatus; 6] = [
    RunStatus::Queued,
    RunStatus::Building,
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
];

/// The statuses a run may be in to go to `to`.
pub fn statuses_before(to: RunStatus) -> Vec<&'static str> {
    STATUSES.iter().filter(|from| from.can_transition_to(to)).map(|s| s.as_str()).collect()
}

/// The statuses a run may be finalized from: every active one (see [`check_finalization`]).
pub fn finalizable_statuses() -> Vec<&'static str> {
    STATUSES.iter().filter(|from| !from.is_terminal()).map(|s| s.as_str()).collect()
}

impl SqliteRunStore {
    /// Why an update matched no row: the run is missing, or `check` refuses its current status.
    async fn refusal(&self, id: RunId, to: RunStatus, check: fn(RunId, RunStatus, RunStatus) -> Result<()>) -> Error {
        let from = match self.reader().acquire().await {
            Ok(mut connection) => current_status(&mut connection, id).await,
            Err(error) => Err(db(error)),
        };
        match from.and_then(|from| check(id, from, to).map(|()| from)) {
            Err(error) => error,
            // Allowed now, so it changed in between; report what was refused.
            Ok(from) => Error::InvalidTransition { run_id: id, from: from.as_str(), to: to.as_str() },
        }
    }
}

/// Now, in microseconds since the epoch (the stores' timestamps).
pub fn now_us() -> i64 {
    Timestamp::now().unix_micros()
}

#[async_trait]
impl RunStore for SqliteRunStore {
    async fn create_run(&self, run: &Run, idempotency: Option<&IdempotencyKey>) -> Result<CreateOutcome> {
        let _turn = self.writes.lock().await;
        let mut tx = self.writer().await?.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        if let Some(key) = idempotency {
            let seen = sqlx::query(
                "SELECT request_hash, run_id, created_at_us FROM idempotency_keys WHERE workspace_id = ?1 AND key = ?2",
            )
            .bind(run.workspace_id.as_str())
            .bind(key.key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(seen) = seen
                && key_is_live(column(&seen, "created_at_us")?, now_us())
            {
                if column::<String>(&seen, "request_hash")? != key.request_hash {
                    return Ok(CreateOutcome::KeyConflict);
                }
                let existing = sqlx::query("SELECT * FROM runs WHERE id = ?1")
                    .bind(column::<String>(&seen, "run_id")?)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                if let Some(existing) = existing {
                    return Ok(CreateOutcome::Existing(run_from_row(&existing)?));
                }
            }
        }
        insert_run(&mut tx, run).await?;
        if let Some(key) = idempotency {
            sqlx::query(
                "INSERT INTO idempotency_keys (workspace_id, key, request_hash, run_id, created_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (workspace_id, key) DO UPDATE SET
                     request_hash = excluded.request_hash,
                     run_id = excluded.run_id,
                     created_at_us = excluded.created_at_us",
            )
            .bind(run.workspace_id.as_str())
            .bind(key.key.as_str())
            .bind(key.request_hash.as_str())
            .bind(run.id.to_string())
            .bind(run.created_at.unix_micros())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(CreateOutcome::Created(run.clone()))
    }

    async fn get_run(&self, workspace_id: Option<&WorkspaceId>, id: RunId) -> Result<Option<Run>> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = ?1 AND (?2 IS NULL OR workspace_id = ?2)")
            .bind(id.to_string())
            .bind(workspace_id.map(WorkspaceId::as_str))
            .fetch_optional(&self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn list_runs(&self, filter: &RunFilter, limit: usize, cursor: Option<&str>) -> Result<RunPage> {
        let after = cursor.map(decode_cursor).transpose()?;
        let limit = page_size(limit);
        let rows = sqlx::query(
            "SELECT * FROM runs
             WHERE (?1 IS NULL OR workspace_id = ?1)
               AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR configuration_id = ?3)
               AND (?4 IS NULL OR (created_at_us, id) < (?4, ?5))
             ORDER BY created_at_us DESC, id DESC
             LIMIT ?6",
        )
        .bind(filter.workspace_id.as_ref().map(WorkspaceId::as_str))
        .bind(filter.status.map(RunStatus::as_str))
        .bind(filter.configuration_id.as_ref().map(|c| c.as_str()))
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(_, id)| id.to_string()))
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(&self.reader())
        .await
        .map_err(db)?;
        let runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        Ok(RunPage::from_overfetch(runs, limit, |last| encode_cursor(last.created_at.unix_micros(), last.id)))
    }

    async fn transition(&self, id: RunId, transition: Transition) -> Result<Run> {
        let _turn = self.writes.lock().await;
        // One statement: the state machine's check is in its WHERE clause.
        let row = write_returning(
            sqlx::query(
                "UPDATE runs SET
                     status = COALESCE(?2, status),
                     build_id = COALESCE(?3, build_id),
                     started_at = COALESCE(?4, started_at),
                     last_sequence = COALESCE(?5, last_sequence)
                 WHERE id = ?1 AND (?6 IS NULL OR status IN (SELECT value FROM json_each(?6)))
                 RETURNING *",
            )
            .bind(id.to_string())
            .bind(transition.to.map(RunStatus::as_str))
            .bind(transition.build_id.map(|b| b.to_string()))
            .bind(transition.started_at.map(|t| t.to_string()))
            .bind(transition.last_sequence.map(|s| to_i64(s, "last_sequence")).transpose()?)
            .bind(transition.to.map(|to| json(&statuses_before(to))).transpose()?),
            &self.writer().await?,
        )
        .await?;
        match row {
            Some(row) => run_from_row(&row),
            None => Err(self.refusal(id, transition.to.unwrap_or(RunStatus::Queued), check_transition).await),
        }
    }

    async fn finalize(&self, id: RunId, finalization: Finalization) -> Result<Run> {
        let _turn = self.writes.lock().await;
        if !finalization.status.is_terminal() {
            return Err(self.refusal(id, finalization.status, check_finalization).await);
        }
        let row = write_returning(
            sqlx::query(
                "UPDATE runs SET
                     status = ?2, completed_at = ?3, exit_code = ?4, failure = ?5, summary = ?6,
                     last_sequence = ?7, lease_owner = NULL, lease_until_us = NULL
                 WHERE id = ?1 AND status IN (SELECT value FROM json_each(?8))
                 RETURNING *",
            )
            .bind(id.to_string())
            .bind(finalization.status.as_str())
            .bind(finalization.completed_at.to_string())
            .bind(finalization.exit_code)
            .bind(json_opt(finalization.failure.as_ref())?)
            .bind(json(&finalization.summary)?)
            .bind(to_i64(finalization.last_sequence, "last_sequence")?)
            .bind(json(&finalizable_statuses())?),
            &self.writer().await?,
        )
        .await?;
        match row {
            Some(row) => run_from_row(&row),
            None => Err(self.refusal(id, finalization.status, check_finalization).await),
        }
    }

    async fn claim_queued(&self, owner: &str, lease: Duration) -> Result<Option<Run>> {
        let _turn = self.writes.lock().await;
        let now = now_us();
        // One statement: SQLite takes the write lock before it picks the run, so no other claim
        // can pick the same one in between.
        let row = write_returning(
            sqlx::query(
                "UPDATE runs SET lease_owner = ?1, lease_until_us = ?2
                 WHERE id = (
                     SELECT id FROM runs
                     WHERE status = 'queued' AND (lease_until_us IS NULL OR lease_until_us <= ?3)
                     ORDER BY created_at_us, id
                     LIMIT 1
                 )
                 RETURNING *",
            )
            .bind(owner)
            .bind(lease_until(now, lease))
            .bind(now),
            &self.writer().await?,
        )
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn renew_lease(&self, id: RunId, owner: &str, lease: Duration) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let done = sqlx::query("UPDATE runs SET lease_until_us = ?3 WHERE id = ?1 AND lease_owner = ?2")
            .bind(id.to_string())
            .bind(owner)
            .bind(lease_until(now_us(), lease))
            .execute(&self.writer().await?)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<Run>> {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query(
            "SELECT * FROM runs
             WHERE status IN (SELECT value FROM json_each(?1))
             ORDER BY created_at_us, id",
        )
        .bind(json(&statuses)?)
        .fetch_all(&self.reader())
        .await
        .map_err(db)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn clear_leases(&self) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_until_us = NULL
             WHERE lease_owner IS NOT NULL OR lease_until_us IS NOT NULL",
        )
        .execute(&self.writer().await?)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn export_cursor(&self, exporter: &str, run: RunId) -> Result<u64> {
        let row = sqlx::query("SELECT sequence FROM export_cursors WHERE exporter = ?1 AND run_id = ?2")
            .bind(exporter)
            .bind(run.to_string())
            .fetch_optional(&self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map_or(Ok(0), |row| to_u64(row, "sequence"))
    }

    async fn ack_export(&self, exporter: &str, run: RunId, sequence: u64) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "INSERT INTO export_cursors (exporter, run_id, sequence) VALUES (?1, ?2, ?3)
             ON CONFLICT (exporter, run_id) DO UPDATE SET sequence = max(sequence, excluded.sequence)",
        )
        .bind(exporter)
        .bind(run.to_string())
        .bind(to_i64(sequence, "sequence")?)
        .execute(&self.writer().await?)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn export_backlog(&self, exporter: &str, after: Option<RunId>, limit: usize) -> Result<Vec<ExportBacklog>> {
        let rows = sqlx::query(
            "SELECT r.id, r.workspace_id, coalesce(c.sequence, 0) AS acked
             FROM runs r LEFT JOIN export_cursors c ON c.exporter = ?1 AND c.run_id = r.id
             WHERE (?2 IS NULL OR r.id > ?2)
               AND (r.status IN (SELECT value FROM json_each(?3)) OR coalesce(c.sequence, 0) < r.last_sequence)
             ORDER BY r.id
             LIMIT ?4",
        )
        .bind(exporter)
        .bind(after.map(|id| id.to_string()))
        .bind(json(&finalizable_statuses())?)
        .bind(i64::try_from(page_size(limit)).unwrap_or(i64::MAX))
        .fetch_all(&self.reader())
        .await
        .map_err(db)?;
        rows.iter().map(backlog_from_row).collect()
    }

    async fn create_document(&self, document: &Document) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "INSERT INTO documents (id, workspace_id, filename, byte_size, sha256, content_type, created_at,
                 created_at_us)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(document.id.to_string())
        .bind(document.workspace_id.as_str())
        .bind(document.filename.as_str())
        .bind(to_i64(document.byte_size, "byte_size")?)
        .bind(document.sha256.as_str())
        .bind(document.content_type.as_str())
        .bind(document.created_at.to_string())
        .bind(document.created_at.unix_micros())
        .execute(&self.writer().await?)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_document(&self, workspace_id: Option<&WorkspaceId>, id: DocumentId) -> Result<Option<Document>> {
        let row = sqlx::query("SELECT * FROM documents WHERE id = ?1 AND (?2 IS NULL OR workspace_id = ?2)")
            .bind(id.to_string())
            .bind(workspace_id.map(WorkspaceId::as_str))
            .fetch_optional(&self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map(document_from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use serde_json::json;

    use crate::store::runs::conformance::{self, created_at, queued_run, test_document};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conforms() {
        conformance::run_all(&|| async {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteRunStore::open(dir.path()).await.expect("open");
            (Arc::new(store) as Arc<dyn RunStore>, dir)
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conforms_in_memory() {
        conformance::run_all(&|| async {
            (Arc::new(SqliteRunStore::open_in_memory().await.expect("open")) as Arc<dyn RunStore>, ())
        })
        .await;
    }

    /// On a disk that fills up, every write either is stored and says so, or fails and says the
    /// disk is full; once space is freed, every connection works again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_fails_writes_loudly_and_the_store_works_again_once_space_is_freed() {
        let Some(disk) = crate::store::faults::SmallDisk::mount_or_skip(8 << 20) else { return };
        let store = SqliteRunStore::open(disk.path()).await.expect("open");
        let mut runs = Vec::new();
        for _ in 0..20 {
            let run = queued_run("acme", "members");
            store.create_run(&run, None).await.expect("create while there is room");
            runs.push(run);
        }
        disk.fill();
        // Large rows, so that SQLite cannot fit them in the pages its log already has.
        let mut outcomes = Vec::new();
        for run in &runs {
            let mut ending = conformance::finalization(run, RunStatus::Failed, 2);
            if let Some(failure) = ending.failure.as_mut() {
                failure.message = "x".repeat(256 << 10);
            }
            outcomes.push(store.finalize(run.id, ending).await);
        }
        let mut big = queued_run("acme", "members");
        big.options.metadata = Some(serde_json::Map::from_iter([("blob".to_owned(), json!("y".repeat(256 << 10)))]));
        let created = store.create_run(&big, None).await;
        assert!(created.as_ref().is_err_and(Error::is_out_of_space), "{:?}", created.map(drop));

        let failed = outcomes.iter().filter(|o| o.is_err()).count();
        assert!(failed > 0, "the disk filled up");
        for (run, outcome) in runs.iter().zip(&outcomes) {
            let stored = store.get_run(None, run.id).await.expect("reads work on a full disk").expect("run");
            match outcome {
                Ok(finished) => assert_eq!((stored.status, finished.status), (RunStatus::Failed, RunStatus::Failed)),
                Err(error) => {
                    assert!(error.is_out_of_space(), "says the disk is full: {error}");
                    assert_eq!(stored.status, RunStatus::Queued, "a refused write changed nothing");
                }
            }
        }

        disk.free();
        for _ in 0..2 * MAX_CONNECTIONS {
            let run = queued_run("acme", "members");
            store.create_run(&run, None).await.expect("every connection takes writes again");
        }
        store.close().await;
    }

    async fn user_version(store: &SqliteRunStore) -> i64 {
        sqlx::query_scalar("PRAGMA user_version").fetch_one(&store.reader()).await.expect("user_version")
    }

    #[tokio::test]
    async fn open_creates_the_directory_and_a_wal_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("nested/data");
        let store = SqliteRunStore::open(&data_dir).await.expect("open");
        assert_eq!(store.path(), Some(data_dir.join("ade.sqlite").as_path()));
        assert!(data_dir.join("ade.sqlite").is_file());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&store.reader()).await.expect("mode");
        assert_eq!(mode, "wal");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&store.reader()).await.expect("fk");
        assert_eq!(foreign_keys, 1);
        store.close().await;
    }

    #[tokio::test]
    async fn the_schema_version_is_set_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteRunStore::open(dir.path()).await.expect("open");
        assert_eq!(user_version(&store).await, i64::try_from(SCHEMA_VERSION).expect("small"));
        let memory = SqliteRunStore::open_in_memory().await.expect("open in memory");
        assert_eq!(user_version(&memory).await, i64::try_from(SCHEMA_VERSION).expect("small"));

        sqlx::query(AssertSqlSafe(format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)))
            .execute(&store.reader())
            .await
            .expect("bump version");
        store.close().await;
        let newer = SqliteRunStore::open(dir.path()).await;
        assert!(matches!(newer, Err(Error::Database(ref m)) if m.contains("newer")), "{newer:?}");
    }

    #[tokio::test]
    async fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = IdempotencyKey { key: "k1".to_owned(), request_hash: "h1".to_owned() };
        let now = Timestamp::now().unix_micros();
        let keyed = created_at(queued_run("acme", "members"), now);
        let claimed = created_at(queued_run("acme", "members"), now + 1);
        let finished = created_at(queued_run("other", "payroll"), now + 2);
        let document = test_document("acme");
        {
            let store = SqliteRunStore::open(dir.path()).await.expect("open");
            store.create_run(&keyed, Some(&key)).await.expect("create keyed");
            store.create_run(&claimed, None).await.expect("create claimed");
            store.create_run(&finished, None).await.expect("create finished");
            store.transition(finished.id, Transition::to(RunStatus::Running).last_sequence(3)).await.expect("run");
            store.create_document(&document).await.expect("document");
            assert!(store.claim_queued("w1", Duration::from_secs(3600)).await.expect("claim").is_some());
            store.close().await;
        }
        let store = SqliteRunStore::open(dir.path()).await.expect("reopen");
        assert_eq!(store.get_run(None, keyed.id).await.expect("get"), Some(keyed.clone()));
        let running = store.get_run(None, finished.id).await.expect("get").expect("stored");
        assert_eq!((running.status, running.last_sequence), (RunStatus::Running, 3));
        assert_eq!(store.get_document(None, document.id).await.expect("get"), Some(document));
        let again = store.create_run(&queued_run("acme", "members"), Some(&key)).await.expect("create again");
        assert_eq!(again, CreateOutcome::Existing(keyed.clone()), "the idempotency key survives");
        // The lease survives too: the first claim took `keyed`, so `claimed` is next.
        assert!(store.renew_lease(keyed.id, "w1", Duration::from_secs(60)).await.expect("renew"));
        let next = store.claim_queued("w2", Duration::from_secs(60)).await.expect("claim").expect("one left");
        assert_eq!(next.id, claimed.id);
        let page = store.list_runs(&RunFilter::default(), 10, None).await.expect("list");
        assert_eq!(page.runs.len(), 3);
    }
}
