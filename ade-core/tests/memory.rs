//! A subscriber that stops reading costs bounded memory (SPEC §5), measured with a counting
//! allocator; this binary holds only this test so nothing else allocates meanwhile.

use std::alloc::System;
use std::sync::Arc;

use ade_core::dispatch::{After, DispatchOptions, Dispatcher, RunContext};
use ade_core::event::{
    ConfigurationId, ConsoleLevel, ConsoleLine, ConsoleScope, ConsoleStream, EventSource, RunId, WorkspaceId,
};
use ade_core::store::{NdjsonEventStore, RunKey};
use cap::Cap;
use futures::StreamExt;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn line(i: u64) -> ConsoleLine {
    ConsoleLine {
        scope: ConsoleScope::Run,
        stream: ConsoleStream::Stdout,
        level: ConsoleLevel::Info,
        message: format!("row {i}: {}", "x".repeat(200)),
        phase: None,
        logger: None,
        engine_timestamp: None,
        extra: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_grow_memory_with_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dispatcher =
        Dispatcher::new(Arc::new(NdjsonEventStore::new(dir.path())), DispatchOptions::default().with_live_buffer(256));
    let workspace = WorkspaceId::new("acme").expect("valid");
    let run = RunKey::new(workspace.clone(), RunId::new());
    let context = RunContext::new(workspace, ConfigurationId::new("members").expect("valid"), run.run_id);

    let mut stalled = dispatcher.subscribe(run.clone(), After(0)).await.expect("subscribe");
    let writer = dispatcher.open_run(context).await.expect("open");
    let n = 100_000u64;
    // Warm up (first allocations of the runtime, the store's buffers), then measure.
    for i in 0..1_000 {
        writer.emit(EventSource::Engine, line(i)).await.expect("emit");
    }
    writer.flush().await.expect("flush");
    let before = ALLOCATOR.allocated();
    for i in 1_000..n {
        writer.emit(EventSource::Engine, line(i)).await.expect("emit");
        if i % 10_000 == 0 {
            writer.flush().await.expect("flush");
        }
    }
    writer.flush().await.expect("flush");
    let grown = ALLOCATOR.allocated().saturating_sub(before);
    let log_bytes =
        std::fs::metadata(dir.path().join(format!("workspaces/acme/runs/{}/logs/events.ndjson", run.run_id)))
            .expect("log")
            .len();
    assert!(
        grown < 4 << 20,
        "memory grew by {grown} bytes while a subscriber stalled on a {log_bytes}-byte log (ring: 256 events)"
    );

    let mut next = 1;
    while next <= 10 {
        let event = stalled.next().await.expect("more events").expect("event");
        assert_eq!(event.sequence(), next);
        next += 1;
    }
    drop(writer);
    let mut rest = 0;
    while let Some(event) = stalled.next().await {
        assert_eq!(event.expect("event").sequence(), next);
        next += 1;
        rest += 1;
        if next > n {
            break;
        }
    }
    assert_eq!(rest, n - 10, "the stalled subscriber caught up on every event");
}
