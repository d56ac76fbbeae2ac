//! # ade-core
//!
//! The runtime of ade: every run has one ordered, typed, persisted event log. This crate holds
//! the dispatcher (sequence numbers, persistence before publication, live fan-out), the storage
//! traits ([`store::EventStore`], [`store::RunStore`], [`blob::BlobStore`]) with their in-memory
//! and NDJSON + SQLite implementations, the engine traits and the `process` engine, and the
//! orchestration that turns a request into a run ([`Runtime`]).
//!
//! The model (the event catalog, ids, runs, summaries, configurations and their JSON Schemas) is
//! the `ade-model` crate, re-exported here under the same names: [`event`], [`run`],
//! [`summary`], [`config`], [`schema`].
//!
//! [`export::EventExporter`] is how an embedder gets every persisted event of every run, in order,
//! at least once.
//!
//! # Example
//!
//! A runtime on a data directory, with a `process` configuration, running one run and reading its
//! log as it is written:
//!
//! ```
//! use ade_core::config::Configuration;
//! use ade_core::dispatch::After;
//! use ade_core::event::EventPayload;
//! use ade_core::run::RunOutcome;
//! use ade_core::{CreateRun, Runtime};
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data_dir = tempfile::tempdir()?;
//! let configuration: Configuration = serde_json::from_str(
//!     r#"{"id": "hello", "version": "1", "engine": "process", "command": ["sh", "-c", "echo hello"]}"#,
//! )?;
//! let runtime = Runtime::builder().data_dir(data_dir.path()).configuration(configuration).build().await?;
//!
//! let run = runtime.create_run(CreateRun::new("hello".parse()?)).await?.into_run();
//! let mut events = runtime.subscribe(None, run.id, After(0)).await?;
//! let mut lines = Vec::new();
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     match &event.envelope()?.payload {
//!         EventPayload::ConsoleLine(line) => lines.push(line.message.clone()),
//!         EventPayload::RunCompleted(done) => {
//!             assert_eq!(done.status, RunOutcome::Succeeded);
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! assert_eq!(lines, ["hello"]);
//! runtime.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Cargo features
//!
//! - `test-util`: helpers for the tests of crates built on this one ([`test_util`], the stores'
//!   conformance suite, stores that fail on purpose).
//!
//! Several runtimes on one PostgreSQL database are the crate `ade-postgres`: its stores and
//! [`coordinate::Coordinator`] come as one [`Backend`] (`ade_postgres::connect(url)`), given to
//! [`RuntimeBuilder::backend`].
//!
//! The reference spreadsheet engine `extract` (SPEC §10) is the crate `ade-extract`, registered by
//! the host (`ade_extract::register(Runtime::builder())`). Without it, `"engine": "extract"`
//! configurations still load, and their runs fail with `config_error` naming that crate.
//!
//! # Forward compatibility
//!
//! Readers never fail on what a newer writer adds: an unknown `type` becomes
//! [`EventPayload::Unknown`](event::EventPayload::Unknown) with its raw payload, and unknown payload
//! fields are kept in each payload's `extra` map, so both survive a round trip.

pub mod api;
pub mod blob;
pub mod coordinate;
pub mod error;
mod sync;

pub use ade_model::{config, event, run, schema, summary, text, webhook};

pub use error::{Error, Result};
pub mod dispatch;
pub mod engine;
pub mod export;
pub mod log_limit;
pub mod metrics;
pub mod orchestrate;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod testing;

pub use coordinate::Backend;
pub use orchestrate::{CreateRun, Created, Runtime, RuntimeBuilder};
