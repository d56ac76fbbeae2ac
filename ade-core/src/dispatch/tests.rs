//! The dispatcher's guarantees (SPEC §5), asserted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;

use super::*;
use crate::error::Error;
use crate::event::{BuildId, ConfigurationId, EventSource};
use crate::store::{LogTail, MemoryEventStore, NdjsonEventStore};
use crate::testing::{completed, console, run_key};

fn context(run: &RunKey) -> RunContext {
    RunContext::new(run.workspace_id.clone(), ConfigurationId::new("members").expect("valid"), run.run_id)
}

fn memory_dispatcher(options: DispatchOptions) -> Dispatcher {
    Dispatcher::new(Arc::new(MemoryEventStore::new()), options)
}

async fn collect(stream: EventStream) -> Vec<Arc<StoredEvent>> {
    tokio::time::timeout(Duration::from_secs(30), stream.try_collect())
        .await
        .expect("a subscription must not hang")
        .expect("no stream error")
}

fn sequences(events: &[Arc<StoredEvent>]) -> Vec<u64> {
    events.iter().map(|e| e.sequence()).collect()
}

/// Emits `n` console lines and `run.completed`, and waits for them to be persisted.
async fn write_run(writer: &RunWriter, n: u64) {
    for i in 0..n {
        writer.emit(EventSource::Engine, console(&format!("line {i}"))).await.expect("emit");
    }
    let key = writer.key().clone();
    writer.emit(EventSource::Api, completed(&key, writer.next_sequence())).await.expect("emit completed");
    writer.flush().await.expect("flush");
}

#[tokio::test]
async fn stamps_every_event_with_ids_sequence_and_context() {
    let dispatcher = memory_dispatcher(DispatchOptions::default());
    let run = run_key("acme");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    for i in 0..5 {
        if i == 2 {
            writer.set_build_id(BuildId::new());
        }
        writer.emit(EventSource::Engine, console("hello")).await.expect("emit");
    }
    assert_eq!(writer.flush().await.expect("flush"), 5);
    let events = collect(dispatcher.store().read_after(&run, 0).await.expect("read")).await;
    assert_eq!(sequences(&events), vec![1, 2, 3, 4, 5]);
    let ids: HashSet<_> = events.iter().map(|e| e.envelope().expect("typed").event_id).collect();
    assert_eq!(ids.len(), 5, "event ids are unique");
    for (i, event) in events.iter().enumerate() {
        let envelope = event.envelope().expect("typed");
        assert_eq!((envelope.run_id, &envelope.workspace_id), (run.run_id, &run.workspace_id));
        assert_eq!(envelope.build_id.is_some(), i >= 2, "build_id from the event it was set on");
        assert_eq!(
            event.json(),
            &serde_json::to_vec(envelope).expect("json"),
            "json is the envelope's one serialization"
        );
    }
}

#[tokio::test]
async fn there_is_one_writer_per_run_and_a_new_one_continues_the_sequence() {
    let dispatcher = memory_dispatcher(DispatchOptions::default());
    let run = run_key("acme");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    writer.emit(EventSource::Api, console("one")).await.expect("emit");
    writer.flush().await.expect("flush");
    assert!(matches!(dispatcher.open_run(context(&run)).await, Err(Error::WriterBusy(_))));
    drop(writer);
    // The slot frees once the commit task has written what was queued.
    let writer = loop {
        match dispatcher.open_run(context(&run)).await {
            Err(Error::WriterBusy(_)) => tokio::task::yield_now().await,
            other => break other.expect("reopen"),
        }
    };
    assert_eq!(writer.next_sequence(), 2);
    write_run(&writer, 3).await;
    assert!(matches!(writer.emit(EventSource::Api, console("late")).await, Err(Error::RunComplete(_))));
    drop(writer);
    let reopen = loop {
        match dispatcher.open_run(context(&run)).await {
            Err(Error::WriterBusy(_)) => tokio::task::yield_now().await,
            other => break other,
        }
    };
    assert!(matches!(reopen, Err(Error::RunComplete(_))), "nothing may follow run.completed");
}

#[tokio::test]
async fn events_emitted_together_share_one_write() {
    #[derive(Debug, Default)]
    struct CountingStore {
        inner: MemoryEventStore,
        appends: AtomicUsize,
    }
    #[async_trait]
    impl EventStore for CountingStore {
        async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], d: Durability) -> Result<()> {
            self.appends.fetch_add(1, Ordering::Relaxed);
            self.inner.append(run, events, d).await
        }
        async fn read_after(&self, run: &RunKey, after: u64) -> Result<EventStream> {
            self.inner.read_after(run, after).await
        }
        async fn tail(&self, run: &RunKey) -> Result<LogTail> {
            self.inner.tail(run).await
        }
    }
    let store = Arc::new(CountingStore::default());
    let dispatcher = Dispatcher::new(store.clone(), DispatchOptions::default().with_max_batch(500));
    let run = run_key("acme");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    write_run(&writer, 1999).await;
    let appends = store.appends.load(Ordering::Relaxed);
    // Tokio's cooperative budget makes the emitter yield now and then; each yield may cut a batch.
    assert!(appends <= 2000 / 50, "2000 events emitted back to back took {appends} appends");
    assert_eq!(store.tail(&run).await.expect("tail"), LogTail { last_sequence: 2000, terminal: true });
}

#[tokio::test]
async fn subscribers_share_one_serialization_of_each_event() {
    let dispatcher = memory_dispatcher(DispatchOptions::default());
    let run = run_key("acme");
    let a = dispatcher.subscribe(run.clone(), After(0)).await.expect("subscribe");
    let b = dispatcher.subscribe(run.clone(), After(0)).await.expect("subscribe");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    write_run(&writer, 10).await;
    let (a, b) = (collect(a).await, collect(b).await);
    assert_eq!(sequences(&a), (1..=11).collect::<Vec<_>>());
    assert!(a.iter().zip(&b).all(|(x, y)| Arc::ptr_eq(x, y)), "the same bytes go to every subscriber");
}

#[tokio::test]
async fn subscribing_to_a_finished_run_replays_and_ends_at_any_cursor() {
    let dispatcher = memory_dispatcher(DispatchOptions::default());
    let run = run_key("acme");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    write_run(&writer, 4).await;
    for after in 0..=7 {
        let got = collect(dispatcher.subscribe(run.clone(), After(after)).await.expect("subscribe")).await;
        assert_eq!(sequences(&got), (after + 1..=5).collect::<Vec<_>>(), "after {after}");
    }
    assert_eq!(dispatcher.subscriber_count(), 0, "ended subscriptions are released");
}

#[tokio::test]
async fn a_subscriber_that_reads_nothing_for_a_while_still_gets_everything() {
    let dispatcher = memory_dispatcher(DispatchOptions::default().with_live_buffer(16));
    let run = run_key("acme");
    let mut stalled = dispatcher.subscribe(run.clone(), After(0)).await.expect("subscribe");
    let fast = dispatcher.subscribe(run.clone(), After(0)).await.expect("subscribe");
    let fast = tokio::spawn(collect(fast));
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    write_run(&writer, 10_000).await;
    // The writer finished without waiting for the stalled reader, whose ring stayed bounded.
    assert!(dispatcher.live_buffered(run.run_id) <= 16);
    let fast = fast.await.expect("fast reader");
    assert_eq!(fast.len(), 10_001);
    let mut got = Vec::new();
    while let Some(event) = stalled.next().await {
        got.push(event.expect("event").sequence());
    }
    assert_eq!(got, (1..=10_001).collect::<Vec<_>>());
}

/// A store whose appends fail while `failing` is set.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryEventStore,
    failing: AtomicBool,
}

#[async_trait]
impl EventStore for FlakyStore {
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], d: Durability) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            let source = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            return Err(Error::Io { action: "append to", path: "events.ndjson".into(), source });
        }
        self.inner.append(run, events, d).await
    }
    async fn read_after(&self, run: &RunKey, after: u64) -> Result<EventStream> {
        self.inner.read_after(run, after).await
    }
    async fn tail(&self, run: &RunKey) -> Result<LogTail> {
        self.inner.tail(run).await
    }
}

#[tokio::test]
async fn a_failed_write_is_an_error_and_loses_nothing_acknowledged() {
    let store = Arc::new(FlakyStore::default());
    let dispatcher = Dispatcher::new(store.clone(), DispatchOptions::default());
    let run = run_key("acme");
    let follower = dispatcher.subscribe(run.clone(), After(0)).await.expect("subscribe");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    for _ in 0..3 {
        writer.emit(EventSource::Engine, console("kept")).await.expect("emit");
    }
    assert_eq!(writer.flush().await.expect("acknowledged"), 3);

    store.failing.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        writer.emit(EventSource::Engine, console("lost")).await.expect("emit queues");
    }
    let failed = writer.flush().await;
    assert!(matches!(failed, Err(Error::WriteFailed { first_lost: 4, .. })), "{failed:?}");
    assert!(failed.err().map(|e| e.to_string()).unwrap_or_default().contains("No space left"));

    // The disk has room again: the run can still end, right after the last acknowledged event.
    store.failing.store(false, Ordering::SeqCst);
    let sequence = writer.emit_durable(EventSource::Api, completed(&run, 4)).await.expect("completed");
    assert_eq!(sequence, 4);
    let log = collect(store.read_after(&run, 0).await.expect("read")).await;
    assert_eq!(sequences(&log), vec![1, 2, 3, 4]);
    assert!(log[..3].iter().all(|e| e.json().windows(4).any(|w| w == b"kept")));
    let seen = collect(follower).await;
    assert_eq!(sequences(&seen), vec![1, 2, 3, 4], "no subscriber ever saw a lost event");
    assert!(seen.iter().all(|e| !e.json().windows(4).any(|w| w == b"lost")));
}

#[tokio::test]
async fn a_flush_after_its_events_failed_reports_the_failure() {
    let store = Arc::new(FlakyStore::default());
    let dispatcher = Dispatcher::new(store.clone(), DispatchOptions::default());
    let run = run_key("acme");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    store.failing.store(true, Ordering::SeqCst);
    writer.emit(EventSource::Engine, console("lost")).await.expect("emit queues");
    // The commit task fails the write (and hands its sequence out again) before anyone flushes.
    writer.write_failed().await;
    let flushed = writer.flush().await;
    assert!(matches!(flushed, Err(Error::WriteFailed { first_lost: 1, .. })), "{flushed:?}");
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(writer.emit_durable(EventSource::Api, completed(&run, 1)).await.expect("closed"), 1);
}

#[tokio::test]
async fn a_failed_run_completed_can_be_retried() {
    let store = Arc::new(FlakyStore::default());
    let dispatcher = Dispatcher::new(store.clone(), DispatchOptions::default());
    let run = run_key("acme");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    store.failing.store(true, Ordering::SeqCst);
    assert!(writer.emit_durable(EventSource::Api, completed(&run, 1)).await.is_err());
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(writer.emit_durable(EventSource::Api, completed(&run, 1)).await.expect("retry"), 1);
    assert!(store.tail(&run).await.expect("tail").terminal);
}

/// One subscriber of the property test: when it joins, its cursor, how slowly it reads.
#[derive(Debug, Clone)]
struct Reader {
    joins_after: u64,
    cursor: u64,
    slowness: u32,
}

fn reader() -> impl Strategy<Value = Reader> {
    (0..300u64, prop_oneof![Just(0u64), 0..320u64], 0..4u32).prop_map(|(joins_after, cursor, slowness)| Reader {
        joins_after,
        cursor,
        slowness,
    })
}

async fn check_subscribers(dispatcher: Dispatcher, n: u64, readers: Vec<Reader>) {
    let run = run_key("acme");
    let writer = dispatcher.open_run(context(&run)).await.expect("open");
    let (progress, _) = tokio::sync::watch::channel(0u64);
    let mut tasks = Vec::new();
    for reader in readers {
        let mut progress = progress.subscribe();
        let dispatcher = dispatcher.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let _ = progress.wait_for(|emitted| *emitted >= reader.joins_after.min(n)).await;
            let mut stream = dispatcher.subscribe(run, After(reader.cursor)).await.expect("subscribe");
            let mut got = Vec::new();
            while let Some(event) = stream.next().await {
                let event = event.expect("no stream error");
                got.push((event.sequence(), event.is_terminal()));
                for _ in 0..reader.slowness * 5 {
                    tokio::task::yield_now().await;
                }
            }
            (reader, got)
        }));
    }
    for i in 1..=n {
        writer.emit(EventSource::Engine, console("x")).await.expect("emit");
        progress.send_replace(i);
        if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    writer.emit(EventSource::Api, completed(&run, n + 1)).await.expect("emit completed");
    writer.flush().await.expect("flush");
    for task in tasks {
        let (reader, got) = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a subscriber hung")
            .expect("subscriber task");
        let want: Vec<(u64, bool)> = (reader.cursor + 1..=n + 1).map(|s| (s, s == n + 1)).collect();
        assert_eq!(got, want, "{reader:?}: ordered, gap-free, duplicate-free, ends with run.completed");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn every_subscriber_gets_exactly_the_events_after_its_cursor(
        n in 0..300u64,
        live_buffer in 1..48usize,
        max_batch in 1..64usize,
        ndjson in any::<bool>(),
        readers in proptest::collection::vec(reader(), 1..8),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn EventStore> =
            if ndjson { Arc::new(NdjsonEventStore::new(dir.path())) } else { Arc::new(MemoryEventStore::new()) };
        let options = DispatchOptions::default().with_live_buffer(live_buffer).with_max_batch(max_batch);
        runtime.block_on(check_subscribers(Dispatcher::new(store, options), n, readers));
    }
}

#[test]
fn events_and_write_failures_are_counted_under_the_spec_metric_names() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // Everything (the commit task included) runs on this thread, where the recorder is installed.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let store = Arc::new(FlakyStore::default());
            let dispatcher = Dispatcher::new(store.clone(), DispatchOptions::default());
            let run = run_key("acme");
            let writer = dispatcher.open_run(context(&run)).await.expect("open");
            for _ in 0..3 {
                writer.emit(EventSource::Engine, console("kept")).await.expect("emit");
            }
            writer.flush().await.expect("flush");
            store.failing.store(true, Ordering::SeqCst);
            writer.emit(EventSource::Engine, console("lost")).await.expect("emit");
            assert!(writer.flush().await.is_err());
            store.failing.store(false, Ordering::SeqCst);
            writer.emit_durable(EventSource::Api, completed(&run, 4)).await.expect("completed");
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, labels: &[(&str, &str)]| {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let matches = key.name() == name
                && labels.iter().all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v));
            match value {
                DebugValue::Counter(n) if matches => Some(*n),
                _ => None,
            }
        })
    };
    assert_eq!(counter("ade_event_store_errors_total", &[]), Some(1));
    assert_eq!(counter("ade_events_total", &[("type", "console.line"), ("source", "engine")]), Some(3));
    assert_eq!(counter("ade_events_total", &[("type", "run.completed"), ("source", "api")]), Some(1));
}

/// Two dispatchers on one store: two processes sharing a database. `reader` follows a run that
/// `writer` writes; announcements (what the database's notifications carry) make it deliver.
fn two_instances() -> (Dispatcher, Dispatcher) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let options = DispatchOptions::default().with_live_buffer(64);
    (Dispatcher::new(store.clone(), options.clone()), Dispatcher::new(store, options))
}

/// Waits for the next event of a stream, failing after a while rather than hanging.
async fn next_event(stream: &mut EventStream) -> Arc<StoredEvent> {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("an announced event must arrive")
        .expect("stream open")
        .expect("no stream error")
}

#[tokio::test]
async fn announced_events_of_another_instance_reach_local_subscribers_in_order() {
    let (writing, reading) = two_instances();
    let run = run_key("acme");
    let writer = writing.open_run(context(&run)).await.expect("open");
    writer.emit(EventSource::Api, console("before")).await.expect("emit");
    writer.flush().await.expect("flush");
    let mut first = reading.subscribe(run.clone(), After(0)).await.expect("subscribe");
    let mut second = reading.subscribe(run.clone(), After(1)).await.expect("subscribe");
    assert_eq!(next_event(&mut first).await.sequence(), 1, "replayed from the store");
    for round in 0..3u64 {
        for i in 0..40 {
            writer.emit(EventSource::Engine, console(&format!("{round}/{i}"))).await.expect("emit");
        }
        let last = writer.flush().await.expect("flush");
        reading.announced(run.run_id, last);
        for stream in [&mut first, &mut second] {
            for expected in (last - 39)..=last {
                assert_eq!(next_event(stream).await.sequence(), expected);
            }
        }
    }
    writer.emit(EventSource::Api, completed(&run, writer.next_sequence())).await.expect("emit");
    let last = writer.flush().await.expect("flush");
    reading.announced(run.run_id, last);
    // Both end after run.completed, with nothing left over.
    let rest = collect(first).await;
    assert_eq!(sequences(&rest), vec![last]);
    assert_eq!(sequences(&collect(second).await), vec![last]);
}

#[tokio::test]
async fn a_resync_delivers_what_missed_announcements_would_have() {
    let (writing, reading) = two_instances();
    let run = run_key("acme");
    let writer = writing.open_run(context(&run)).await.expect("open");
    let mut stream = reading.subscribe(run.clone(), After(0)).await.expect("subscribe");
    for i in 0..10 {
        writer.emit(EventSource::Engine, console(&format!("line {i}"))).await.expect("emit");
    }
    writer.flush().await.expect("flush");
    // No announcement arrives (the listener was reconnecting): a resync reads the store.
    reading.resync();
    for expected in 1..=10 {
        assert_eq!(next_event(&mut stream).await.sequence(), expected);
    }
    // An announcement for a run nobody here follows, or for a sequence already delivered, is
    // harmless.
    reading.announced(run_key("acme").run_id, 5);
    reading.announced(run.run_id, 3);
    writer.emit(EventSource::Api, completed(&run, writer.next_sequence())).await.expect("emit");
    let last = writer.flush().await.expect("flush");
    reading.announced(run.run_id, last);
    assert_eq!(sequences(&collect(stream).await), vec![last]);
}
