//! Fan-out beyond one machine: follows runs' events from NATS JetStream, where ade's JetStream
//! exporter (crate `ade-nats`, `ade-server --nats-url`) publishes every persisted event.
//!
//! ```sh
//! # A self-contained demo: an embedded runtime exports to JetStream, this follows its run there.
//! cargo run --example nats_consumer
//! # One run of an `ade-server --nats-url nats://127.0.0.1:4222` (exits after its run.completed):
//! cargo run --example nats_consumer -- --run run_01J… [--workspace default]
//! # Every run, until Ctrl-C:
//! cargo run --example nats_consumer -- --all
//! ```
//!
//! It reads with an *ordered consumer*: ephemeral, no acknowledgements, no state on the server to
//! clean up; a consumer that must survive its own restarts would use a durable pull consumer
//! instead. Delivery from ade is at least once (a batch may be published again after a crash,
//! beyond JetStream's duplicate window), so the consumer keeps each run's last sequence and drops
//! anything at or below it; events that were too large for the server's `max_payload` arrive as
//! stand-ins (header `Ade-Event-Omitted`), whose full bytes are in ade's API.

use std::collections::HashMap;
use std::sync::Arc;

use ade::dispatch::After;
use ade::event::{RunId, StoredEvent, WorkspaceId};
use ade::nats::{JetStreamExporter, JetStreamOptions, OMITTED_HEADER, Oversize};
use ade::store::RunKey;
use ade::{CreateRun, Runtime};
use async_nats::jetstream::{self, consumer};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};

#[derive(Debug, Parser)]
#[command(about = "Follow ade runs' events from NATS JetStream")]
struct Args {
    /// The NATS server.
    #[arg(long, env = "ADE_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The stream ade publishes to (`ade-server --nats-stream`).
    #[arg(long, default_value = "ADE_EVENTS")]
    stream: String,
    /// The subjects' prefix (`ade-server --nats-subject-prefix`).
    #[arg(long, default_value = "ade")]
    prefix: String,
    /// Follow this run (exit after its `run.completed`).
    #[arg(long, conflicts_with = "all")]
    run: Option<RunId>,
    /// The run's workspace.
    #[arg(long, default_value = "default")]
    workspace: WorkspaceId,
    /// Follow every run of every workspace, until interrupted.
    #[arg(long)]
    all: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Without --run or --all: a demo that makes its own run, exported by an embedded runtime.
    let (run, _demo) = match (args.run, args.all) {
        (Some(run), _) => (Some(RunKey::new(args.workspace.clone(), run)), None),
        (None, true) => (None, None),
        (None, false) => {
            let (run, runtime, dir) = demo_run(&args).await?;
            (Some(run), Some((runtime, dir)))
        }
    };
    let filter = match &run {
        Some(run) => ade::nats::subject(&args.prefix, run),
        None => ade::nats::all_runs_subject(&args.prefix),
    };
    println!("following {filter} on stream {}", args.stream);

    let context = jetstream::new(async_nats::connect(&args.nats_url).await?);
    let stream = context.get_stream(&args.stream).await?;
    let consumer =
        stream.create_consumer(consumer::pull::OrderedConfig { filter_subject: filter, ..Default::default() }).await?;
    let mut messages = consumer.messages().await?;
    // Each run's last sequence printed: what is at or below it is a redelivery.
    let mut last: HashMap<String, u64> = HashMap::new();
    while let Some(message) = messages.next().await {
        let message = message?;
        let omitted = message.headers.as_ref().and_then(|h| h.get(OMITTED_HEADER)).map(|v| v.as_str().to_owned());
        let (run_id, sequence, event_type) = if omitted.is_some() {
            let stub: serde_json::Value = serde_json::from_slice(&message.payload)?;
            let field = |name: &str| stub[name].as_str().unwrap_or_default().to_owned();
            (field("run_id"), stub["sequence"].as_u64().unwrap_or_default(), field("type"))
        } else {
            let event = StoredEvent::from_json(message.payload.clone())?;
            let envelope = event.envelope()?;
            (envelope.run_id.to_string(), envelope.sequence, envelope.event_type().to_owned())
        };
        let seen = last.entry(run_id.clone()).or_default();
        if sequence <= *seen {
            continue;
        }
        *seen = sequence;
        match omitted {
            Some(bytes) => println!("{run_id} {sequence:>4} {event_type} ({bytes} bytes, omitted: fetch it from ade)"),
            None => println!("{run_id} {sequence:>4} {event_type}"),
        }
        if run.is_some() && event_type == "run.completed" {
            break;
        }
    }
    Ok(())
}

/// Runs the `hello` configuration in an embedded runtime that exports to the stream, and returns
/// the run once it has completed (the consumer then reads it all from JetStream).
async fn demo_run(args: &Args) -> Result<(RunKey, Runtime, tempfile::TempDir), Box<dyn std::error::Error>> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let data_dir = tempfile::tempdir()?;
    let options = JetStreamOptions::default()
        .with_stream(args.stream.clone())
        .with_subject_prefix(args.prefix.clone())
        // A server with the default max_payload (1 MiB) still runs the demo.
        .with_oversize(Oversize::Stub);
    let exporter = JetStreamExporter::connect(&args.nats_url, options).await?;
    let runtime = Runtime::builder()
        .data_dir(data_dir.path())
        .configurations_dir(examples.join("config"))
        .exporter(Arc::new(exporter))
        .build()
        .await?;
    let workspace = WorkspaceId::default();
    let document = runtime.upload_file(&workspace, &examples.join("data/hello.csv")).await?;
    let run = runtime.create_run(CreateRun::new("hello".parse()?).document(document.id)).await?.into_run();
    let events: Vec<_> = runtime.subscribe(None, run.id, After(0)).await?.try_collect().await?;
    println!("demo: ran {} ({} events), exported to JetStream", run.id, events.len());
    Ok((RunKey::new(run.workspace_id, run.id), runtime, data_dir))
}
