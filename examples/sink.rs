//! An event exporter: the embedder's code sees every persisted event of every run, in order.
//!
//! Registers an exporter that prints each batch it is given and keeps the events, runs the
//! `hello` process configuration (`examples/config/`) twice, shuts down (which lets the exporter
//! catch up), and checks that the exporter saw each run's whole log, in order, without gaps.
//! Delivery is at least once: a real exporter deduplicates by `event_id`, as this one does.
//!
//! Run with: `cargo run --example sink`

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use ade::event::{EventId, RunId, StoredEvent, WorkspaceId};
use ade::export::{EventExporter, ExportError};
use ade::store::RunKey;
use ade::{CreateRun, Runtime};
use futures::TryStreamExt;

/// Prints every batch and keeps each run's events (sequence, type), deduplicated by event id.
#[derive(Debug, Default)]
struct PrintingExporter {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<EventId>,
    runs: BTreeMap<RunId, Vec<(u64, String)>>,
}

#[async_trait::async_trait]
impl EventExporter for PrintingExporter {
    fn name(&self) -> &str {
        "printer"
    }

    async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
        let mut seen = self.seen.lock().map_err(|_| ExportError::new("a previous delivery panicked"))?;
        let first = events.first().map_or(0, |e| e.sequence());
        let last = events.last().map_or(0, |e| e.sequence());
        println!("{} batch {first}..={last} ({} events)", run.run_id, events.len());
        for event in events {
            let envelope = event.envelope().map_err(ExportError::from_source)?;
            if seen.ids.insert(envelope.event_id) {
                println!("  {:>3} {}", envelope.sequence, envelope.event_type());
                seen.runs.entry(run.run_id).or_default().push((envelope.sequence, envelope.event_type().to_owned()));
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let data_dir = tempfile::tempdir()?;
    let exporter = Arc::new(PrintingExporter::default());
    let runtime = Runtime::builder()
        .data_dir(data_dir.path())
        .configurations_dir(examples.join("config"))
        .exporter(exporter.clone())
        .build()
        .await?;

    let workspace = WorkspaceId::default();
    let document = runtime.upload_file(&workspace, &examples.join("data/hello.csv")).await?;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = runtime.create_run(CreateRun::new("hello".parse()?).document(document.id)).await?.into_run();
        runs.push(run);
    }
    for run in &runs {
        // Follow each run to its end (the exporter does not wait for this; it is fed as events
        // are persisted).
        let events: Vec<_> = runtime.subscribe(None, run.id, ade::dispatch::After(0)).await?.try_collect().await?;
        println!("{} ended after {} events", run.id, events.len());
    }
    // Lets the runs finish and the exporter deliver what was persisted.
    runtime.shutdown().await;

    let exported_runs = exporter.seen.lock().map_err(|_| "a delivery panicked")?.runs.clone();
    for run in &runs {
        let key = RunKey::new(run.workspace_id.clone(), run.id);
        let log: Vec<Arc<StoredEvent>> = runtime.dispatcher().store().read_after(&key, 0).await?.try_collect().await?;
        let exported = exported_runs.get(&run.id).map(Vec::as_slice).unwrap_or_default();
        let sequences: Vec<u64> = exported.iter().map(|(sequence, _)| *sequence).collect();
        if sequences != (1..=log.len() as u64).collect::<Vec<_>>() {
            return Err(format!("{}: exported {sequences:?}, the log has {} events", run.id, log.len()).into());
        }
        let last = exported.last().map(|(_, event_type)| event_type.as_str());
        println!("{}: all {} events exported, in order, ending with {last:?}", run.id, log.len());
    }
    Ok(())
}
