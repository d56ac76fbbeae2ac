//! Several runtimes on one PostgreSQL database (SPEC §6): one system. Each test has its own
//! schema; the tests skip without `ADE_TEST_PG_URL`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use ade_core::coordinate::Coordinator;
use ade_core::dispatch::{After, DispatchOptions, Dispatcher, RunContext};
use ade_core::event::{Envelope, EventPayload, EventSource, RunQueued};
use ade_core::run::{Run, RunOutcome, RunStatus, failure_code};
use ade_core::store::run_conformance::queued_run;
use ade_core::store::{CreateOutcome, EventStream, RunKey, RunStore, Transition};
use ade_core::test_util::scripted::{ScriptedBuilder, ScriptedEngine, configuration};
use ade_core::test_util::{assert_well_formed, completion, console, follow, id, types};
use ade_core::{CreateRun, Runtime};
use ade_postgres::test_util::{self as pg_testing, Schema};
use ade_postgres::{PgCoordinator, PgEventStore, PgRunStore};
use futures::TryStreamExt;
use serde_json::json;

/// A runtime on the schema, sharing `dir` with the other instances.
async fn instance(schema: &Schema, dir: &std::path::Path, lease: Duration) -> Runtime {
    let backend = ade_postgres::connect(&schema.url()).await.expect("connect");
    Runtime::builder()
        .backend(backend)
        .data_dir(dir)
        .workers(2)
        .lease(lease)
        .cancel_grace(Duration::from_secs(5))
        .engine("scripted", Arc::new(ScriptedEngine), Some(Arc::new(ScriptedBuilder)))
        .configuration(configuration("members", json!({})))
        .configuration(configuration("blocker", json!({ "block": true })))
        .build()
        .await
        .expect("runtime on PostgreSQL")
}

/// The stored log of a run, as envelopes.
async fn stored_log(runtime: &Runtime, run: &Run) -> Vec<Envelope> {
    let key = RunKey::new(run.workspace_id.clone(), run.id);
    let events: Vec<_> =
        runtime.dispatcher().store().read_after(&key, 0).await.expect("read").try_collect().await.expect("events");
    events.iter().map(|e| e.envelope().expect("typed").clone()).collect()
}

/// Waits until `check` holds, polling the stores (runs move on other instances' time).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_created_on_one_instance_run_once_and_stream_on_another() {
    let Some(url) = pg_testing::url() else { return };
    let (_pool, schema) = pg_testing::fresh_schema(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let a = instance(&schema, dir.path(), Duration::from_secs(30)).await;
    let b = instance(&schema, dir.path(), Duration::from_secs(30)).await;
    let mut runs = Vec::new();
    for i in 0..20 {
        let creator = if i % 2 == 0 { &a } else { &b };
        runs.push(creator.create_run(CreateRun::new(id("members"))).await.expect("create").into_run());
    }
    for (i, run) in runs.iter().enumerate() {
        // Followed from the instance that did not create it, whichever executes it.
        let follower = if i % 2 == 0 { &b } else { &a };
        let streamed = follow(follower, run.id).await;
        let stored = stored_log(follower, run).await;
        assert_eq!(streamed, stored, "the stream is the log");
        let finished = a.get_run(None, run.id).await.expect("get").expect("exists");
        assert_well_formed(&finished, &stored);
        assert_eq!(completion(&stored).status, RunOutcome::Succeeded);
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_executing_on_one_instance_is_cancelled_from_another() {
    let Some(url) = pg_testing::url() else { return };
    let (_pool, schema) = pg_testing::fresh_schema(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let a = instance(&schema, dir.path(), Duration::from_secs(30)).await;
    let b = instance(&schema, dir.path(), Duration::from_secs(30)).await;
    let run = a.create_run(CreateRun::new(id("blocker"))).await.expect("create").into_run();
    eventually("the run to start", || async {
        a.get_run(None, run.id).await.expect("get").is_some_and(|r| r.status == RunStatus::Running)
    })
    .await;
    let (executor, other) = if a.is_executing(run.id) { (&a, &b) } else { (&b, &a) };
    assert!(executor.is_executing(run.id) && !other.is_executing(run.id), "one instance executes it");
    let followed = tokio::spawn({
        let other = other.clone();
        async move { follow(&other, run.id).await }
    });
    other.cancel(None, run.id).await.expect("cancel from the instance that does not execute it");
    let streamed = followed.await.expect("follower");
    let stored = stored_log(other, &run).await;
    assert_eq!(streamed, stored);
    assert_eq!(completion(&stored).status, RunOutcome::Cancelled);
    let finished = other.get_run(None, run.id).await.expect("get").expect("exists");
    assert_well_formed(&finished, &stored);

    // A run just created (still queued, or just claimed by a worker of either instance, maybe
    // the asked one's) is cancelled by whoever is asked.
    let queued = b.create_run(CreateRun::new(id("blocker"))).await.expect("create").into_run();
    a.cancel(None, queued.id).await.expect("cancel");
    let events = follow(&b, queued.id).await;
    assert_eq!(completion(&events).status, RunOutcome::Cancelled);
    assert_eq!(types(&events).iter().filter(|t| **t == "run.completed").count(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_run_is_ended_by_another_instance_and_its_old_owner_is_fenced_off() {
    let Some(url) = pg_testing::url() else { return };
    let (pool, schema) = pg_testing::fresh_schema(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A "ghost" instance: it claimed a run, started it, wrote events, then stopped renewing its
    // lease (paused, or dead).
    let runs = PgRunStore::with_pool(pool.clone()).await.expect("run store");
    let coordinator = PgCoordinator::new(runs.clone());
    let events = PgEventStore::with_pool(pool).await.expect("event store");
    let ghost = Dispatcher::new(Arc::new(events), DispatchOptions::default());
    let run = queued_run("default", "members");
    let lease = Duration::from_millis(300);
    assert!(matches!(
        coordinator.create_run(&run, None, "ghost", lease).await.expect("create"),
        CreateOutcome::Created(_)
    ));
    runs.transition(run.id, Transition::to(RunStatus::Building)).await.expect("building");
    runs.transition(run.id, Transition::to(RunStatus::Running)).await.expect("running");
    let context = RunContext::new(run.workspace_id.clone(), run.configuration_id.clone(), run.id)
        .with_lease_owner(Some(Arc::from("ghost")));
    let writer = ghost.open_run(context).await.expect("ghost writer");
    writer.emit(EventSource::Api, RunQueued::default()).await.expect("emit");
    for i in 0..5 {
        writer.emit(EventSource::Engine, console(&format!("line {i}"))).await.expect("emit");
    }
    assert_eq!(writer.flush().await.expect("written under the live lease"), 6);

    // Another instance takes it over once the lease has expired, and ends it.
    let survivor = instance(&schema, dir.path(), lease).await;
    let streamed = follow(&survivor, run.id).await;
    let done = completion(&streamed);
    assert_eq!(done.status, RunOutcome::Failed);
    assert_eq!(done.failure.as_ref().map(|f| f.code.as_str()), Some(failure_code::ORCHESTRATOR_LOST));

    // The ghost wakes up: whatever it writes now is refused.
    writer.emit(EventSource::Engine, console("too late")).await.expect("stamped");
    let refused = writer.flush().await.expect_err("the old owner's write is fenced off");
    assert!(refused.to_string().contains("lease"), "{refused}");
    let stored = stored_log(&survivor, &run).await;
    assert_eq!(streamed, stored);
    let finished = survivor.get_run(None, run.id).await.expect("get").expect("exists");
    assert_well_formed(&finished, &stored);
    assert!(stored.iter().all(|e| !matches!(&e.payload, EventPayload::ConsoleLine(l) if l.message == "too late")));
    survivor.shutdown().await;
}

/// The sequence of the stream's next event, failing rather than hanging.
async fn next(stream: &mut EventStream) -> u64 {
    let next = tokio::time::timeout(Duration::from_secs(30), futures::StreamExt::next(stream));
    next.await.expect("an event arrives").expect("open").expect("no error").sequence()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_listener_reconnects_followers_miss_nothing() {
    let Some(url) = pg_testing::url() else { return };
    let (pool, schema) = pg_testing::fresh_schema(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let follower = instance(&schema, dir.path(), Duration::from_secs(30)).await;
    // Another instance writes the run.
    let coordinator = PgCoordinator::new(PgRunStore::with_pool(pool.clone()).await.expect("run store"));
    let writer_side = Dispatcher::new(
        Arc::new(PgEventStore::with_pool(pool.clone()).await.expect("store")),
        DispatchOptions::default(),
    );
    let run = queued_run("default", "members");
    coordinator.create_run(&run, None, "writer", Duration::from_secs(60)).await.expect("create");
    let context = RunContext::new(run.workspace_id.clone(), run.configuration_id.clone(), run.id)
        .with_lease_owner(Some(Arc::from("writer")));
    let writer = writer_side.open_run(context).await.expect("writer");
    writer.emit(EventSource::Api, RunQueued::default()).await.expect("emit");
    writer.flush().await.expect("flush");
    let mut stream = follower.subscribe(None, run.id, After(0)).await.expect("subscribe");
    assert_eq!(next(&mut stream).await, 1);
    // Cut the follower's LISTEN connection; events appended meanwhile must still arrive.
    let cut: Vec<i32> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid)::INT FROM pg_stat_activity
         WHERE application_name = current_setting('application_name') AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .expect("terminate the listener");
    assert!(!cut.is_empty(), "found the listener's connection");
    for i in 0..20 {
        writer.emit(EventSource::Engine, console(&format!("line {i}"))).await.expect("emit");
    }
    writer.flush().await.expect("flush");
    for expected in 2..=21 {
        assert_eq!(next(&mut stream).await, expected);
    }
    follower.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_renewal_of_its_own_run_does_not_stall_an_instances_reaper() {
    let Some(url) = pg_testing::url() else { return };
    let (pool, schema) = pg_testing::fresh_schema(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A 30 s lease: renewed every 10 s, abandoned runs looked for every 7.5 s.
    let a = instance(&schema, dir.path(), Duration::from_secs(30)).await;
    let own = a.create_run(CreateRun::new(id("blocker"))).await.expect("create").into_run();
    eventually("the run to start", || async {
        a.get_run(None, own.id).await.expect("get").is_some_and(|r| r.status == RunStatus::Running)
    })
    .await;
    // Its renewal is late (as with a stalled database): the lease looks expired, the oldest.
    sqlx::query("UPDATE ade_runs SET lease_until_us = 0 WHERE id = $1")
        .bind(own.id.to_string())
        .execute(&pool)
        .await
        .expect("expire");
    // A run a dead instance left, expired after it.
    let runs = PgRunStore::with_pool(pool.clone()).await.expect("run store");
    let coordinator = PgCoordinator::new(runs.clone());
    let ghost = Dispatcher::new(
        Arc::new(PgEventStore::with_pool(pool.clone()).await.expect("store")),
        DispatchOptions::default(),
    );
    let abandoned = queued_run("default", "members");
    coordinator.create_run(&abandoned, None, "ghost", Duration::ZERO).await.expect("create");
    runs.transition(abandoned.id, Transition::to(RunStatus::Building)).await.expect("building");
    runs.transition(abandoned.id, Transition::to(RunStatus::Running)).await.expect("running");
    sqlx::query("UPDATE ade_runs SET lease_until_us = 1 WHERE id = $1")
        .bind(abandoned.id.to_string())
        .execute(&pool)
        .await
        .expect("expire");
    let context = RunContext::new(abandoned.workspace_id.clone(), abandoned.configuration_id.clone(), abandoned.id)
        .with_lease_owner(Some(Arc::from("ghost")));
    let writer = ghost.open_run(context).await.expect("ghost writer");
    writer.emit(EventSource::Api, RunQueued::default()).await.expect("emit");
    writer.flush().await.expect("written before it died");
    drop(writer);
    // The reaper skips its own live run and ends the abandoned one, while its own goes on.
    let events = follow(&a, abandoned.id).await;
    assert_eq!(completion(&events).failure.as_ref().map(|f| f.code.as_str()), Some(failure_code::ORCHESTRATOR_LOST));
    let still = a.get_run(None, own.id).await.expect("get").expect("exists");
    assert_eq!(still.status, RunStatus::Running, "its own run was not taken over");
    a.cancel(None, own.id).await.expect("cancel");
    assert_eq!(completion(&follow(&a, own.id).await).status, RunOutcome::Cancelled);
    a.shutdown().await;
}

/// On PostgreSQL: runs of two instances reach each instance's exporter, and an exporter that
/// starts later on either instance finds every finished run in the shared backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_cursors_are_shared_and_a_late_exporter_gets_every_run() {
    use ade_core::test_util::export::{Recorder, assert_delivered, builder, fast, stored_ids};
    let Some(url) = pg_testing::url() else { return };
    let (_pool, schema) = pg_testing::fresh_schema(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let instance = |exporter: Arc<Recorder>| {
        let (dir, url) = (dir.path().to_owned(), schema.url());
        async move {
            let backend = ade_postgres::connect(&url).await.expect("connect");
            builder(&dir, fast()).backend(backend).exporter(exporter).build().await
        }
    };
    let (a_hook, b_hook) = (Recorder::new("hook"), Recorder::new("hook"));
    let a = instance(a_hook.clone()).await.expect("instance a");
    let b = instance(b_hook.clone()).await.expect("instance b");
    let mut runs = Vec::new();
    for i in 0..4 {
        let creator = if i % 2 == 0 { &a } else { &b };
        runs.push(creator.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id);
    }
    for run in &runs {
        follow(&a, *run).await;
    }
    a.shutdown().await;
    b.shutdown().await;
    // Whoever delivered which batch, the cursor of "hook" reached every run's end.
    for run in &runs {
        let log = stored_ids(&a, *run).await;
        assert_eq!(a.run_store().export_cursor("hook", *run).await.expect("cursor"), log.len() as u64);
        assert!(a_hook.has_completed(*run) || b_hook.has_completed(*run));
    }
    assert!(a.run_store().export_backlog("hook", None, 100).await.expect("backlog").is_empty());

    let late = Recorder::new("late");
    let c = instance(late.clone()).await.expect("instance c");
    late.wait_for("every run.completed", |r| runs.iter().all(|run| r.has_completed(*run))).await;
    for run in &runs {
        assert_delivered(&late.batches(*run), &stored_ids(&c, *run).await);
    }
    c.shutdown().await;
}
