//! Webhooks delivered to a real HTTP receiver (axum, on loopback) that checks every signature and
//! fails on purpose: 500s, answers slower than the client's timeout, dropped connections.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use ade_core::event::{RunId, WorkspaceId};
use ade_core::test_util::export::{builder, fast};
use ade_core::test_util::{follow, id};
use ade_core::{CreateRun, Runtime};
use ade_webhooks::test_util::{Answer, Receiver};
use ade_webhooks::{Error, NewWebhook, WebhookOptions, WebhookStatus, Webhooks};
use serde_json::Value;

fn options() -> WebhookOptions {
    WebhookOptions::default().with_private_targets(true).with_timeout(Duration::from_millis(300))
}

async fn runtime(dir: &std::path::Path) -> Runtime {
    builder(dir, fast()).build().await.expect("runtime")
}

/// The stored log of `run`, as JSON values.
async fn stored(runtime: &Runtime, run: RunId) -> Vec<Value> {
    follow(runtime, run).await.iter().map(|e| serde_json::to_value(e).expect("json")).collect()
}

fn workspace(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).expect("workspace")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_arrives_signed_once_and_in_order_per_run_whatever_the_endpoint_does() {
    // Fails, stalls past the client's timeout, or drops about every other request.
    let receiver = Receiver::start(Arc::new(|n| match n % 7 {
        1 | 4 => Answer::Fail,
        2 => Answer::Stall,
        5 => Answer::Drop,
        _ => Answer::Accept,
    }))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime(dir.path()).await;
    let webhooks = Webhooks::start(&runtime, options()).await.expect("webhooks");
    let webhook =
        webhooks.create(&runtime, NewWebhook::new(workspace("default"), &receiver.url)).await.expect("create");
    receiver.sign_with(&webhook.secret);
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id);
    }
    for run in &runs {
        let log = stored(&runtime, *run).await;
        receiver
            .wait_for("the run's completion", |accepted| {
                accepted.iter().any(|r| r.body["run_id"] == run.to_string() && r.body["type"] == "run.completed")
            })
            .await;
        assert_eq!(receiver.of_run(*run), log, "exactly the log, in order, each event once (repeats aside)");
    }
    assert!(receiver.accepted().iter().all(|r| r.signed), "every request is signed with the subscription's secret");
    let deliveries = webhooks.deliveries(&webhook.id).expect("log");
    assert!(deliveries.iter().any(|d| d.attempts > 1 && d.last_error.is_none()), "retried, then delivered");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_gets_its_workspace_and_its_types_only() {
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime(dir.path()).await;
    let webhooks = Webhooks::start(&runtime, options()).await.expect("webhooks");
    let new = NewWebhook::new(workspace("acme"), &receiver.url).event_types(vec!["run.completed".to_owned()]);
    let webhook = webhooks.create(&runtime, new).await.expect("create");
    receiver.sign_with(&webhook.secret);
    let other = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    let ours = runtime
        .create_run(CreateRun::new(id("members")).workspace(workspace("acme")))
        .await
        .expect("create")
        .into_run()
        .id;
    follow(&runtime, other).await;
    let log = stored(&runtime, ours).await;
    receiver.wait_for("acme's run.completed", |accepted| !accepted.is_empty()).await;
    runtime.shutdown().await;
    assert_eq!(receiver.of_run(ours), vec![log.last().cloned().expect("completed")]);
    assert!(receiver.of_run(other).is_empty(), "nothing of another workspace");
    assert_eq!(receiver.accepted().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_endpoint_gets_its_subscription_disabled_and_enabling_resumes_where_it_stopped() {
    let receiver = Receiver::start(Arc::new(|_| Answer::Fail)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime(dir.path()).await;
    let options = options().with_disable_after(Duration::from_millis(200));
    let webhooks = Webhooks::start(&runtime, options).await.expect("webhooks");
    let webhook =
        webhooks.create(&runtime, NewWebhook::new(workspace("default"), &receiver.url)).await.expect("create");
    receiver.sign_with(&webhook.secret);
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    let log = stored(&runtime, run).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while webhooks.get(&webhook.id).expect("exists").status != WebhookStatus::Disabled {
        assert!(tokio::time::Instant::now() < deadline, "not disabled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let disabled = webhooks.get(&webhook.id).expect("exists");
    let reason = disabled.disabled_reason.unwrap_or_default();
    assert!(reason.contains("500"), "says why: {reason}");
    let deliveries = webhooks.deliveries(&webhook.id).expect("log");
    assert_eq!(deliveries[0].response_status, Some(500));
    assert!(deliveries[0].attempts >= 2, "{deliveries:?}");
    assert!(receiver.accepted().is_empty());

    receiver.set_plan(Arc::new(|_| Answer::Accept));
    let enabled = webhooks.enable(&runtime, &webhook.id).await.expect("enable");
    assert_eq!(enabled.status, WebhookStatus::Enabled);
    receiver.wait_for("the whole run", |accepted| accepted.iter().any(|r| r.body["type"] == "run.completed")).await;
    assert_eq!(receiver.of_run(run), log, "nothing skipped while it was disabled");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_survive_a_restart_and_deleted_ones_get_nothing() {
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (kept, deleted) = {
        let runtime = runtime(dir.path()).await;
        let webhooks = Webhooks::start(&runtime, options()).await.expect("webhooks");
        let new = || NewWebhook::new(workspace("default"), &receiver.url).event_types(vec!["run.*".to_owned()]);
        let kept = webhooks.create(&runtime, new()).await.expect("create");
        let deleted = webhooks.create(&runtime, new()).await.expect("create");
        runtime.shutdown().await;
        (kept, deleted)
    };
    receiver.sign_with(&kept.secret);
    let runtime = runtime(dir.path()).await;
    let webhooks = Webhooks::start(&runtime, options()).await.expect("webhooks after a restart");
    assert_eq!(webhooks.list(|_| true).len(), 2);
    webhooks.delete(&runtime, &deleted.id).await.expect("delete");
    assert!(matches!(webhooks.delete(&runtime, &deleted.id).await, Err(Error::NotFound(_))));
    assert_eq!(webhooks.list(|_| true), vec![kept.clone()]);
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    let log = stored(&runtime, run).await;
    receiver.wait_for("run.completed", |accepted| accepted.iter().any(|r| r.body["type"] == "run.completed")).await;
    runtime.shutdown().await;
    let runs_only: Vec<Value> =
        log.into_iter().filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("run."))).collect();
    assert_eq!(receiver.of_run(run), runs_only);
    assert!(receiver.accepted().iter().all(|r| r.signed), "signed with the kept subscription's secret only");
}

#[tokio::test]
async fn private_targets_and_bad_subscriptions_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime(dir.path()).await;
    let webhooks = Webhooks::start(&runtime, WebhookOptions::default()).await.expect("webhooks");
    let create = |url: &str, types: &[&str]| {
        let new =
            NewWebhook::new(workspace("default"), url).event_types(types.iter().map(|t| (*t).to_owned()).collect());
        let (webhooks, runtime) = (webhooks.clone(), runtime.clone());
        async move { webhooks.create(&runtime, new).await }
    };
    assert!(matches!(create("http://127.0.0.1:9/hook", &[]).await, Err(Error::PrivateTarget(_))));
    assert!(matches!(create("http://169.254.169.254/", &[]).await, Err(Error::PrivateTarget(_))));
    assert!(matches!(create("file:///etc/passwd", &[]).await, Err(Error::InvalidUrl(_))));
    assert!(matches!(create("https://hooks.example.com/", &["run completed"]).await, Err(Error::InvalidFilter(_))));
    assert!(webhooks.list(|_| true).is_empty(), "nothing kept");
    runtime.shutdown().await;
}

/// Another instance on the same data directory deleted the subscription (its record is gone):
/// this instance, which still holds it, sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_deleted_by_another_instance_gets_nothing_here() {
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime(dir.path()).await;
    let webhooks = Webhooks::start(&runtime, options()).await.expect("webhooks");
    let gone = webhooks.create(&runtime, NewWebhook::new(workspace("default"), &receiver.url)).await.expect("create");
    let kept = webhooks
        .create(
            &runtime,
            NewWebhook::new(workspace("default"), &receiver.url).event_types(vec!["run.completed".to_owned()]),
        )
        .await
        .expect("create");
    receiver.sign_with(&kept.secret);
    std::fs::remove_file(dir.path().join(format!("webhooks/{}.json", gone.id))).expect("delete the record elsewhere");
    let run = runtime.create_run(CreateRun::new(id("members"))).await.expect("create").into_run().id;
    let log = stored(&runtime, run).await;
    receiver.wait_for("run.completed", |accepted| !accepted.is_empty()).await;
    runtime.shutdown().await;
    assert_eq!(receiver.of_run(run), vec![log.last().cloned().expect("completed")], "only the kept subscription's");
    assert!(receiver.accepted().iter().all(|r| r.signed));
}

/// A record that cannot be read, or whose target the deployment no longer allows, costs its own
/// subscription at start, not the others (nor the start).
#[tokio::test]
async fn a_bad_record_is_left_out_at_start_and_the_others_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kept = {
        let runtime = runtime(dir.path()).await;
        let webhooks = Webhooks::start(&runtime, options()).await.expect("webhooks");
        let private = webhooks.create(&runtime, NewWebhook::new(workspace("default"), "http://127.0.0.1:9/")).await;
        assert!(private.is_ok(), "allowed by these options");
        let kept = webhooks.create(&runtime, NewWebhook::new(workspace("default"), "https://hooks.example.com/")).await;
        runtime.shutdown().await;
        kept.expect("create")
    };
    std::fs::write(dir.path().join("webhooks/wh_01M8C4DS2PH0887ZPTJ9T85312.json"), "{ not json").expect("write");
    let runtime = runtime(dir.path()).await;
    let webhooks = Webhooks::start(&runtime, WebhookOptions::default()).await.expect("starts");
    assert_eq!(webhooks.list(|_| true), vec![kept], "only the public, readable one");
    assert!(dir.path().join("webhooks/wh_01M8C4DS2PH0887ZPTJ9T85312.json").exists(), "left as it is");
    runtime.shutdown().await;
}
