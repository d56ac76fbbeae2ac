//! An embedder's own engine: `count_lines` counts the lines of each input and writes the counts
//! to `outputs/counts.txt`, with phases and console lines that become the run's events.
//!
//! Engines are async traits (`async_trait`): `run` gets the run's context (inputs, output
//! directory, cancellation, configuration) and an `EventSink`, and returns the outcome. A
//! configuration with `"engine": "count_lines"` selects it; its other fields are the engine's
//! settings.
//!
//! Run with: `cargo run --example custom_engine`

use std::sync::Arc;

use ade::config::{Configuration, EngineSpec};
use ade::dispatch::After;
use ade::engine::{Engine, EngineContext, EngineFailure, EngineOutcome, EventSink};
use ade::event::{ConsoleLevel, ConsoleStream, EventPayload, PhaseStatus, WorkspaceId};
use ade::{CreateRun, Runtime};
use async_trait::async_trait;
use futures::StreamExt as _;

#[derive(Debug)]
struct CountLines;

#[async_trait]
impl Engine for CountLines {
    fn version(&self) -> &str {
        "count_lines-1"
    }

    async fn run(&self, context: EngineContext, mut sink: EventSink) -> EngineOutcome {
        // Settings are the configuration's other fields.
        let prefix = match &context.configuration.engine {
            EngineSpec::Custom { settings, .. } => {
                settings.get("prefix").and_then(|v| v.as_str()).unwrap_or("").to_owned()
            }
            _ => String::new(),
        };
        let started = std::time::Instant::now();
        let _ = sink.phase_started("counting", Some("Counting lines")).await;
        let mut report = String::new();
        for input in &context.inputs {
            if context.cancel.is_cancelled() {
                return EngineOutcome::failed(EngineFailure::new("cancelled", "the run was cancelled"));
            }
            let text = match tokio::fs::read_to_string(&input.path).await {
                Ok(text) => text,
                Err(error) => {
                    let message = format!("cannot read {}: {error}", input.path.display());
                    return EngineOutcome::failed(EngineFailure::new("input_error", message));
                }
            };
            let line = format!("{prefix}{}: {} lines", input.filename, text.lines().count());
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, line.clone()).await;
            report.push_str(&line);
            report.push('\n');
        }
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let _ = sink.phase_completed("counting", PhaseStatus::Succeeded, elapsed, None).await;
        let written = async {
            tokio::fs::create_dir_all(&context.output_dir).await?;
            tokio::fs::write(context.output_dir.join("counts.txt"), report).await
        };
        match written.await {
            Ok(()) => EngineOutcome::succeeded(vec!["outputs/counts.txt".to_owned()]),
            Err(error) => EngineOutcome::failed(EngineFailure::new("output_error", error.to_string())),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let data_dir = tempfile::tempdir()?;
    let configuration: Configuration =
        serde_json::from_str(r#"{"id": "counts", "version": "1", "engine": "count_lines", "prefix": "> "}"#)?;
    let runtime = Runtime::builder()
        .data_dir(data_dir.path())
        .engine("count_lines", Arc::new(CountLines), None)
        .configuration(configuration)
        .build()
        .await?;

    let document = runtime.upload_file(&WorkspaceId::default(), &examples.join("data/hello.csv")).await?;
    let run = runtime.create_run(CreateRun::new("counts".parse()?).document(document.id)).await?.into_run();
    let mut events = runtime.subscribe(None, run.id, After(0)).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        let envelope = event.envelope()?;
        match &envelope.payload {
            EventPayload::ConsoleLine(line) => println!("{:>3} console.line  {}", envelope.sequence, line.message),
            other => println!("{:>3} {}", envelope.sequence, other.event_type()),
        }
    }
    let run = runtime.get_run(None, run.id).await?.ok_or("the run vanished")?;
    println!("final status: {}", run.status.as_str());
    let counts = std::fs::read_to_string(runtime.run_dir(&run.workspace_id, run.id).join("outputs/counts.txt"))?;
    print!("outputs/counts.txt:\n{counts}");
    runtime.shutdown().await;
    Ok(())
}
