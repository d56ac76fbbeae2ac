//! `/webhooks`: subscriptions scoped by token, refused targets, and delivery across a `kill -9`
//! of the server to a real receiver that checks every signature.

use std::sync::Arc;
use std::time::Duration;

use ade_server::ServerConfig;
use ade_webhooks::test_util::{Answer, Receiver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::binary::start_with;
use crate::support::{PATIENCE, TestServer, header, problem, test_tokens};

#[tokio::test]
async fn webhooks_are_scoped_by_token_and_bad_ones_are_refused() {
    let server = TestServer::start_with(ServerConfig::new().with_tokens(test_tokens())).await;
    let (admin, acme, two) =
        (server.with_token("admin-secret"), server.with_token("acme-secret"), server.with_token("two-secret"));
    let hook = |body: Value| body;
    let url = "https://hooks.example.com/ade";
    // A one-workspace token's subscription is in its workspace.
    let response = acme.post_json("/webhooks", &hook(json!({ "url": url, "event_types": ["run.completed"] }))).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location");
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["workspace_id"], "acme");
    assert_eq!(created["status"], "enabled");
    assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/webhooks/{id}"));
    // Another workspace, private targets, bad filters and unknown fields are refused.
    let beta = json!({ "url": url, "workspace_id": "beta" });
    problem(acme.post_json("/webhooks", &beta).await, StatusCode::FORBIDDEN).await;
    for (body, what) in [
        (json!({ "url": "http://127.0.0.1:9000/hook" }), "private"),
        (json!({ "url": "http://169.254.169.254/latest" }), "private"),
        (json!({ "url": "ftp://example.com/" }), "scheme"),
        (json!({ "url": url, "event_types": ["run completed"] }), "filter"),
        (json!({ "url": url, "secret": "mine" }), "unknown field"),
    ] {
        let detail = problem(acme.post_json("/webhooks", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains(what), "{body}: {detail}");
    }
    let beta_hook: Value = admin.post_json("/webhooks", &beta).await.json().await.expect("json");
    let beta_id = beta_hook["id"].as_str().expect("id").to_owned();
    // Lists and reads follow the token's workspaces; others' subscriptions do not exist for it.
    let listed = acme.get_json("/webhooks").await;
    assert_eq!(listed["webhooks"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(admin.get_json("/webhooks").await["webhooks"].as_array().map(Vec::len), Some(2));
    problem(two.get("/webhooks").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(two.get_json("/webhooks?workspace_id=beta").await["webhooks"][0]["id"], beta_id.as_str());
    for path in
        [format!("/webhooks/{beta_id}"), format!("/webhooks/{beta_id}/deliveries"), "/webhooks/wh_nope".to_owned()]
    {
        problem(acme.get(&path).await, StatusCode::NOT_FOUND).await;
    }
    problem(
        acme.request(Method::DELETE, &format!("/webhooks/{beta_id}")).send().await.expect("delete"),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(acme.get_json(&format!("/webhooks/{id}")).await["url"], url);
    assert_eq!(acme.get_json(&format!("/webhooks/{id}/deliveries")).await["deliveries"], json!([]));
    let enabled = acme.request(Method::POST, &format!("/webhooks/{id}/enable")).send().await.expect("enable");
    assert_eq!(enabled.status(), StatusCode::OK);
    // Deleted: gone.
    let deleted = acme.request(Method::DELETE, &format!("/webhooks/{id}")).send().await.expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(acme.get(&format!("/webhooks/{id}")).await, StatusCode::NOT_FOUND).await;
    server.stop().await;
}

/// The server's NDJSON log of a run, as JSON values.
async fn log(http: &reqwest::Client, base: &str, run: &str) -> Vec<Value> {
    let response = http
        .get(format!("{base}/runs/{run}/events"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("events");
    let text = response.text().await.expect("body");
    text.lines().map(|line| serde_json::from_str(line).expect("json line")).collect()
}

/// Starts the binary on `data`, allowing loopback webhook targets.
async fn start(data: &std::path::Path) -> (std::process::Child, String) {
    start_with(data, &["--webhooks-allow-private", "--webhook-timeout-secs", "2"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_the_receiver_in_order_across_a_kill_9_mid_delivery() {
    // A slow endpoint: the server is killed while it still has events to deliver.
    let receiver = Receiver::start(Arc::new(|_| Answer::AcceptAfter(Duration::from_millis(40)))).await;
    let data = tempfile::tempdir().expect("data dir");
    let http = reqwest::Client::new();
    let (mut first, base) = start(data.path()).await;
    let created: Value = http
        .post(format!("{base}/webhooks"))
        .json(&json!({ "url": receiver.url }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    receiver.sign_with(created["secret"].as_str().expect("secret"));
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/hello.csv");
    let upload = http
        .post(format!("{base}/documents?filename=hello.csv"))
        .body(std::fs::read(sample).expect("sample"))
        .send()
        .await
        .expect("upload");
    let document: Value = upload.json().await.expect("json");
    let mut runs = Vec::new();
    for _ in 0..4 {
        let body = json!({ "configuration_id": "hello", "document_ids": [document["id"]] });
        let run: Value =
            http.post(format!("{base}/runs")).json(&body).send().await.expect("run").json().await.expect("json");
        runs.push(run["id"].as_str().expect("id").to_owned());
    }
    receiver.wait_for("some deliveries", |accepted| accepted.len() >= 5).await;
    first.kill().expect("kill -9");
    let _ = first.wait();
    let delivered_before = receiver.accepted().len();

    let (mut second, base) = start(data.path()).await;
    for run in &runs {
        receiver
            .wait_for("every run's run.completed", |accepted| {
                accepted.iter().any(|r| r.body["run_id"] == run.as_str() && r.body["type"] == "run.completed")
            })
            .await;
    }
    let mut total = 0;
    for run in &runs {
        let stored = log(&http, &base, run).await;
        total += stored.len();
        let id: ade_core::event::RunId = run.parse().expect("run id");
        assert_eq!(receiver.of_run(id), stored, "run {run}: its whole log, in order, repeats aside");
    }
    assert!(delivered_before < total, "killed mid-delivery ({delivered_before} of {total} delivered)");
    assert!(receiver.accepted().iter().all(|r| r.signed), "every request signed with the subscription's secret");
    let deliveries: Value = http
        .get(format!("{base}/webhooks/{}/deliveries", created["id"].as_str().expect("id")))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    assert!(deliveries["deliveries"].as_array().is_some_and(|d| d.iter().all(|e| e["status"] == "delivered")));
    second.kill().expect("stop");
    let _ = tokio::time::timeout(PATIENCE, tokio::task::spawn_blocking(move || second.wait())).await;
}
