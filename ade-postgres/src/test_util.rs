//! Helpers for the tests of this crate and of crates built on it (cargo feature `test-util`): one
//! fresh schema of the test database per test, on the database `ADE_TEST_PG_URL` names; the
//! tests skip without it (and fail under `ADE_REQUIRE_PG=1`).
#![allow(clippy::expect_used)]

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::str::FromStr;

/// The test database's URL; `None` (after saying so) when the tests should skip.
///
/// # Panics
/// When `ADE_TEST_PG_URL` is unset but `ADE_REQUIRE_PG=1` says the tests must run.
pub fn url() -> Option<String> {
    match std::env::var("ADE_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ADE_REQUIRE_PG").as_deref() != Ok("1"),
                "ADE_REQUIRE_PG=1 but ADE_TEST_PG_URL is not set: the PostgreSQL tests cannot run"
            );
            // Written to stderr directly, past libtest's capture, so `cargo test` shows the skip.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: a PostgreSQL test (set ADE_TEST_PG_URL=postgres://... to run it)\n",
            );
            None
        }
    }
}

/// Drops its schema when dropped (also when a test panics).
#[derive(Debug)]
pub struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs outside async: clean up on a thread with its own runtime and connection.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                // The store's pool may still hold connections (even in a transaction).
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(&name)
                    .execute(&mut conn)
                    .await
                    .ok()?;
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE")))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        });
        let _ = cleanup.join();
    }
}

impl Schema {
    /// A URL whose connections use the schema: what a runtime is given.
    pub fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options[search_path]={name}&application_name={name}", self.url, name = self.name)
    }

    /// Another pool on the schema: a second server instance on the same database.
    pub async fn connect(&self) -> PgPool {
        let options = PgConnectOptions::from_str(&self.url)
            .expect("ADE_TEST_PG_URL")
            .options([("search_path", &self.name)])
            .application_name(&self.name);
        PgPoolOptions::new().max_connections(4).connect_with(options).await.expect("pool")
    }
}

/// A pool on a new empty schema of the test database, and the guard that drops it.
pub async fn fresh_schema(url: &str) -> (PgPool, Schema) {
    let name = format!("ade_test_{}", ulid::Ulid::generate().to_string().to_lowercase());
    let mut conn = PgConnection::connect(url).await.expect("connect to ADE_TEST_PG_URL");
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await.expect("create schema");
    conn.close().await.expect("close");
    let schema = Schema { url: url.to_owned(), name };
    (schema.connect().await, schema)
}
