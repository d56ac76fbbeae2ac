//! Exporters see every persisted event of every run, in order, at least once, without gaps;
//! across failures, slow neighbours and restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::*;
use crate::CreateRun;
use crate::event::{EventId, RunId};
use crate::store::RunKey;
use crate::sync::lock;
use crate::test_util::export::*;
use crate::testing::{follow, id};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_of_concurrent_runs_in_order_without_gaps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recorder = Recorder::new("recorder");
    let runtime = builder(dir.path(), fast()).exporter(recorder.clone()).build().await.expect("runtime");
    let mut runs = Vec::new();
    for _ in 0..6 {
        runs.push(runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id);
    }
    // Delivered live, without a shutdown to flush them.
    recorder.wait_for("every run.completed", |r| runs.iter().all(|run| r.has_completed(*run))).await;
    for run in &runs {
        let log = stored_ids(&runtime, *run).await;
        assert!(log.len() > 25, "25 console lines and the run's own events");
        assert_delivered(&recorder.batches(*run), &log);
    }
    // Acknowledged after delivery: by the time the shutdown has let the exporter finish.
    runtime.shutdown().await;
    for run in &runs {
        let cursor = runtime.run_store().export_cursor("recorder", *run).await.expect("cursor");
        assert_eq!(cursor, stored_ids(&runtime, *run).await.len() as u64, "acknowledged to the end");
    }
    assert!(runtime.run_store().export_backlog("recorder", None, 10).await.expect("backlog").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_exporter_gets_everything_once_it_recovers_and_never_holds_a_run_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recorder = Recorder::new("flaky");
    recorder.refuse.store(true, Ordering::SeqCst);
    let runtime = builder(dir.path(), fast()).exporter(recorder.clone()).build().await.expect("runtime");
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    // The run ends while every delivery fails.
    let events = follow(&runtime, run).await;
    assert_eq!(events.last().map(|e| e.event_type()), Some("run.completed"));
    recorder.wait_for("a few refusals", |r| r.refused.load(Ordering::SeqCst) >= 3).await;
    assert!(recorder.batches(run).is_empty());
    assert_eq!(runtime.run_store().export_cursor("flaky", run).await.expect("cursor"), 0, "nothing acknowledged");

    recorder.refuse.store(false, Ordering::SeqCst);
    recorder.wait_for("run.completed", |r| r.has_completed(run)).await;
    assert_delivered(&recorder.batches(run), &stored_ids(&runtime, run).await);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_exporter_does_not_hold_back_another() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (open, opened) = watch::channel(false);
    let stuck = Arc::new(Recorder::with("stuck", None, Some(opened)));
    let other = Recorder::new("other");
    let runtime =
        builder(dir.path(), fast()).exporter(stuck.clone()).exporter(other.clone()).build().await.expect("runtime");
    let runs: Vec<RunId> = futures::future::try_join_all((0..3).map(|_| async {
        Ok::<_, crate::Error>(runtime.create_run(CreateRun::new(id("members"))).await?.into_run().id)
    }))
    .await
    .expect("create");
    other.wait_for("every run.completed", |r| runs.iter().all(|run| r.has_completed(*run))).await;
    assert!(runs.iter().all(|run| stuck.batches(*run).is_empty()), "the stuck one is still waiting");

    open.send_replace(true);
    stuck.wait_for("every run.completed", |r| runs.iter().all(|run| r.has_completed(*run))).await;
    for run in &runs {
        let log = stored_ids(&runtime, *run).await;
        assert_delivered(&stuck.batches(*run), &log);
        assert_delivered(&other.batches(*run), &log);
    }
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_resumes_from_the_durable_cursor_and_a_new_exporter_gets_the_old_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = fast().with_shutdown_grace(Duration::from_millis(50));
    // Takes two batches (of up to 4), then refuses everything: the process stops with those
    // acknowledged, and the rest of the run delivered to nobody.
    let first = Arc::new(Recorder::with("hook", Some(2), None));
    let runtime = builder(dir.path(), options.clone()).exporter(first.clone()).build().await.expect("runtime");
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    follow(&runtime, run).await;
    first.wait_for("a refusal after two batches", |r| r.refused.load(Ordering::SeqCst) >= 1).await;
    runtime.shutdown().await;
    drop(runtime);
    let acked = first.batches(run).iter().flatten().count() as u64;
    assert!((2..=8).contains(&acked), "{acked}");

    let again = Recorder::new("hook");
    let fresh = Recorder::new("fresh");
    let runtime =
        builder(dir.path(), options).exporter(again.clone()).exporter(fresh.clone()).build().await.expect("restart");
    again.wait_for("run.completed", |r| r.has_completed(run)).await;
    fresh.wait_for("run.completed", |r| r.has_completed(run)).await;
    let log = stored_ids(&runtime, run).await;
    let resumed = again.batches(run);
    assert_eq!(resumed.first().and_then(|b| b.first()).map(|e| e.0), Some(acked + 1), "right after the cursor");
    let mut both = first.batches(run);
    both.extend(resumed);
    assert_delivered(&both, &log);
    assert_delivered(&fresh.batches(run), &log);
    runtime.shutdown().await;
}

#[tokio::test]
async fn two_exporters_of_one_name_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let built =
        builder(dir.path(), fast()).exporter(Recorder::new("same")).exporter(Recorder::new("same")).build().await;
    match built {
        Err(crate::Error::Config { reason, .. }) => assert!(reason.contains("\"same\""), "{reason}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// Exporters added and removed while the runtime runs: one added late gets the runs before it
/// (from the backlog); removed, it gets nothing more; added back under its name, it resumes from
/// its cursors, so nothing is missed and only the batch it may have been given twice comes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exporters_come_and_go_while_the_runtime_runs_and_resume_from_their_cursors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = builder(dir.path(), fast()).build().await.expect("runtime");
    let before = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    follow(&runtime, before).await;

    let first = Recorder::new("late");
    runtime.add_exporter(first.clone()).expect("added");
    let again = runtime.add_exporter(Recorder::new("late"));
    assert!(matches!(&again, Err(crate::Error::Config { reason, .. }) if reason.contains("late")), "{again:?}");
    first.wait_for("the run before it", |r| r.has_completed(before)).await;
    assert_delivered(&first.batches(before), &stored_ids(&runtime, before).await);

    assert!(runtime.remove_exporter("late"));
    assert!(!runtime.remove_exporter("late"), "removed once");
    let during = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    follow(&runtime, during).await;
    let second = Recorder::new("late");
    runtime.add_exporter(second.clone()).expect("added back");
    second.wait_for("the run made while it was away", |r| r.has_completed(during)).await;
    assert_delivered(&second.batches(during), &stored_ids(&runtime, during).await);
    assert!(first.batches(during).is_empty(), "a removed exporter is given nothing");
    // Acknowledged before the removal, `before` comes again at most from its last batch.
    let both = [first.batches(before), second.batches(before)].concat();
    assert_delivered(&both, &stored_ids(&runtime, before).await);

    runtime.shutdown().await;
    let refused = runtime.add_exporter(Recorder::new("after"));
    assert!(matches!(refused, Err(crate::Error::ShuttingDown)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_waits_for_exporters_to_catch_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (open, opened) = watch::channel(false);
    let gated = Arc::new(Recorder::with("gated", None, Some(opened)));
    let runtime = builder(dir.path(), fast()).exporter(gated.clone()).build().await.expect("runtime");
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    follow(&runtime, run).await;
    assert!(gated.batches(run).is_empty());
    let shutdown = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.shutdown().await }
    });
    open.send_replace(true);
    shutdown.await.expect("shutdown");
    assert!(gated.has_completed(run), "delivered before shutdown returned");
    assert_delivered(&gated.batches(run), &stored_ids(&runtime, run).await);
}

/// A run store that cannot record cursors costs duplicates, never events: delivery goes on, and
/// after a restart the unacknowledged events come again, from the last cursor that was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cursors_that_cannot_be_recorded_cost_duplicates_not_events() {
    use crate::store::faults::{Fault, FaultPlan, FaultyRunStore};
    use crate::store::{EventStore, MemoryEventStore, MemoryRunStore, RunStore};
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = FaultPlan::new();
    let events: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let runs: Arc<dyn RunStore> = Arc::new(FaultyRunStore::new(Arc::new(MemoryRunStore::new()), plan.clone()));
    let with_stores = |exporter: Arc<Recorder>| {
        builder(dir.path(), fast()).event_store(events.clone()).run_store(runs.clone()).exporter(exporter)
    };
    plan.fail("ack_export", Fault::Io);
    let first = Recorder::new("hook");
    let runtime = with_stores(first.clone()).build().await.expect("runtime");
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    first.wait_for("run.completed", |r| r.has_completed(run)).await;
    let log = stored_ids(&runtime, run).await;
    assert_delivered(&first.batches(run), &log);
    runtime.shutdown().await;
    assert_eq!(runs.export_cursor("hook", run).await.expect("cursor"), 0, "no acknowledgement was recorded");

    plan.heal();
    let again = Recorder::new("hook");
    let runtime = with_stores(again.clone()).build().await.expect("restart");
    again.wait_for("run.completed", |r| r.has_completed(run)).await;
    assert_delivered(&again.batches(run), &log);
    runtime.shutdown().await;
    assert_eq!(runs.export_cursor("hook", run).await.expect("cursor"), log.len() as u64);
}

/// Takes one event of each batch, then fails saying so (an exporter that sends events one by one
/// to an endpoint that fails after each).
#[derive(Debug)]
struct OneAtATime {
    inner: Arc<Recorder>,
    name: String,
}

#[async_trait]
impl EventExporter for OneAtATime {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
        self.inner.deliver(run, &events[..1]).await?;
        if events.len() == 1 {
            return Ok(());
        }
        Err(ExportError::new("took one").delivered_up_to(events[0].sequence()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_a_failing_exporter_took_is_acknowledged_and_never_given_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recorder = Recorder::new("one");
    let exporter = Arc::new(OneAtATime { inner: recorder.clone(), name: "one".to_owned() });
    let runtime = builder(dir.path(), fast()).exporter(exporter).build().await.expect("runtime");
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    recorder.wait_for("run.completed", |r| r.has_completed(run)).await;
    let log = stored_ids(&runtime, run).await;
    let taken: Vec<(u64, EventId)> = recorder.batches(run).iter().flatten().map(|(s, e, _)| (*s, *e)).collect();
    assert_eq!(taken, log, "every event once, in order: progress one event per failure");
    assert_eq!(runtime.run_store().export_cursor("one", run).await.expect("cursor"), log.len() as u64);
    runtime.shutdown().await;
}

/// Panics on its first delivery, then records.
#[derive(Debug)]
struct PanicsOnce {
    inner: Arc<Recorder>,
    panicked: AtomicBool,
}

#[async_trait]
impl EventExporter for PanicsOnce {
    fn name(&self) -> &str {
        "panics-once"
    }

    async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("an exporter bug");
        }
        self.inner.deliver(run, events).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_exporter_is_retried_like_a_failing_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recorder = Recorder::new("panics-once");
    let exporter = Arc::new(PanicsOnce { inner: recorder.clone(), panicked: AtomicBool::new(false) });
    let runtime = builder(dir.path(), fast()).exporter(exporter.clone()).build().await.expect("runtime");
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    recorder.wait_for("run.completed", |r| r.has_completed(run)).await;
    assert!(exporter.panicked.load(Ordering::SeqCst));
    assert_delivered(&recorder.batches(run), &stored_ids(&runtime, run).await);
    runtime.shutdown().await;
}

/// A run that has much to deliver gets it in turns: a run due after it is not kept waiting until
/// the first one is done.
#[tokio::test]
async fn runs_take_turns() {
    use crate::store::{Durability, EventStore, MemoryEventStore, MemoryRunStore, RunStore, queued_run};
    let events = Arc::new(MemoryEventStore::new());
    let runs = Arc::new(MemoryRunStore::new());
    // The long run is the older one: the start-up scan makes it due first.
    let mut pair = [queued_run("acme", "members"), queued_run("acme", "members")];
    pair.sort_by_key(|run| run.id);
    let [long, short] = pair;
    let mut keys = Vec::new();
    for (run, count) in [(&long, 100), (&short, 3)] {
        runs.create_run(run, None).await.expect("create");
        let key = RunKey::new(run.workspace_id.clone(), run.id);
        events.append(&key, &crate::testing::lines(&key, 1, count), Durability::Buffered).await.expect("append");
        keys.push(key);
    }
    let recorder = Recorder::new("turns");
    let exporters =
        Exporters::start(vec![recorder.clone()], &fast().with_batch_size(1), events, runs.clone()).expect("start");
    // Both are due at once: the runs are active, so the start-up scan finds them.
    let due = runs.export_backlog("turns", None, 10).await.expect("backlog");
    assert_eq!(due.len(), 2);
    recorder.wait_for("the short run", |r| r.batches(short.id).len() == 3).await;
    recorder.wait_for("the long run", |r| r.batches(long.id).len() == 100).await;
    exporters.shutdown().await;
    // The order the batches came in, across runs.
    let order = lock(&recorder.order).clone();
    let short_done = order.iter().rposition(|run| *run == short.id).expect("short delivered");
    let long_done = order.iter().rposition(|run| *run == long.id).expect("long delivered");
    assert!(short_done < long_done, "the short run finished first, whichever was due first");
    assert!(short_done < 3 + 2 * 8, "within a turn or two of the long run: {short_done}");
}

/// What an exporter sees keeps the guarantee whatever its failures and batch size: every event
/// of every run, in order, batches contiguous, no gap, re-deliveries only of the same events.
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Fails the deliveries whose number (from 0) is in `failing`.
    #[derive(Debug)]
    struct Scripted {
        inner: Arc<Recorder>,
        calls: AtomicUsize,
        failing: Vec<bool>,
    }

    #[async_trait]
    impl EventExporter for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }

        async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.get(call).copied().unwrap_or(false) {
                return Err(ExportError::new("scripted failure"));
            }
            self.inner.deliver(run, events).await
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn deliveries_keep_the_guarantee(
            batch_size in 1usize..12,
            runs in 1usize..4,
            failing in proptest::collection::vec(any::<bool>(), 0..40),
        ) {
            let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
            tokio.block_on(async {
                let dir = tempfile::tempdir().expect("temp dir");
                let recorder = Recorder::new("scripted");
                let exporter = Arc::new(Scripted { inner: recorder.clone(), calls: AtomicUsize::new(0), failing });
                let options = fast().with_batch_size(batch_size).with_backoff(Duration::from_millis(1), Duration::from_millis(2));
                let runtime = builder(dir.path(), options).in_memory().exporter(exporter).build().await.expect("runtime");
                let mut ids = Vec::new();
                for _ in 0..runs {
                    ids.push(runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id);
                }
                recorder.wait_for("every run.completed", |r| ids.iter().all(|run| r.has_completed(*run))).await;
                for run in &ids {
                    let batches = recorder.batches(*run);
                    assert!(batches.iter().all(|b| b.len() <= batch_size), "batches of at most {batch_size}");
                    assert_delivered(&batches, &stored_ids(&runtime, *run).await);
                }
                runtime.shutdown().await;
            });
        }
    }
}
