//! The one error type of `ade-model`: what parsing ids, timestamps, stored events and
//! configuration files can report. `ade_core::Error` converts from it variant by variant.

use std::path::PathBuf;

/// Everything that can go wrong in `ade-model`.
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
        /// What was being done (`read`, …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A stored event could not be parsed into an envelope.
    #[error("stored event {sequence} is not a valid envelope: {reason}")]
    CorruptEvent {
        /// Its sequence.
        sequence: u64,
        /// The parser's message.
        reason: String,
    },
    /// A configuration file is not a valid configuration.
    #[error("configuration {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cuts user-supplied text before it is echoed in an error message.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
