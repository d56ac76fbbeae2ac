//! Uploads a file, runs a configuration over it, waits for the run's end and prints its summary.
//!
//! Run with: `cargo run --example submit_and_wait -- http://127.0.0.1:8080 members examples/data/members.csv`

use ade::client::{Client, NewRun};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(configuration), Some(file)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: submit_and_wait URL CONFIGURATION FILE".into());
    };
    let client = Client::new(url)?;
    let bytes = std::fs::read(&file)?;
    let name = std::path::Path::new(&file).file_name().map_or("document".into(), |n| n.to_string_lossy());
    let document = client.upload_document(&name, bytes, None).await?;
    let created = client.create_run(&NewRun::new(configuration.parse()?).document(document.id)).await?;
    println!("run {} created", created.run().id);
    let run = client.wait(created.run().id).await?;
    println!("{}: {}", run.id, run.status.as_str());
    if let Some(summary) = &run.summary {
        println!("{}", serde_json::to_string_pretty(&summary.core)?);
    }
    Ok(())
}
