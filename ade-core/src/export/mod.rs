//! Event exporters: the embedder's code sees every persisted event of every run, in order.
//!
//! An [`EventExporter`] is registered on the builder
//! ([`RuntimeBuilder::exporter`](crate::RuntimeBuilder::exporter)) or on the running runtime
//! ([`Runtime::add_exporter`](crate::Runtime::add_exporter), and removed with
//! [`Runtime::remove_exporter`](crate::Runtime::remove_exporter)); the runtime runs one delivery
//! task per exporter. (It is not the engine's [`EventSink`](crate::engine::EventSink),
//! which is what an engine emits *into*: an exporter gets what was *persisted*.)
//!
//! # Delivery guarantee
//!
//! - **At least once, never a gap.** For each run, [`deliver`](EventExporter::deliver) gets the
//!   run's events in sequence order, in batches that are contiguous and start right after the
//!   last sequence the exporter acknowledged. A batch is acknowledged when `deliver` returns
//!   `Ok`; the acknowledgement (the exporter's *cursor* for the run) is kept in the run store, so
//!   it survives a restart, even `kill -9`. After one, delivery resumes from the cursor: a batch
//!   delivered but not yet acknowledged is delivered again. Exporters that must not apply an
//!   event twice deduplicate by [`EventId`](crate::event::EventId) (or by run and sequence).
//! - **Every run, finished or not.** Events reach an exporter shortly after they are persisted
//!   (the run's writer wakes the delivery task), including runs that finished while the process
//!   was down or before the exporter was registered: at start, and every
//!   [`rescan_interval`](ExportOptions::rescan_interval), the delivery task looks for runs whose
//!   cursor is behind their log (all of a new exporter's runs are).
//! - **Failures are retried, and slow no one else.** A failing (or panicking) `deliver` is
//!   retried with exponential backoff (with jitter: each wait is between half the step and the
//!   step) between [`backoff_min`](ExportOptions::backoff_min) and
//!   [`backoff_max`](ExportOptions::backoff_max), for as long as it fails. Runs never wait for
//!   an exporter: they are persisted, published to subscribers and finished regardless. Each
//!   exporter has its own task, so a slow or failing exporter does not hold back another. Within
//!   one exporter, runs take turns (a few batches each), so a busy run does not keep the others
//!   waiting; a batch that fails is retried before the exporter moves on.
//! - **Shutdown.** [`Runtime::shutdown`](crate::Runtime::shutdown) first lets the runs finish,
//!   then gives exporters up to [`shutdown_grace`](ExportOptions::shutdown_grace) to catch up with
//!   what was persisted; whatever is left is delivered after the next start.
//!
//! With several instances on one PostgreSQL database, each instance delivers the runs it writes,
//! and every instance's rescans pick up any run behind its cursor, so two instances with the same
//! exporter may both deliver a batch: still at least once, in order, without gaps (cursors only
//! move forward), but more duplicates than with one instance (see `docs/decisions.md`).
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use ade_core::event::StoredEvent;
//! use ade_core::export::{EventExporter, ExportError};
//! use ade_core::store::RunKey;
//!
//! /// Keeps the JSON line of every event it is given.
//! #[derive(Debug, Default)]
//! struct Lines(Mutex<Vec<String>>);
//!
//! #[async_trait::async_trait]
//! impl EventExporter for Lines {
//!     fn name(&self) -> &str {
//!         "lines"
//!     }
//!
//!     async fn deliver(&self, _run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
//!         let mut lines = self.0.lock().map_err(|_| ExportError::new("poisoned"))?;
//!         for event in events {
//!             lines.push(String::from_utf8_lossy(event.json()).into_owned());
//!         }
//!         Ok(())
//!     }
//! }
//! # let _ = Lines::default();
//! ```

mod driver;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub(crate) use driver::{Exporters, check_names};

use crate::event::StoredEvent;
use crate::store::RunKey;

/// Why an exporter could not take a batch; the batch is delivered again after a backoff.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// The last sequence of the batch the exporter did take before it failed.
    delivered_up_to: Option<u64>,
}

impl ExportError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None, delivered_up_to: None }
    }

    /// An error caused by `source`, saying what it says.
    pub fn from_source(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { message: source.to_string(), source: Some(Box::new(source)), delivered_up_to: None }
    }

    /// Says that the batch's events up to `sequence` were taken before the failure: they are
    /// acknowledged, and the retry starts after them (an exporter that sends events one by one
    /// then makes progress through an endpoint that fails now and then). A sequence outside the
    /// batch is ignored.
    #[must_use]
    pub fn delivered_up_to(mut self, sequence: u64) -> Self {
        self.delivered_up_to = Some(sequence);
        self
    }

    /// What [`delivered_up_to`](Self::delivered_up_to) said.
    pub fn delivered(&self) -> Option<u64> {
        self.delivered_up_to
    }
}

/// The embedder's code that every persisted event of every run is delivered to (see the
/// [module documentation](self) for the guarantee).
#[async_trait]
pub trait EventExporter: Send + Sync + Debug + 'static {
    /// A stable name: the key of the exporter's cursors in the run store. Renaming an exporter
    /// makes it a new one, which gets every run again from the start. Names are unique within a
    /// runtime.
    fn name(&self) -> &str;

    /// Takes one batch of one run's events: non-empty, contiguous, in sequence order, starting
    /// right after the last batch of this run that returned `Ok` (or at sequence 1). Returning
    /// `Ok` acknowledges the batch; an error has it delivered again, after a backoff.
    ///
    /// # Errors
    /// Whatever kept the exporter from taking the batch.
    async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError>;
}

/// How exporters are fed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Most events in one [`deliver`](EventExporter::deliver) call (default 256).
    pub batch_size: usize,
    /// The first wait after a failed delivery (default 100 ms); it doubles with every failure in
    /// a row.
    pub backoff_min: Duration,
    /// The longest wait between two attempts (default 30 s).
    pub backoff_max: Duration,
    /// How often the run store is searched for runs whose cursor is behind their log (default
    /// 60 s; at start too). Runs written by this process do not wait for it.
    pub rescan_interval: Duration,
    /// How long [`Runtime::shutdown`](crate::Runtime::shutdown) waits for exporters to deliver
    /// what was persisted before stopping them (default 5 s).
    pub shutdown_grace: Duration,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            rescan_interval: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl ExportOptions {
    /// Sets [`batch_size`](Self::batch_size) (at least 1).
    #[must_use]
    pub fn with_batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Sets [`backoff_min`](Self::backoff_min) and [`backoff_max`](Self::backoff_max) (the
    /// larger of the two).
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Sets [`rescan_interval`](Self::rescan_interval) (at least 10 ms).
    #[must_use]
    pub fn with_rescan_interval(mut self, interval: Duration) -> Self {
        self.rescan_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Sets [`shutdown_grace`](Self::shutdown_grace).
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

#[cfg(test)]
mod tests;
