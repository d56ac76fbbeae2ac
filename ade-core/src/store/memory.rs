//! [`MemoryEventStore`]: logs in memory, for tests and embedding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;

use super::{Durability, EventStore, EventStream, LogTail, RunKey, check_continues};
use crate::error::Result;
use crate::event::StoredEvent;
use crate::sync::lock;

/// How many events a read hands out per lock.
const READ_CHUNK: usize = 256;

/// Keeps every run's log in memory. Cloning shares the logs.
#[derive(Debug, Clone, Default)]
pub struct MemoryEventStore {
    logs: Arc<Mutex<HashMap<RunKey, Vec<Arc<StoredEvent>>>>>,
}

impl MemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn logs(&self) -> MutexGuard<'_, HashMap<RunKey, Vec<Arc<StoredEvent>>>> {
        lock(&self.logs)
    }

    fn tail_of(log: Option<&Vec<Arc<StoredEvent>>>) -> LogTail {
        log.and_then(|log| log.last())
            .map_or(LogTail::default(), |last| LogTail { last_sequence: last.sequence(), terminal: last.is_terminal() })
    }

    /// Up to `READ_CHUNK` events after `after`.
    fn chunk_after(&self, run: &RunKey, after: u64) -> Vec<Arc<StoredEvent>> {
        let logs = self.logs();
        let Some(log) = logs.get(run) else { return Vec::new() };
        // Sequences are 1..=len, so the event after `after` is at index `after`.
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(log.len());
        log[start..(start + READ_CHUNK).min(log.len())].to_vec()
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], _durability: Durability) -> Result<()> {
        let mut logs = self.logs();
        let log = logs.entry(run.clone()).or_default();
        check_continues(run, Self::tail_of(Some(log)), events)?;
        log.extend(events.iter().cloned());
        Ok(())
    }

    async fn read_after(&self, run: &RunKey, after: u64) -> Result<EventStream> {
        let store = self.clone();
        let run = run.clone();
        let chunks = futures::stream::unfold(after, move |after| {
            let chunk = store.chunk_after(&run, after);
            async move {
                let last = chunk.last()?.sequence();
                Some((futures::stream::iter(chunk.into_iter().map(Ok)), last))
            }
        });
        Ok(chunks.flatten().boxed())
    }

    async fn tail(&self, run: &RunKey) -> Result<LogTail> {
        Ok(Self::tail_of(self.logs().get(run)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    #[tokio::test]
    async fn conforms() {
        conformance::run_all(&|| async { (Arc::new(MemoryEventStore::new()) as Arc<dyn EventStore>, ()) }).await;
    }
}
