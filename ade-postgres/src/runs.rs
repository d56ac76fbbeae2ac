//! [`PgRunStore`]: runs, documents and idempotency keys in PostgreSQL, for several server
//! instances on one database.
//!
//! The same semantics as [`SqliteRunStore`](ade_core::store::SqliteRunStore), on the schema the
//! PostgreSQL stores share (migrated on open, see `database.rs`): transitions and finalizations are one
//! guarded `UPDATE … RETURNING`, a create with an idempotency key holds a transaction-scoped
//! advisory lock on the key, and a claim picks the oldest free queued run with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers on any instance never get the same run.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Connection, Row};

use ade_core::event::{DocumentId, RunId, WorkspaceId};
use ade_core::run::{Document, Run, RunStatus};
use ade_core::store::sql::{
    self, Columns, check_finalization, check_transition, decode_cursor, encode_cursor, enum_text, finalizable_statuses,
    json, json_opt, key_is_live, now_us, page_size, statuses_before, to_i64,
};
use ade_core::store::{
    CreateOutcome, ExportBacklog, Finalization, IdempotencyKey, RunFilter, RunPage, RunStore, Transition,
};
use ade_core::{Error, Result};

use crate::database::{connect, db, migrate};

/// A lease's length in microseconds, as leases are stored.
pub(crate) fn lease_us(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)
}

fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name).map_err(|e| Error::Database(format!("column {name}: {e}")))
}

/// A row as the decoders shared with the SQLite store read it.
struct Pg<'r>(&'r PgRow);

impl Columns for Pg<'_> {
    fn text(&self, name: &str) -> Result<String> {
        column(self.0, name)
    }
    fn text_opt(&self, name: &str) -> Result<Option<String>> {
        column(self.0, name)
    }
    fn int(&self, name: &str) -> Result<i64> {
        column(self.0, name)
    }
    fn int32_opt(&self, name: &str) -> Result<Option<i32>> {
        column(self.0, name)
    }
}

pub(crate) fn run_from_row(row: &PgRow) -> Result<Run> {
    sql::run_from_row(&Pg(row))
}

fn document_from_row(row: &PgRow) -> Result<Document> {
    sql::document_from_row(&Pg(row))
}

fn backlog_from_row(row: &PgRow) -> Result<ExportBacklog> {
    sql::backlog_from_row(&Pg(row))
}

/// Runs, documents and idempotency keys in tables `ade_runs`, `ade_documents` and
/// `ade_idempotency_keys` of a PostgreSQL database. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PgRunStore {
    pool: PgPool,
}

impl PgRunStore {
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

    /// Runs `claim`, an `UPDATE … RETURNING *` that leases one run to `$1` for `$2` µs (the
    /// first of its candidates that nobody holds), and returns that run.
    pub(crate) async fn claim_first(&self, claim: &'static str, owner: &str, lease: Duration) -> Result<Option<Run>> {
        let row = sqlx::query(claim).bind(owner).bind(lease_us(lease)).fetch_optional(&self.pool).await.map_err(db)?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Why an update matched no row: the run is missing, or `check` refuses its current status.
    async fn refusal(&self, id: RunId, to: RunStatus, check: fn(RunId, RunStatus, RunStatus) -> Result<()>) -> Error {
        let from = sqlx::query("SELECT status FROM ade_runs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
            .and_then(|row| row.ok_or(Error::RunNotFound(id)))
            .and_then(|row| sql::from_enum_text::<RunStatus>(&Pg(&row), "status"));
        match from.and_then(|from| check(id, from, to).map(|()| from)) {
            Err(error) => error,
            // Allowed now, so it changed in between; report what was refused.
            Ok(from) => Error::InvalidTransition { run_id: id, from: from.as_str(), to: to.as_str() },
        }
    }

    /// [`RunStore::create_run`], leased to `lease` = (owner, duration) when given, in one
    /// transaction.
    pub(crate) async fn create(
        &self,
        run: &Run,
        idempotency: Option<&IdempotencyKey>,
        lease: Option<(&str, Duration)>,
    ) -> Result<CreateOutcome> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let mut tx = conn.begin().await.map_err(db)?;
        match Self::create_in(&mut tx, run, idempotency, lease).await {
            Ok(outcome) => {
                tx.commit().await.map_err(db)?;
                Ok(outcome)
            }
            Err(error) => {
                tx.rollback().await.map_err(db)?;
                Err(error)
            }
        }
    }

    /// The create of [`create`](Self::create), in the transaction `tx`, which the caller commits.
    async fn create_in(
        tx: &mut sqlx::PgConnection,
        run: &Run,
        idempotency: Option<&IdempotencyKey>,
        lease: Option<(&str, Duration)>,
    ) -> Result<CreateOutcome> {
        if let Some(key) = idempotency {
            // Creates with the same key take turns until the first commits.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))")
                .bind(run.workspace_id.as_str())
                .bind(key.key.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let seen = sqlx::query(
                "SELECT request_hash, run_id, created_at_us FROM ade_idempotency_keys
                 WHERE workspace_id = $1 AND key = $2",
            )
            .bind(run.workspace_id.as_str())
            .bind(key.key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(seen) = seen
                && key_is_live(Pg(&seen).int("created_at_us")?, now_us())
            {
                if Pg(&seen).text("request_hash")? != key.request_hash {
                    return Ok(CreateOutcome::KeyConflict);
                }
                let existing = sqlx::query("SELECT * FROM ade_runs WHERE id = $1")
                    .bind(Pg(&seen).text("run_id")?)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                if let Some(existing) = existing {
                    return Ok(CreateOutcome::Existing(run_from_row(&existing)?));
                }
            }
        }
        sqlx::query(
            "INSERT INTO ade_runs (id, workspace_id, configuration_id, configuration_version, build_id, status, mode,
                 document_ids, options, created_at, created_at_us, started_at, completed_at, exit_code, failure,
                 last_sequence, summary, links, lease_owner, lease_until_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                 ade_now_us() + $20)",
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
        .bind(lease.map(|(owner, _)| owner))
        .bind(lease.map(|(_, duration)| lease_us(duration)))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(key) = idempotency {
            sqlx::query(
                "INSERT INTO ade_idempotency_keys (workspace_id, key, request_hash, run_id, created_at_us)
                 VALUES ($1, $2, $3, $4, $5)
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
        Ok(CreateOutcome::Created(run.clone()))
    }
}

#[async_trait]
impl RunStore for PgRunStore {
    async fn create_run(&self, run: &Run, idempotency: Option<&IdempotencyKey>) -> Result<CreateOutcome> {
        self.create(run, idempotency, None).await
    }

    async fn get_run(&self, workspace_id: Option<&WorkspaceId>, id: RunId) -> Result<Option<Run>> {
        let row = sqlx::query("SELECT * FROM ade_runs WHERE id = $1 AND ($2::TEXT IS NULL OR workspace_id = $2)")
            .bind(id.to_string())
            .bind(workspace_id.map(WorkspaceId::as_str))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn list_runs(&self, filter: &RunFilter, limit: usize, cursor: Option<&str>) -> Result<RunPage> {
        let after = cursor.map(decode_cursor).transpose()?;
        let limit = page_size(limit);
        let rows = sqlx::query(
            "SELECT * FROM ade_runs
             WHERE ($1::TEXT IS NULL OR workspace_id = $1)
               AND ($2::TEXT IS NULL OR status = $2)
               AND ($3::TEXT IS NULL OR configuration_id = $3)
               AND ($4::BIGINT IS NULL OR (created_at_us, id) < ($4, $5::TEXT))
             ORDER BY created_at_us DESC, id DESC
             LIMIT $6",
        )
        .bind(filter.workspace_id.as_ref().map(WorkspaceId::as_str))
        .bind(filter.status.map(RunStatus::as_str))
        .bind(filter.configuration_id.as_ref().map(|c| c.as_str()))
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(_, id)| id.to_string()))
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        Ok(RunPage::from_overfetch(runs, limit, |last| encode_cursor(last.created_at.unix_micros(), last.id)))
    }

    async fn transition(&self, id: RunId, transition: Transition) -> Result<Run> {
        // One statement: the state machine's check is in its WHERE clause.
        let row = sqlx::query(
            "UPDATE ade_runs SET
                 status = COALESCE($2::TEXT, status),
                 build_id = COALESCE($3::TEXT, build_id),
                 started_at = COALESCE($4::TEXT, started_at),
                 last_sequence = COALESCE($5::BIGINT, last_sequence)
             WHERE id = $1 AND ($6::TEXT[] IS NULL OR status = ANY($6))
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(transition.to.map(RunStatus::as_str))
        .bind(transition.build_id.map(|b| b.to_string()))
        .bind(transition.started_at.map(|t| t.to_string()))
        .bind(transition.last_sequence.map(|s| to_i64(s, "last_sequence")).transpose()?)
        .bind(transition.to.map(statuses_before))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        match row {
            Some(row) => run_from_row(&row),
            None => Err(self.refusal(id, transition.to.unwrap_or(RunStatus::Queued), check_transition).await),
        }
    }

    async fn finalize(&self, id: RunId, finalization: Finalization) -> Result<Run> {
        if !finalization.status.is_terminal() {
            return Err(self.refusal(id, finalization.status, check_finalization).await);
        }
        let row = sqlx::query(
            "UPDATE ade_runs SET
                 status = $2, completed_at = $3, exit_code = $4, failure = $5, summary = $6,
                 last_sequence = $7, lease_owner = NULL, lease_until_us = NULL
             WHERE id = $1 AND status = ANY($8::TEXT[])
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(finalization.status.as_str())
        .bind(finalization.completed_at.to_string())
        .bind(finalization.exit_code)
        .bind(json_opt(finalization.failure.as_ref())?)
        .bind(json(&finalization.summary)?)
        .bind(to_i64(finalization.last_sequence, "last_sequence")?)
        .bind(finalizable_statuses())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        match row {
            Some(row) => run_from_row(&row),
            None => Err(self.refusal(id, finalization.status, check_finalization).await),
        }
    }

    async fn claim_queued(&self, owner: &str, lease: Duration) -> Result<Option<Run>> {
        // One statement: the run is picked and locked together, skipping runs another claimer
        // has locked; a run whose lease was just taken fails the re-check of the WHERE clause.
        // Leases are on the database's clock, which every instance shares.
        self.claim_first(
            "UPDATE ade_runs SET lease_owner = $1, lease_until_us = ade_now_us() + $2
             WHERE id = (
                 SELECT id FROM ade_runs
                 WHERE status = 'queued' AND (lease_until_us IS NULL OR lease_until_us <= ade_now_us())
                 ORDER BY created_at_us, id
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED
             )
             RETURNING *",
            owner,
            lease,
        )
        .await
    }

    async fn renew_lease(&self, id: RunId, owner: &str, lease: Duration) -> Result<bool> {
        let done =
            sqlx::query("UPDATE ade_runs SET lease_until_us = ade_now_us() + $3 WHERE id = $1 AND lease_owner = $2")
                .bind(id.to_string())
                .bind(owner)
                .bind(lease_us(lease))
                .execute(&self.pool)
                .await
                .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<Run>> {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query("SELECT * FROM ade_runs WHERE status = ANY($1::TEXT[]) ORDER BY created_at_us, id")
            .bind(statuses)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn clear_leases(&self) -> Result<()> {
        sqlx::query(
            "UPDATE ade_runs SET lease_owner = NULL, lease_until_us = NULL
             WHERE lease_owner IS NOT NULL OR lease_until_us IS NOT NULL",
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn export_cursor(&self, exporter: &str, run: RunId) -> Result<u64> {
        let row = sqlx::query("SELECT sequence FROM ade_export_cursors WHERE exporter = $1 AND run_id = $2")
            .bind(exporter)
            .bind(run.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let sequence = row.as_ref().map_or(Ok(0), |row| Pg(row).int("sequence"))?;
        u64::try_from(sequence).map_err(|_| Error::Database(format!("negative export cursor {sequence}")))
    }

    async fn ack_export(&self, exporter: &str, run: RunId, sequence: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO ade_export_cursors (exporter, run_id, sequence) VALUES ($1, $2, $3)
             ON CONFLICT (exporter, run_id)
             DO UPDATE SET sequence = GREATEST(ade_export_cursors.sequence, excluded.sequence)",
        )
        .bind(exporter)
        .bind(run.to_string())
        .bind(to_i64(sequence, "sequence")?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn export_backlog(&self, exporter: &str, after: Option<RunId>, limit: usize) -> Result<Vec<ExportBacklog>> {
        let rows = sqlx::query(
            "SELECT r.id, r.workspace_id, coalesce(c.sequence, 0) AS acked
             FROM ade_runs r LEFT JOIN ade_export_cursors c ON c.exporter = $1 AND c.run_id = r.id
             WHERE ($2::TEXT IS NULL OR r.id > $2)
               AND (r.status = ANY($3::TEXT[]) OR coalesce(c.sequence, 0) < r.last_sequence)
             ORDER BY r.id
             LIMIT $4",
        )
        .bind(exporter)
        .bind(after.map(|id| id.to_string()))
        .bind(finalizable_statuses())
        .bind(i64::try_from(page_size(limit)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(backlog_from_row).collect()
    }

    async fn create_document(&self, document: &Document) -> Result<()> {
        sqlx::query(
            "INSERT INTO ade_documents (id, workspace_id, filename, byte_size, sha256, content_type, created_at,
                 created_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(document.id.to_string())
        .bind(document.workspace_id.as_str())
        .bind(document.filename.as_str())
        .bind(to_i64(document.byte_size, "byte_size")?)
        .bind(document.sha256.as_str())
        .bind(document.content_type.as_str())
        .bind(document.created_at.to_string())
        .bind(document.created_at.unix_micros())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_document(&self, workspace_id: Option<&WorkspaceId>, id: DocumentId) -> Result<Option<Document>> {
        let row = sqlx::query("SELECT * FROM ade_documents WHERE id = $1 AND ($2::TEXT IS NULL OR workspace_id = $2)")
            .bind(id.to_string())
            .bind(workspace_id.map(WorkspaceId::as_str))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(document_from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ade_core::store::run_conformance::{self as conformance, queued_run};

    use super::*;
    use crate::test_util as testing;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conforms() {
        let Some(url) = testing::url() else { return };
        conformance::run_all(&|| async {
            let (pool, schema) = testing::fresh_schema(&url).await;
            (Arc::new(PgRunStore::with_pool(pool).await.expect("open")) as Arc<dyn RunStore>, schema)
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_on_one_database_share_the_queue() {
        let Some(url) = testing::url() else { return };
        let (pool, schema) = testing::fresh_schema(&url).await;
        let a = PgRunStore::with_pool(pool).await.expect("open a");
        let b = PgRunStore::with_pool(schema.connect().await).await.expect("open b (schema already current)");
        let run = queued_run("acme", "members");
        a.create_run(&run, None).await.expect("create on a");
        let claimed = b.claim_queued("instance-b", Duration::from_secs(60)).await.expect("claim").expect("run");
        assert_eq!(claimed.id, run.id);
        assert_eq!(a.claim_queued("instance-a", Duration::from_secs(60)).await.expect("claim"), None);
        assert!(!a.renew_lease(run.id, "instance-a", Duration::from_secs(60)).await.expect("renew"));
        assert!(b.renew_lease(run.id, "instance-b", Duration::from_secs(60)).await.expect("renew"));
    }
}
