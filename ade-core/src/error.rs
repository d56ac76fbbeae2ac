//! The one error type of `ade-core`.

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
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cuts user-supplied text before it is echoed in an error message.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
