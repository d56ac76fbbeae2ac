//! [`MemoryRunStore`]: runs and documents in memory (being written).

/// Runs, documents and idempotency keys in memory, for tests and embedding.
#[derive(Debug, Clone, Default)]
pub struct MemoryRunStore {}
