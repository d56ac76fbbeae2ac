//! An embedder's own event store given to the runtime: `VecStore` keeps each run's log in a `Vec`
//! behind a lock (a real one would write to the embedder's database).
//!
//! An `EventStore` appends a batch of one run's events (all or nothing, continuing the log
//! exactly: `check_continues` says whether a batch does), reads a log after a sequence as a
//! stream, and reports the log's tail. `ade_core::store::conformance::run_all` (cargo feature
//! `test-util`) checks those promises; this example runs it on `VecStore`, then runs a
//! configuration on a runtime that keeps its logs there.
//!
//! Run with: `cargo run --example custom_store`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ade::config::Configuration;
use ade::dispatch::After;
use ade::event::{StoredEvent, WorkspaceId};
use ade::store::{Durability, EventStore, EventStream, LogTail, RunKey, check_continues};
use ade::{CreateRun, Runtime};
use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};

/// Every run's log, in memory.
#[derive(Debug, Default)]
struct VecStore {
    logs: Mutex<HashMap<RunKey, Vec<Arc<StoredEvent>>>>,
}

impl VecStore {
    fn logs(&self) -> std::sync::MutexGuard<'_, HashMap<RunKey, Vec<Arc<StoredEvent>>>> {
        // A panic while holding the lock cannot leave a half-appended log: appends extend at once.
        self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn tail_of(log: Option<&Vec<Arc<StoredEvent>>>) -> LogTail {
    match log.and_then(|log| log.last()) {
        Some(last) => LogTail { last_sequence: last.sequence(), terminal: last.is_terminal() },
        None => LogTail::default(),
    }
}

#[async_trait]
impl EventStore for VecStore {
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], _durability: Durability) -> ade::Result<()> {
        let mut logs = self.logs();
        let log = logs.entry(run.clone()).or_default();
        check_continues(run, tail_of(Some(log)), events)?;
        log.extend(events.iter().cloned());
        Ok(())
    }

    async fn read_after(&self, run: &RunKey, after: u64) -> ade::Result<EventStream> {
        let events: Vec<_> = self
            .logs()
            .get(run)
            .map(|log| log.iter().filter(|event| event.sequence() > after).cloned().collect())
            .unwrap_or_default();
        Ok(futures::stream::iter(events.into_iter().map(Ok)).boxed())
    }

    async fn tail(&self, run: &RunKey) -> ade::Result<LogTail> {
        Ok(tail_of(self.logs().get(run)))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ade::store::conformance::run_all(&|| async { (Arc::new(VecStore::default()) as Arc<dyn EventStore>, ()) }).await;
    println!("VecStore passes the EventStore conformance suite");

    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let data_dir = tempfile::tempdir()?;
    let store = Arc::new(VecStore::default());
    let hello = Configuration::from_file(&examples.join("config/hello.json"))?;
    let runtime =
        Runtime::builder().data_dir(data_dir.path()).event_store(store.clone()).configuration(hello).build().await?;

    let workspace = WorkspaceId::default();
    let document = runtime.upload_file(&workspace, &examples.join("data/hello.csv")).await?;
    let run = runtime.create_run(CreateRun::new("hello".parse()?).document(document.id)).await?.into_run();
    let streamed: Vec<_> = runtime.subscribe(None, run.id, After(0)).await?.try_collect().await?;
    let run = runtime.get_run(None, run.id).await?.ok_or("the run vanished")?;
    println!("run {} ended {}, {} events", run.id, run.status.as_str(), streamed.len());

    // The log the runtime streamed is the one in the embedder's store, event for event.
    let key = RunKey::new(workspace, run.id);
    let stored: Vec<_> = store.read_after(&key, 0).await?.try_collect().await?;
    assert_eq!(stored.len(), streamed.len());
    for event in &stored {
        println!("{:>3} {}", event.sequence(), event.envelope()?.event_type());
    }
    runtime.shutdown().await;
    Ok(())
}
