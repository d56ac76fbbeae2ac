//! Helpers for the tests of ade-core and of crates built on it (cargo feature `test-util`):
//! [`GatedEngine`], an engine a test holds at a gate; [`postgres`], a fresh schema of the test
//! database per test. Stores that fail on purpose are [`crate::store::faults`].

use std::sync::Arc;

pub use crate::testing::{assert_well_formed, completion, follow, id, run_to_end, types};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::config::{Configuration, EngineSpec};
use crate::engine::{Engine, EngineContext, EngineFailure, EngineOutcome, EventSink};
use crate::event::{ConsoleLevel, ConsoleStream};

/// An engine for tests, configured by its configuration's settings: `before` console lines, then
/// (when `gated`) it waits for a permit of the server's gate, then `after` lines and an output.
#[derive(Debug)]
pub struct GatedEngine {
    /// Each gated run takes (and forgets) one permit before it goes on.
    pub gate: Arc<Semaphore>,
}

/// A numeric setting of a custom configuration (0 when absent).
fn number(configuration: &Configuration, name: &str) -> u64 {
    match &configuration.engine {
        EngineSpec::Custom { settings, .. } => settings.get(name).and_then(Value::as_u64).unwrap_or(0),
        _ => 0,
    }
}

#[async_trait]
impl Engine for GatedEngine {
    fn version(&self) -> &str {
        "gated-1"
    }

    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome {
        let configuration = context.configuration.clone();
        for i in 0..number(&configuration, "before") {
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("before {i}")).await;
        }
        if number(&configuration, "gated") == 1 {
            tokio::select! {
                permit = self.gate.acquire() => match permit {
                    Ok(permit) => permit.forget(),
                    Err(_) => return EngineOutcome::failed(EngineFailure::new("engine_error", "gate closed")),
                },
                () = context.cancel.cancelled() => {
                    return EngineOutcome::failed(EngineFailure::new("cancelled", "stopped at the gate"));
                }
            }
        }
        for i in 0..number(&configuration, "after") {
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("after {i}")).await;
        }
        let _ = tokio::fs::create_dir_all(&context.output_dir).await;
        let _ = tokio::fs::write(context.output_dir.join("result.txt"), b"done\n").await;
        EngineOutcome::succeeded(vec!["outputs/result.txt".to_owned()])
    }
}

/// A configuration of the gated engine.
pub fn gated_configuration(id: &str, before: u64, gated: bool, after: u64) -> Configuration {
    serde_json::from_value(json!({
        "id": id, "version": "1", "engine": "gated",
        "before": before, "gated": u64::from(gated), "after": after,
    }))
    .expect("a valid configuration")
}

/// Test databases: one fresh schema per test, on the database `ADE_TEST_PG_URL` names; the tests
/// skip without it (and fail under `ADE_REQUIRE_PG=1`).
#[cfg(feature = "postgres")]
#[allow(clippy::expect_used)]
pub mod postgres {
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
}
