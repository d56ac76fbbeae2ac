//! The crate's one error enum.

/// What went wrong with a webhook request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not an `http`/`https` URL this crate can send to.
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// The URL names a loopback, private or reserved address, which the deployment does not
    /// allow (server-side request forgery).
    #[error("refused webhook target: {0}; private targets must be allowed by the deployment")]
    PrivateTarget(String),
    /// An event type filter that names no event type and is no `prefix.*` pattern.
    #[error("invalid event type filter {0:?}: expected a type (run.completed), a prefix (run.*) or *")]
    InvalidFilter(String),
    /// A signing secret that is not `whsec_<base64>` of at least 16 bytes.
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(&'static str),
    /// No such subscription (in the caller's workspaces).
    #[error("no webhook {0}")]
    NotFound(String),
    /// A subscription's stored record could not be read back.
    #[error("corrupt webhook record {key}: {reason}")]
    Corrupt {
        /// Its key in the blob store.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system gave no randomness for a secret.
    #[error("no randomness for a webhook secret: {0}")]
    Random(String),
    /// The HTTP client could not be built.
    #[error("webhook HTTP client: {0}")]
    Client(String),
    /// An error of the runtime or its stores.
    #[error(transparent)]
    Core(#[from] ade_core::Error),
}

/// A result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
