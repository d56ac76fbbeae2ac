//! [`Error`]: the crate's one error type.

use serde::{Deserialize, Serialize};

/// An RFC 9457 problem, as the server answers every non-2xx request (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:ade:problem:not_found`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// A short summary of the kind.
    #[serde(default)]
    pub title: String,
    /// The HTTP status.
    #[serde(default)]
    pub status: u16,
    /// What went wrong with this request.
    #[serde(default)]
    pub detail: String,
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-2xx status; its problem+json (or one made from the status
    /// and the body's start when the body was not a problem).
    #[error("{} {}: {}", .0.status, .0.title, .0.detail)]
    Api(Problem),
    /// The request could not be sent or its answer not read (connection refused, reset, …).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// An answer was not what the API promises.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// An event stream skipped sequences: events after `last` were expected from `expected` on,
    /// but `got` came. The stream ends after this error.
    #[error("gap in the event stream: expected sequence {expected}, got {got}")]
    Gap {
        /// The sequence that should have come.
        expected: u64,
        /// The sequence that came.
        got: u64,
    },
    /// An event stream could not be (re)established after `attempts` consecutive tries.
    #[error("gave up after {attempts} consecutive failed attempts; last: {last}")]
    GaveUp {
        /// How many attempts failed in a row.
        attempts: u32,
        /// The last failure.
        last: Box<Error>,
    },
    /// A connection ended or went silent before the answer was complete (an event stream that
    /// ended before `run.completed`, no answer within the idle timeout). Transient.
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// An argument the client cannot use (a base URL that is not http(s), …).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// The problem, when the server answered with one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Api(problem) => Some(problem),
            Self::GaveUp { last, .. } => last.problem(),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered with a non-2xx one.
    pub fn status(&self) -> Option<u16> {
        self.problem().map(|p| p.status)
    }

    /// Whether trying again may succeed: transport errors, 5xx, 408 and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Disconnected(_) => true,
            Self::Api(problem) => problem.status >= 500 || problem.status == 408 || problem.status == 429,
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
