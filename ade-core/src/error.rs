//! The one error type of `ade-core`.

use std::path::PathBuf;

use crate::event::RunId;

/// Everything that can go wrong in `ade-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An identifier did not have the expected form (prefix, length, alphabet).
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        /// What kind of id was expected (`run id`, `workspace id`, …).
        kind: &'static str,
        /// The rejected text (cut to 100 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A timestamp was not RFC 3339.
    #[error("invalid timestamp {value:?}: {reason}")]
    InvalidTimestamp {
        /// The rejected text (cut to 100 characters).
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// JSON (de)serialization failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`append to`, `read`, …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A stored log holds something that is not a valid event where one was expected.
    #[error("corrupt event log {}: {reason}", path.display())]
    CorruptLog {
        /// The log file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// A stored event could not be parsed into an envelope.
    #[error("stored event {sequence} is not a valid envelope: {reason}")]
    CorruptEvent {
        /// Its sequence.
        sequence: u64,
        /// The parser's message.
        reason: String,
    },
    /// An append did not continue the log exactly (a second writer, or a bug): nothing was written.
    #[error("run {run_id}: append of sequence {got} refused, the log expects {expected}")]
    SequenceConflict {
        /// The run.
        run_id: RunId,
        /// The next sequence the log accepts.
        expected: u64,
        /// The first sequence of the refused batch.
        got: u64,
    },
    /// The run already has a writer; there is only ever one per run.
    #[error("run {0} already has a writer")]
    WriterBusy(RunId),
    /// The run's log already ends with `run.completed`; nothing may follow it.
    #[error("run {0} is complete; no event may follow run.completed")]
    RunComplete(RunId),
    /// This process no longer holds the run's lease (another instance took the run over): its
    /// writes are refused, so two processes never write one run.
    #[error("run {0}: this process no longer holds the run's lease")]
    LeaseLost(RunId),
    /// Events emitted by a writer could not be persisted; none of them was published.
    #[error("run {run_id}: events from sequence {first_lost} could not be persisted: {reason}")]
    WriteFailed {
        /// The run.
        run_id: RunId,
        /// The first sequence that was not persisted.
        first_lost: u64,
        /// The store's error.
        reason: String,
        /// Whether the store refused for lack of space.
        out_of_space: bool,
    },
    /// A store refused a write for lack of space (disk or quota full).
    #[error("{what}: no space left: {detail}")]
    StorageFull {
        /// What could not be written (`the run store (ade.sqlite)`, …).
        what: &'static str,
        /// The store's own message.
        detail: String,
    },
    /// The dispatcher's writer task for the run is gone (the runtime is shutting down).
    #[error("run {0}: the writer is closed")]
    WriterClosed(RunId),
    /// No run has this id (in this workspace).
    #[error("run {0} not found")]
    RunNotFound(RunId),
    /// The run's state machine does not allow this change.
    #[error("run {run_id}: cannot go from {from} to {to}")]
    InvalidTransition {
        /// The run.
        run_id: RunId,
        /// Its current status.
        from: &'static str,
        /// The refused status.
        to: &'static str,
    },
    /// A list cursor that this store did not make.
    #[error("invalid cursor {0:?}")]
    InvalidCursor(String),
    /// The run store (database) failed.
    #[error("run store: {0}")]
    Database(String),
    /// An event is larger than the per-event limit.
    #[error("event of {size} bytes is over the {limit}-byte limit")]
    EventTooLarge {
        /// Its serialized size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No configuration has this id.
    #[error("unknown configuration {0}")]
    UnknownConfiguration(crate::event::ConfigurationId),
    /// No document has this id (in this workspace).
    #[error("unknown document {0}")]
    UnknownDocument(crate::event::DocumentId),
    /// The idempotency key was used with a different request.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    /// The run has already ended.
    #[error("run {0} has already ended")]
    AlreadyTerminal(RunId),
    /// An upload is larger than allowed.
    #[error("the document is larger than the {limit}-byte limit")]
    DocumentTooLarge {
        /// The limit.
        limit: u64,
    },
    /// A blob key with a segment that could leave the store (`..`, a separator, …), or none.
    #[error("invalid blob key segment {key:?}: {reason}")]
    InvalidBlobKey {
        /// The rejected segment (cut to 100 characters).
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A blob is larger than its writer allowed; nothing of it was kept.
    #[error("the blob is larger than the {limit}-byte limit")]
    BlobTooLarge {
        /// The limit.
        limit: u64,
    },
    /// A configuration file is not a valid configuration.
    #[error("configuration {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another runtime of this one) uses the data directory.
    #[error("data directory {} is in use by another ade runtime; stop it, or use another directory", .0.display())]
    DataDirInUse(PathBuf),
    /// A [`RuntimeBuilder`](crate::RuntimeBuilder)'s settings contradict each other.
    #[error("runtime settings: {0}")]
    Settings(String),
    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// The runtime is shutting down and takes nothing new.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// An error of the model (`ade-model`) that has no variant of its own here.
    #[error(transparent)]
    Model(ade_model::Error),
}

/// The model's errors keep their names here, so code matching `ade_core::Error::InvalidId` (or
/// `Config`, `CorruptEvent`, …) sees the same variant whichever crate raised it.
impl From<ade_model::Error> for Error {
    fn from(error: ade_model::Error) -> Self {
        use ade_model::Error as Model;
        match error {
            Model::InvalidId { kind, value, reason } => Self::InvalidId { kind, value, reason },
            Model::InvalidTimestamp { value, reason } => Self::InvalidTimestamp { value, reason },
            Model::Json(source) => Self::Json(source),
            Model::Io { action, path, source } => Self::Io { action, path, source },
            Model::CorruptEvent { sequence, reason } => Self::CorruptEvent { sequence, reason },
            Model::Config { path, reason } => Self::Config { path, reason },
            other => Self::Model(other),
        }
    }
}

impl Error {
    /// Whether this error is a store refusing to write for lack of space (`ENOSPC`, `EDQUOT`,
    /// SQLite's "database or disk is full"): the condition an operator fixes by freeing space,
    /// after which writes work again.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            Self::StorageFull { .. } | Self::WriteFailed { out_of_space: true, .. } => true,
            Self::Io { source, .. } => io_out_of_space(source),
            _ => false,
        }
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub(crate) fn io_out_of_space(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || matches!(error.raw_os_error(), Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT)
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) use ade_model::error::excerpt;
