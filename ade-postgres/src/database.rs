//! The schema every PostgreSQL store of ade shares, migrated when a store opens
//! (`ade_schema_version` holds its version; concurrent openers take turns on an advisory lock),
//! and the pool a backend opens from a URL.

use std::str::FromStr;

use ade_core::{Error, Result};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

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
