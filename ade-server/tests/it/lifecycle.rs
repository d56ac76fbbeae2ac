//! The `ade-server` binary stopped with runs executing: killed (SIGKILL), its `process` engines
//! die with it and a lost run's outputs never change; stopped (SIGTERM), it starts no queued run.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::{binary, wait};
use crate::support::{PATIENCE, announced_base};

/// Writes a `process` configuration running `script` with `sh -c`, with `env`.
fn configure(dir: &Path, id: &str, script: &str, env: Value) {
    let configuration =
        json!({ "id": id, "version": "1", "engine": "process", "command": ["sh", "-c", script], "env": env });
    std::fs::write(dir.join(format!("{id}.json")), configuration.to_string()).expect("write the configuration");
}

/// A running binary, its base URL and everything it has logged so far.
struct Started {
    child: Child,
    base: String,
    logs: Arc<Mutex<String>>,
}

impl Started {
    fn logged(&self, text: &str) -> bool {
        self.logs.lock().expect("logs").contains(text)
    }
}

/// Starts the binary over `data` with the configurations of `configs`, one worker, and `args`.
async fn start(data: &Path, configs: &Path, args: &[&str]) -> Started {
    let mut child = binary()
        .env("RUST_LOG", "info,ade_core=debug,tower_http=debug")
        .args(["--bind", "127.0.0.1:0", "--workers", "1", "--data-dir"])
        .arg(data)
        .arg("--config-dir")
        .arg(configs)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let logs = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let collected = logs.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut logs = collected.lock().expect("logs");
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let base = announced_base(&mut child).await;
    Started { child, base, logs }
}

/// Polls `condition` every 20 ms until it holds; fails the test after [`PATIENCE`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process is alive (a zombie is not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

fn run_dir(data: &Path, id: &str) -> PathBuf {
    data.join(format!("workspaces/default/runs/{id}"))
}

/// The event types of a run's log, read from the data directory.
fn log_types(data: &Path, id: &str) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir(data, id).join("logs/events.ndjson")).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|event| event["type"].as_str().map(str::to_owned))
        .collect()
}

async fn create_run(http: &reqwest::Client, base: &str, configuration: &str) -> String {
    let response = http
        .post(format!("{base}/runs"))
        .json(&json!({ "workspace_id": "default", "configuration_id": configuration, "document_ids": [] }))
        .send()
        .await
        .expect("create a run");
    let status = response.status();
    let run: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run["id"].as_str().expect("id").to_owned()
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let response = http.get(url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn engines_die_with_a_killed_server_and_a_lost_runs_outputs_never_change() {
    let (data, configs, marks) =
        (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let pids = marks.path().join("pids");
    // The engine (a shell) starts a writer that appends to an output every 50 ms (for 30 s at
    // most), says who both are, and waits.
    let script = r#"i=0; (while [ $i -lt 600 ]; do echo tick >> "$ADE_OUTPUT_DIR/late.txt"; sleep 0.05; i=$((i+1)); done) &
echo "$$ $!" > "$PIDS.tmp" && mv "$PIDS.tmp" "$PIDS"; wait"#;
    configure(configs.path(), "orphan", script, json!({ "PIDS": pids }));
    let http = reqwest::Client::new();
    let mut server = start(data.path(), configs.path(), &[]).await;
    let id = create_run(&http, &server.base, "orphan").await;
    let late = run_dir(data.path(), &id).join("outputs/late.txt");
    wait_until("the engine and its writer start", || pids.exists() && late.exists()).await;
    let text = std::fs::read_to_string(&pids).expect("pids");
    let [engine, writer]: [i32; 2] = text
        .split_whitespace()
        .map(|pid| pid.parse().expect("a pid"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("two pids");

    server.child.kill().expect("SIGKILL the server");
    server.child.wait().expect("reap the server");
    // The engine gets the parent-death signal: gone without any help from a next start.
    wait_until("the engine dies with its server", || !alive(engine)).await;

    let server = start(data.path(), configs.path(), &[]).await;
    // Recovery killed what the engine had started, and waited for it, before serving.
    assert!(!alive(writer), "the engine's writer {writer} survived the next start");
    let run = get_json(&http, format!("{}/runs/{id}", server.base)).await;
    assert_eq!((&run["status"], &run["failure"]["code"]), (&json!("failed"), &json!("orchestrator_lost")), "{run}");
    let outputs = format!("{}/runs/{id}/outputs", server.base);
    let listed = get_json(&http, outputs.clone()).await;
    let content = std::fs::read(&late).expect("late.txt");
    assert!(!content.is_empty());
    // Five of the writer's periods: had it survived, the output would change meanwhile.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get_json(&http, outputs).await, listed, "the finalized run's outputs changed");
    assert_eq!(std::fs::read(&late).expect("late.txt"), content, "the finalized run's output changed");
    assert_eq!(log_types(data.path(), &id).iter().filter(|t| *t == "run.completed").count(), 1);
    let stopped = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    assert!(stopped.expect("kill").success());
    assert!(wait(server.child).await.success());
}

#[tokio::test]
async fn sigterm_starts_no_queued_run_and_they_run_at_the_next_start() {
    use tokio::io::AsyncWriteExt;

    let (data, configs, marks) =
        (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let gate = marks.path().join("gate");
    // Runs until the gate file exists (30 s at most).
    let gated = r#"i=0; while [ ! -e "$GATE" ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done; echo passed"#;
    configure(configs.path(), "gated", gated, json!({ "GATE": gate }));
    configure(configs.path(), "quick", "echo quick", json!({}));
    let http = reqwest::Client::new();
    let args = ["--shutdown-drain-secs", "60", "--shutdown-grace-secs", "60"];
    let server = start(data.path(), configs.path(), &args).await;
    let executing = create_run(&http, &server.base, "gated").await;
    wait_until("the gated run starts", || log_types(data.path(), &executing).contains(&"run.started".to_owned())).await;
    // The only worker is busy: these stay queued.
    let queued = [create_run(&http, &server.base, "quick").await, create_run(&http, &server.base, "quick").await];

    // An upload that never finishes keeps the server draining its connections.
    let address = server.base.trim_start_matches("http://");
    let mut upload = tokio::net::TcpStream::connect(address).await.expect("connect");
    let head = "POST /documents HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=b\r\n\
                content-length: 100000\r\n\r\n--b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na,b\n";
    upload.write_all(head.as_bytes()).await.expect("send part of an upload");
    wait_until("the upload is being served", || {
        server
            .logs
            .lock()
            .expect("logs")
            .lines()
            .any(|l| l.contains("path=/documents") && l.contains("started processing request"))
    })
    .await;

    let terminated = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    assert!(terminated.expect("kill").success());
    wait_until("the server takes the SIGTERM", || server.logged("SIGTERM: shutting down")).await;
    // The executing run finishes during the shutdown: its worker is free again.
    std::fs::write(&gate, b"").expect("open the gate");
    wait_until("the gated run completes", || log_types(data.path(), &executing).contains(&"run.completed".to_owned()))
        .await;
    wait_until("the worker stops (and no queued run starts)", || {
        for id in &queued {
            let types = log_types(data.path(), id);
            assert_eq!(types, ["run.queued"], "a queued run started during the shutdown");
        }
        server.logged("a worker stopped")
    })
    .await;
    drop(upload);
    assert!(wait(server.child).await.success());
    for id in &queued {
        assert_eq!(log_types(data.path(), id), ["run.queued"], "a queued run started during the shutdown");
    }

    // The next start runs them, once each.
    let server = start(data.path(), configs.path(), &[]).await;
    for id in &queued {
        let url = format!("{}/runs/{id}", server.base);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let run = get_json(&http, url.clone()).await;
            if run["status"] == "succeeded" {
                break;
            }
            assert!(Instant::now() < deadline, "the queued run never ran after the restart: {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let types = log_types(data.path(), id);
        assert_eq!(types.iter().filter(|t| *t == "run.started").count(), 1, "{types:?}");
        assert_eq!(types.iter().filter(|t| *t == "run.queued").count(), 1, "{types:?}");
    }
    let stopped = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    assert!(stopped.expect("kill").success());
    assert!(wait(server.child).await.success());
}
