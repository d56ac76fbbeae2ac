//! # ade-client
//!
//! The typed client of ade over HTTP (SPEC §4): documents, configurations, runs
//! (create/get/list/cancel/[`wait`](Client::wait)), their output files, event pages and NDJSON logs, and
//! [`EventStream`], a run's events over Server-Sent Events that resumes by itself after network
//! errors and server restarts, drops duplicates, reports gaps, and ends after `run.completed`.
//!
//! ```no_run
//! use futures::StreamExt as _;
//!
//! # async fn example(run_id: ade_client::model::event::RunId) -> Result<(), ade_client::Error> {
//! let client = ade_client::Client::new("http://127.0.0.1:8080")?;
//! let mut events = client.events(run_id, 0);
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {}", event.sequence, event.event_type());
//! }
//! let run = client.wait(run_id).await?;
//! println!("{:?}", run.status);
//! # Ok(())
//! # }
//! ```

//! # Cargo features
//!
//! - `local` (off by default): [`Client::local`], the same operations over an `ade_core::Runtime`
//!   in this process, and `ade_client::core` (ade-core). Without it the crate depends on
//!   `ade-model` and reqwest only.

mod client;
mod error;
#[cfg(feature = "local")]
mod local;
mod stream;
mod transport;
mod webhooks;

#[cfg(feature = "local")]
pub use ade_core as core;
pub use ade_model as model;
pub use client::{Client, EventPage, ListRuns, NewRun, Output, RunList};
pub use error::{Error, Problem, Result};
pub use stream::{EventStream, Reconnect};
pub use webhooks::NewWebhook;
