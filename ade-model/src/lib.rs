//! # ade-model
//!
//! The model of ade's contract (`SPEC.md`), with nothing but serde and schemars: the typed event
//! catalog and the [`Envelope`](event::Envelope) every event travels in, one payload type per
//! catalog entry ([`EventPayload`](event::EventPayload)), extension (`x.*`) and unknown types kept
//! as they were, id and timestamp newtypes, the run resource ([`run::Run`]), the run summary and
//! the fold that builds it ([`summary::RunSummaryBuilder`]), configurations
//! ([`config::Configuration`]) and their JSON Schemas ([`schema`]).
//!
//! HTTP clients and code generators depend on this crate alone; `ade-core` (the runtime) re-exports
//! every module under the same names.
//!
//! # Example
//!
//! ```
//! use ade_model::event::{Envelope, EventPayload};
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
//! # Forward compatibility
//!
//! Readers never fail on what a newer writer adds: an unknown `type` becomes
//! [`EventPayload::Unknown`](event::EventPayload::Unknown) with its raw payload, and unknown payload
//! fields are kept in each payload's `extra` map, so both survive a round trip.

pub mod config;
pub mod error;
pub mod event;
pub mod run;
pub mod schema;
pub mod summary;
pub mod text;
pub mod webhook;

pub use error::{Error, Result};
