//! # ade-core
//!
//! The model and the guarantees of ade: every run has one ordered, typed, persisted event log.
//!
//! This crate holds the typed event catalog of the contract (`SPEC.md`): the [`Envelope`](event::Envelope)
//! every event travels in, one payload type per catalog entry ([`EventPayload`](event::EventPayload)),
//! extension (`x.*`) and unknown types kept as they were, id and timestamp newtypes, the run
//! resource ([`run::Run`]), the run summary ([`summary::RunSummary`]), configurations
//! ([`config::Configuration`]) and their JSON Schemas ([`schema`]); and the runtime that executes
//! runs ([`Runtime`]), with [`export::EventExporter`], through which an embedder gets every
//! persisted event of every run, in order, at least once.
//!
//! # Example
//!
//! ```
//! use ade_core::event::{Envelope, EventPayload};
//!
//! let line = r#"{"type":"run.phase.started","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N",
//!   "created_at":"2026-11-26T18:52:57.802612Z","sequence":23,"source":"engine",
//!   "workspace_id":"acme","configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T",
//!   "payload":{"phase":"mapping","message":"Mapping columns to fields"}}"#;
//! let event: Envelope = serde_json::from_str(line)?;
//! assert_eq!(event.event_type(), "run.phase.started");
//! assert!(matches!(&event.payload, EventPayload::RunPhaseStarted(p) if p.phase == "mapping"));
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Cargo features
//!
//! Both are on by default:
//! - `postgres`: the PostgreSQL event and run stores (`RuntimeBuilder::postgres`), for several
//!   instances on one database.
//! - `extract`: the reference spreadsheet engine (`engine::extract`, SPEC §10) and the crates it
//!   alone needs (calamine, rust_xlsxwriter, csv, regex). Without it, `"engine": "extract"`
//!   configurations still load, and their runs fail with `config_error` naming the feature.
//!
//! # Forward compatibility
//!
//! Readers never fail on what a newer writer adds: an unknown `type` becomes
//! [`EventPayload::Unknown`](event::EventPayload::Unknown) with its raw payload, and unknown payload
//! fields are kept in each payload's `extra` map, so both survive a round trip.

pub mod blob;
pub mod config;
pub mod error;
pub mod event;
pub mod run;
pub mod schema;
pub mod summary;
mod sync;

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
#[cfg(test)]
pub(crate) mod testing;

pub use orchestrate::{CreateRun, Created, Runtime, RuntimeBuilder};
