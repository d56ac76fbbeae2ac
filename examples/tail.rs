//! Follows a run's events to its end, resuming by itself across network errors and server
//! restarts.
//!
//! Run with: `cargo run --example tail -- http://127.0.0.1:8080 run_… [AFTER]`

use futures::StreamExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(run)) = (args.next(), args.next()) else {
        return Err("usage: tail URL RUN_ID [AFTER]".into());
    };
    let after: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let client = ade::client::Client::new(url)?;
    let mut events = client.events(run.parse()?, after);
    while let Some(event) = events.next().await {
        let event = event?;
        println!("{:>5} {}", event.sequence, event.to_json()?);
    }
    Ok(())
}
