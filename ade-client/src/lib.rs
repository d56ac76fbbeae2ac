//! # ade-client
//!
//! The typed client of ade, over HTTP or in-process. Not built yet; this crate currently
//! re-exports the model it will speak.

pub use ade_core as core;
