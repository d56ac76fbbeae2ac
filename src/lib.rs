//! # ade
//!
//! Runs and their event streams: a client creates a run, ade builds what it needs, executes an
//! engine, and turns everything that happens into one ordered, typed, persisted event log per run.
//!
//! This facade re-exports the crates of the workspace:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`model`] | `ade-model` | the model: event catalog, ids, runs, summaries, configurations, schemas (also re-exported by `core`) |
//! | [`core`] | `ade-core` | the runtime and its guarantees: dispatcher, stores, engines, orchestration |
//! | `extract` | `ade-extract` | the reference spreadsheet engine (feature `extract`, on by default) |
//! | `nats` | `ade-nats` | the NATS JetStream event exporter (feature `nats`, on by default) |
//! | [`server`] | `ade-server` | the HTTP host |
//! | [`client`] | `ade-client` | the typed client |

pub use ade_client as client;
pub use ade_core as core;
pub use ade_core::*;
#[cfg(feature = "extract")]
pub use ade_extract as extract;
pub use ade_model as model;
#[cfg(feature = "nats")]
pub use ade_nats as nats;
#[cfg(feature = "postgres")]
pub use ade_postgres as postgres;
pub use ade_server as server;
