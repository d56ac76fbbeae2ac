//! An SSE reader that stops reading costs the server bounded memory (issue 6), measured with a
//! counting allocator; this binary holds only this test so nothing else allocates meanwhile.

use std::alloc::System;
use std::sync::Arc;

use ade_core::Runtime;
use ade_core::config::Configuration;
use ade_core::dispatch::After;
use ade_core::engine::{Engine, EngineContext, EngineOutcome, EventSink};
use ade_core::event::{ConsoleLevel, ConsoleStream};
use ade_server::{Server, ServerConfig};
use cap::Cap;
use futures::StreamExt;
use tokio::sync::Semaphore;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Events the busy run emits once its gate opens.
const EVENTS: u64 = 60_000;

/// Waits for a permit, then emits [`EVENTS`] console lines of ~250 bytes.
#[derive(Debug)]
struct BurstEngine {
    gate: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl Engine for BurstEngine {
    fn version(&self) -> &str {
        "burst-1"
    }

    async fn run(&self, _context: EngineContext, sink: EventSink) -> EngineOutcome {
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        let padding = "x".repeat(200);
        for i in 0..EVENTS {
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("line {i} {padding}")).await;
        }
        EngineOutcome::succeeded(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_costs_the_server_bounded_memory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let gate = Arc::new(Semaphore::new(0));
    let configuration: Configuration =
        serde_json::from_value(serde_json::json!({ "id": "burst", "version": "1", "engine": "burst" })).expect("valid");
    let runtime = Runtime::builder()
        .data_dir(dir.path())
        .engine("burst", Arc::new(BurstEngine { gate: gate.clone() }), None)
        .configuration(configuration)
        .build()
        .await
        .expect("runtime");
    let server = Server::bind("127.0.0.1:0".parse().expect("address"), runtime.clone(), ServerConfig::new())
        .await
        .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let shutdown = server.shutdown_handle();
    let served = tokio::spawn(server.run(std::future::pending()));
    let http = reqwest::Client::new();

    let run: serde_json::Value = http
        .post(format!("{base}/runs"))
        .json(&serde_json::json!({ "configuration_id": "burst", "document_ids": [] }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("run");
    let id = run["id"].as_str().expect("id").to_owned();
    let mut stalled = http
        .get(format!("{base}/runs/{id}/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("subscribe");
    // The stream is open (its `retry:` arrived); from here on, this reader reads nothing.
    let first = stalled.chunk().await.expect("a chunk").expect("not the end");
    assert!(first.starts_with(b"retry:"));

    let baseline = ALLOCATOR.allocated();
    let mut peak = baseline;
    let mut produced = 0usize;
    let run_id = id.parse().expect("run id");
    let mut events = runtime.subscribe(None, run_id, After(0)).await.expect("follow");
    gate.add_permits(1);
    let mut count = 0u64;
    while let Some(event) = events.next().await {
        produced += event.expect("event").json().len();
        count += 1;
        if count.is_multiple_of(500) {
            peak = peak.max(ALLOCATOR.allocated());
        }
    }
    drop(events);
    let grown = peak.saturating_sub(baseline);
    eprintln!("{count} events, {produced} bytes of JSON; the server grew by at most {grown} bytes");
    assert!(produced > 12 << 20, "the run must outgrow every buffer: {produced} bytes");
    assert!(grown < 8 << 20, "a stalled reader made the process grow by {grown} bytes ({produced} produced)");

    // Reading at last, the stalled reader gets every event once, in order.
    let mut expected = 1u64;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stalled.chunk().await.expect("chunk") {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = pending.drain(..end + 2).collect();
            if let Some(rest) = frame.strip_prefix(b"id: ") {
                let digits: Vec<u8> = rest.iter().copied().take_while(u8::is_ascii_digit).collect();
                let sequence: u64 = String::from_utf8(digits).expect("digits").parse().expect("a sequence");
                assert_eq!(sequence, expected, "in order, once each");
                expected += 1;
            }
        }
    }
    assert_eq!(expected - 1, count, "the stalled reader got the whole run");
    shutdown.shutdown();
    let _ = served.await;
}
