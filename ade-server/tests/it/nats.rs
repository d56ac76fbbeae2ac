//! `--nats-url`: the `ade-server` binary exports every run's log to a real NATS JetStream
//! (`ADE_TEST_NATS_URL`; skipped without it, failing under `ADE_REQUIRE_NATS=1`), across a
//! SIGKILL in the middle of its runs: after the restart on the same data directory, the stream
//! holds exactly each run's stored log, in order, without a duplicate or a gap.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ade_nats::test_util::{self, Stored};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::{binary, wait};
use crate::support::{PATIENCE, announced_base};

/// Starts the binary over `data` and `configs`, exporting to `stream` under `prefix`.
async fn start(data: &Path, configs: &Path, url: &str, stream: &str, prefix: &str) -> (Child, String) {
    let mut child = binary()
        .args(["--bind", "127.0.0.1:0", "--workers", "2", "--data-dir"])
        .arg(data)
        .arg("--config-dir")
        .arg(configs)
        .args(["--nats-url", url, "--nats-stream", stream, "--nats-subject-prefix", prefix])
        // The test server may have NATS's default max_payload (1 MiB), too small to refuse nothing.
        .args(["--nats-oversize", "stub"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let base = announced_base(&mut child).await;
    (child, base)
}

async fn create_run(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/runs"))
        .json(&json!({ "workspace_id": "default", "configuration_id": "ticks", "document_ids": [] }))
        .send()
        .await
        .expect("create a run");
    assert_eq!(response.status(), StatusCode::CREATED);
    let run: Value = response.json().await.expect("json");
    run["id"].as_str().expect("id").to_owned()
}

/// A run's stored log: each line of its `events.ndjson` as (event id, bytes).
fn stored_log(data: &Path, id: &str) -> Vec<Stored> {
    let text = std::fs::read(data.join(format!("workspaces/default/runs/{id}/logs/events.ndjson"))).expect("log");
    text.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let event: Value = serde_json::from_slice(line).expect("an event");
            let msg_id = event["event_id"].as_str().expect("event id").to_owned();
            Stored { msg_id, payload: bytes::Bytes::copy_from_slice(line) }
        })
        .collect()
}

fn is_completed(message: &Stored) -> bool {
    serde_json::from_slice::<Value>(&message.payload).is_ok_and(|event| event["type"] == "run.completed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_mid_run_the_stream_holds_exactly_every_runs_log() {
    let Some(url) = test_util::url() else { return };
    let options = test_util::unique_options();
    let (stream, prefix) = (options.stream.clone(), options.subject_prefix.clone());
    let (data, configs) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    // About 600 lines over some seconds: still printing when the server is killed.
    let script =
        r#"i=0; while [ $i -lt 600 ]; do echo "tick $i"; i=$((i+1)); [ $((i % 20)) -eq 0 ] && sleep 0.1; done"#;
    let configuration =
        json!({ "id": "ticks", "version": "1", "engine": "process", "command": ["sh", "-c", script], "env": {} });
    std::fs::write(configs.path().join("ticks.json"), configuration.to_string()).expect("configuration");
    let http = reqwest::Client::new();

    let (mut child, base) = start(data.path(), configs.path(), &url, &stream, &prefix).await;
    let runs = [create_run(&http, &base).await, create_run(&http, &base).await];
    let deadline = Instant::now() + PATIENCE;
    while test_util::message_count(&url, &stream).await < 100 {
        assert!(Instant::now() < deadline, "the exporter publishes within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL the server");
    child.wait().expect("reap the server");
    let published_before = test_util::message_count(&url, &stream).await;

    // The next start finishes the runs (`orchestrator_lost`) and exports the rest of their logs
    // from the durable cursors.
    let (child, _base) = start(data.path(), configs.path(), &url, &stream, &prefix).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let published = test_util::read_stream(&url, &stream).await;
        let done = runs.iter().all(|id| {
            let subject = format!("{prefix}.default.runs.{id}.events");
            published.get(&subject).and_then(|messages| messages.last()).is_some_and(is_completed)
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "each run's run.completed reaches the stream within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(stopped.expect("kill").success());
    assert!(wait(child).await.success());

    let published = test_util::read_stream(&url, &stream).await;
    assert_eq!(published.len(), runs.len(), "one subject per run: {:?}", published.keys());
    for id in &runs {
        let log = stored_log(data.path(), id);
        let subject = format!("{prefix}.default.runs.{id}.events");
        let messages = &published[&subject];
        assert!(log.len() > 3, "{id}: the run's log");
        assert_eq!(messages.len(), log.len(), "{id}: no duplicate, nothing missing");
        assert!(messages == &log, "{id}: the stream holds the stored log, bytes and ids, in order");
    }
    let total: usize = published.values().map(Vec::len).sum();
    assert!(
        published_before > 0 && (published_before as usize) < total,
        "killed mid-export: {published_before} of {total}"
    );
    test_util::delete_stream(&url, &stream).await;
}
