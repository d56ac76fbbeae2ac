//! ade's NATS JetStream exporter: every persisted event of every run, published to a JetStream
//! stream, so that consumers on other machines can follow runs ("fan-out beyond one machine").
//!
//! [`JetStreamExporter`] is an [`EventExporter`]: register it with
//! [`RuntimeBuilder::exporter`](ade_core::RuntimeBuilder::exporter). Each event goes to the
//! subject `<prefix>.<workspace>.runs.<run_id>.events` ([`subject`]) with the event's stored JSON
//! line, byte for byte, as its payload and its event id as the `Nats-Msg-Id` header, in sequence
//! order. A batch is acknowledged to ade only once JetStream has acknowledged every message of it,
//! so the exporter inherits ade's guarantee (at least once, in order, no gap), and JetStream's
//! de-duplication on `Nats-Msg-Id` turns the redelivery of a batch that was stored but not yet
//! acknowledged (after a crash, a timeout) into no-ops within the stream's
//! [duplicate window](JetStreamOptions::duplicate_window).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! let exporter = ade_nats::JetStreamExporter::connect("nats://127.0.0.1:4222", ade_nats::JetStreamOptions::default()).await?;
//! let runtime = ade_core::Runtime::builder().data_dir("./ade-data").exporter(Arc::new(exporter)).build().await?;
//! # drop(runtime);
//! # Ok(())
//! # }
//! ```
//!
//! # Events larger than the server's `max_payload`
//!
//! ade persists events of up to 1 MiB (SPEC §9, [`MAX_EVENT_BYTES`]); a NATS message (headers
//! and payload together) is limited by the server's `max_payload`, which is 1 MiB by default too.
//! An event that does not fit could never be published: retried forever, it would stop its run's
//! export for good (a wedge). So [`connect`](JetStreamExporter::connect) compares the server's
//! `max_payload` with the largest event plus [`HEADER_ROOM`] and, by default
//! ([`Oversize::Refuse`]), refuses to start when it is too small, saying what to change (e.g.
//! `max_payload: 2MB` in the server's configuration). With [`Oversize::Stub`] it starts anyway
//! and publishes, in the place of each event that does not fit, a small stand-in under the same
//! subject and `Nats-Msg-Id`, marked by the header [`OMITTED_HEADER`] (the event's size), whose
//! payload names the event (`event_id`, `sequence`, `type`, `workspace_id`, `run_id`): the
//! stream keeps every sequence, and a consumer fetches the full event from ade's API. Such
//! events are rare (console lines are cut at 16 KiB by default; the largest are `run.completed`
//! with a huge summary) and each is logged.
//!
//! # Ordering across reconnects
//!
//! A batch is published pipelined on one connection, so JetStream stores it in order. If the
//! connection drops in the middle of a batch, messages written before the drop may be lost while
//! later ones (sent after the client reconnects) are stored; the batch then fails (a missing
//! acknowledgement), and its redelivery stores the lost ones after the later ones. Consumers that
//! must see a run strictly in order therefore order by the payload's `sequence` (contiguous from
//! 1 per run) and drop what they have already seen, as they must anyway for at-least-once.

use std::sync::Arc;
use std::time::Duration;

use ade_core::event::{StoredEvent, WorkspaceId};
use ade_core::export::{EventExporter, ExportError};
use ade_core::store::RunKey;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;

/// The largest event ade persists (SPEC §9: 1 MiB), what the server's `max_payload` must carry.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Bytes reserved for a message's headers besides its payload: `NATS/1.0`, `Nats-Msg-Id: evt_…`
/// (about 60 bytes) and, for a stand-in, [`OMITTED_HEADER`], with room to spare.
pub const HEADER_ROOM: usize = 256;

/// Most messages of a batch published before the oldest acknowledgement is awaited.
const MAX_IN_FLIGHT: usize = 1024;

/// The header that marks a stand-in for an event larger than the server's `max_payload`; its
/// value is the event's size in bytes.
pub const OMITTED_HEADER: &str = "Ade-Event-Omitted";

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The NATS server could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL given.
        url: String,
        /// What the client said.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The server's `max_payload` cannot carry ade's largest event (see the crate documentation).
    #[error(
        "the NATS server's max_payload is {max_payload} bytes, but ade's events can take up to {needed} bytes \
         ({MAX_EVENT_BYTES} bytes and headers): raise max_payload in the server's configuration \
         (e.g. `max_payload: 2MB`), or publish stand-ins for the larger events (Oversize::Stub, \
         ade-server --nats-oversize stub)"
    )]
    MaxPayloadTooSmall {
        /// The server's limit.
        max_payload: usize,
        /// What the largest event needs.
        needed: usize,
    },
    /// The stream could not be found or created.
    #[error("cannot create the JetStream stream {stream}: {source}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What JetStream said.
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    /// The stream exists but does not take the exporter's subjects.
    #[error("the JetStream stream {stream} takes {subjects:?}, not {wanted}: choose another stream or prefix")]
    StreamSubjects {
        /// The stream's name.
        stream: String,
        /// Its subjects.
        subjects: Vec<String>,
        /// The exporter's subjects.
        wanted: String,
    },
    /// A subject prefix that is not one or more NATS tokens.
    #[error("{0:?} is not a subject prefix (tokens of letters, digits, '-' and '_', separated by '.')")]
    Prefix(String),
}

/// What to do with events larger than the server's `max_payload` (see the crate documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Oversize {
    /// Refuse to start when the server's `max_payload` is below [`MAX_EVENT_BYTES`] +
    /// [`HEADER_ROOM`].
    #[default]
    Refuse,
    /// Start anyway; publish a stand-in for each event that does not fit.
    Stub,
}

/// How the exporter publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JetStreamOptions {
    /// The stream (default `ADE_EVENTS`), created if missing with the subjects
    /// `<prefix>.*.runs.*.events`.
    pub stream: String,
    /// The first token(s) of every subject (default `ade`).
    pub subject_prefix: String,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a republished message (default 2
    /// minutes, JetStream's own default), applied when the exporter creates the stream. A batch is
    /// republished after a failed or unacknowledged delivery: within ade's backoff (at most 30 s
    /// by default) or after a restart. Two minutes covers the backoff and a prompt restart, while
    /// the server keeps every id of the window in memory (at 10,000 events/s, 1.2 million ids), so
    /// a much longer window costs memory on the server. A redelivery after a longer outage stores
    /// duplicates, which consumers drop by `sequence`.
    pub duplicate_window: Duration,
    /// The exporter's name, the key of its cursors in the run store (default `nats`).
    pub name: String,
    /// What to do with events larger than the server's `max_payload` (default [`Oversize::Refuse`]).
    pub oversize: Oversize,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        Self {
            stream: "ADE_EVENTS".to_owned(),
            subject_prefix: "ade".to_owned(),
            duplicate_window: Duration::from_secs(120),
            name: "nats".to_owned(),
            oversize: Oversize::Refuse,
        }
    }
}

impl JetStreamOptions {
    /// Sets [`stream`](Self::stream).
    #[must_use]
    pub fn with_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = stream.into();
        self
    }

    /// Sets [`subject_prefix`](Self::subject_prefix).
    #[must_use]
    pub fn with_subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// Sets [`duplicate_window`](Self::duplicate_window).
    #[must_use]
    pub fn with_duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Sets [`name`](Self::name).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`oversize`](Self::oversize).
    #[must_use]
    pub fn with_oversize(mut self, oversize: Oversize) -> Self {
        self.oversize = oversize;
        self
    }
}

/// The subject token of a workspace: its id with `.` (a NATS token separator) written `~`, which
/// workspace ids cannot contain, so distinct workspaces keep distinct tokens.
pub fn workspace_token(workspace: &WorkspaceId) -> String {
    workspace.as_str().replace('.', "~")
}

/// The subject of a run's events: `<prefix>.<workspace token>.runs.<run_id>.events`.
pub fn subject(prefix: &str, run: &RunKey) -> String {
    format!("{prefix}.{}.runs.{}.events", workspace_token(&run.workspace_id), run.run_id)
}

/// The subjects of every run's events under `prefix` (the stream's subjects).
pub fn all_runs_subject(prefix: &str) -> String {
    format!("{prefix}.*.runs.*.events")
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}

/// Publishes every persisted event to a JetStream stream (see the crate documentation).
#[derive(Debug)]
pub struct JetStreamExporter {
    context: jetstream::Context,
    options: JetStreamOptions,
    /// The server's `max_payload`, read at connect.
    max_payload: usize,
}

impl JetStreamExporter {
    /// Connects to the server at `url`, checks its `max_payload` (see [`Oversize`]) and makes sure
    /// the stream exists.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn connect(url: &str, options: JetStreamOptions) -> Result<Self, Error> {
        let client = async_nats::connect(url).await.map_err(|source| Error::Connect { url: url.to_owned(), source })?;
        Self::with_client(client, options).await
    }

    /// Like [`connect`](Self::connect), over a client the embedder set up (credentials, TLS).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn with_client(client: async_nats::Client, options: JetStreamOptions) -> Result<Self, Error> {
        if !valid_prefix(&options.subject_prefix) {
            return Err(Error::Prefix(options.subject_prefix));
        }
        let max_payload = client.server_info().max_payload;
        let needed = MAX_EVENT_BYTES + HEADER_ROOM;
        if max_payload < needed {
            match options.oversize {
                Oversize::Refuse => return Err(Error::MaxPayloadTooSmall { max_payload, needed }),
                Oversize::Stub => tracing::warn!(
                    max_payload,
                    "the NATS server's max_payload is below ade's largest event: events larger than {} bytes are \
                     published as stand-ins ({OMITTED_HEADER})",
                    max_payload.saturating_sub(HEADER_ROOM)
                ),
            }
        }
        let context = jetstream::new(client);
        let wanted = all_runs_subject(&options.subject_prefix);
        let stream = context
            .get_or_create_stream(stream::Config {
                name: options.stream.clone(),
                subjects: vec![wanted.clone()],
                duplicate_window: options.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|source| Error::Stream { stream: options.stream.clone(), source })?;
        let subjects = &stream.cached_info().config.subjects;
        if !subjects.contains(&wanted) {
            return Err(Error::StreamSubjects { stream: options.stream.clone(), subjects: subjects.clone(), wanted });
        }
        Ok(Self { context, options, max_payload })
    }

    /// The server's `max_payload`, as read at connect.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The options the exporter was made with.
    pub fn options(&self) -> &JetStreamOptions {
        &self.options
    }
}

/// The headers and payload of one event's message: the stored JSON with `Nats-Msg-Id`, or, when
/// headers and JSON would not fit in `max_payload`, a stand-in (see the crate documentation).
///
/// # Errors
/// A stand-in's event that cannot be parsed.
pub fn message(event: &StoredEvent, max_payload: usize) -> Result<(HeaderMap, Bytes), ExportError> {
    let envelope = event.envelope().map_err(ExportError::from_source)?;
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, envelope.event_id.to_string().as_str());
    let size = event.json().len();
    if size.saturating_add(HEADER_ROOM) <= max_payload {
        return Ok((headers, event.json().clone()));
    }
    headers.insert(OMITTED_HEADER, size.to_string().as_str());
    let stub = serde_json::json!({
        "event_id": envelope.event_id,
        "sequence": envelope.sequence,
        "type": envelope.event_type(),
        "workspace_id": envelope.workspace_id,
        "run_id": envelope.run_id,
        "omitted_bytes": size,
    });
    let payload = serde_json::to_vec(&stub).map_err(ExportError::from_source)?;
    Ok((headers, Bytes::from(payload)))
}

#[async_trait::async_trait]
impl EventExporter for JetStreamExporter {
    fn name(&self) -> &str {
        &self.options.name
    }

    /// Publishes the batch pipelined, then waits for JetStream's acknowledgements in order: `Ok`
    /// only once every message is stored (or was already, a duplicate).
    async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
        let subject = subject(&self.options.subject_prefix, run);
        let mut acks: std::collections::VecDeque<jetstream::context::PublishAckFuture> =
            std::collections::VecDeque::with_capacity(events.len().min(MAX_IN_FLIGHT));
        for event in events {
            // The client holds an acknowledgement permit per message until its ack is awaited (5,000
            // by default): a batch larger than that would wait for permits only its own acks free.
            if acks.len() == MAX_IN_FLIGHT
                && let Some(oldest) = acks.pop_front()
            {
                oldest.await.map_err(ExportError::from_source)?;
            }
            let (headers, payload) = message(event, self.max_payload)?;
            if headers.get(OMITTED_HEADER).is_some() {
                tracing::warn!(
                    run_id = %run.run_id,
                    sequence = event.sequence(),
                    bytes = event.json().len(),
                    max_payload = self.max_payload,
                    "an event larger than the NATS server's max_payload is published as a stand-in"
                );
            }
            let ack = self
                .context
                .publish_with_headers(subject.clone(), headers, payload)
                .await
                .map_err(ExportError::from_source)?;
            acks.push_back(ack);
        }
        for ack in acks {
            ack.await.map_err(ExportError::from_source)?;
        }
        Ok(())
    }
}

#[cfg(feature = "test-util")]
pub mod test_util;

#[cfg(test)]
mod tests;
