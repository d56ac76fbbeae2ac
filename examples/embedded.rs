//! Embeds the ade runtime: runs the `hello` process configuration (a small sh script shipped in
//! `examples/config/`) over a CSV and prints the events as they arrive.
//!
//! Run with: `cargo run --example embedded`

use ade::dispatch::After;
use ade::event::{EventPayload, WorkspaceId};
use ade::{CreateRun, Runtime};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let data_dir = tempfile::tempdir()?;
    let runtime =
        Runtime::builder().data_dir(data_dir.path()).configurations_dir(examples.join("config")).build().await?;

    let workspace = WorkspaceId::default();
    let document = runtime.upload_file(&workspace, &examples.join("data/hello.csv")).await?;
    let run = runtime.create_run(CreateRun::new("hello".parse()?).document(document.id)).await?.into_run();
    println!("created {} ({})", run.id, run.links.events);

    let mut events = runtime.subscribe(None, run.id, After(0)).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        let envelope = event.envelope()?;
        match &envelope.payload {
            EventPayload::ConsoleLine(line) => {
                println!("{:>3} console.line  [{:?}] {}", envelope.sequence, line.level, line.message)
            }
            EventPayload::RunCompleted(done) => {
                println!(
                    "{:>3} run.completed {:?}, outputs {:?}",
                    envelope.sequence, done.status, done.artifacts.output_paths
                );
            }
            other => println!("{:>3} {}", envelope.sequence, other.event_type()),
        }
    }
    let run = runtime.get_run(None, run.id).await?.ok_or("the run vanished")?;
    println!("final status: {:?}", run.status);
    runtime.shutdown().await;
    Ok(())
}
