//! [`SqliteRunStore`]: the embedded default run store (being written).

/// Runs, documents and idempotency keys in `ade.sqlite` under the data directory.
#[derive(Debug, Clone)]
pub struct SqliteRunStore {}
