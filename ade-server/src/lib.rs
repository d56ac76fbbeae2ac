//! # ade-server
//!
//! The HTTP host of ade (SPEC §4): runs, documents, configurations and event streams over axum.
//! Not built yet; this crate currently re-exports the model it will serve.

pub use ade_core as core;
