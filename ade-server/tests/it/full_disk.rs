//! The real binary with its data directory on a small tmpfs that fills up and is freed (SPEC §5
//! "Write failure"): no run ever succeeds with lost output, the server answers 507 and is not
//! ready while the disk is full, starts on a full disk, and comes back by itself.

use std::process::Stdio;
use std::time::Duration;

use ade_core::store::faults::SmallDisk;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::{binary, wait};
use crate::support::{PATIENCE, SseReader, announced_base, datas, event_type, problem, sequence};

/// A `process` engine that prints 200 lines, waits for a file `go` beside it, then prints 20,000
/// more; and `hello`, which writes an output.
fn configurations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let script = r#"i=0
while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done
while [ ! -e go ]; do sleep 0.02; done
while [ $i -lt 20200 ]; do echo "line $i"; i=$((i+1)); done
"#;
    std::fs::write(dir.path().join("chatty.sh"), script).expect("script");
    let chatty = json!({ "id": "chatty", "version": "1", "engine": "process", "command": ["sh", "chatty.sh"] });
    std::fs::write(dir.path().join("chatty.json"), chatty.to_string()).expect("configuration");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    for file in ["hello.json", "hello_engine.sh"] {
        std::fs::copy(examples.join(file), dir.path().join(file)).expect("copy hello");
    }
    dir
}

struct Server {
    child: std::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(data: &std::path::Path, configurations: &std::path::Path, log: &std::path::Path) -> Self {
        let log = std::fs::File::create(log).expect("log file");
        let mut child = binary()
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--config-dir")
            .arg(configurations)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the binary");
        let base = announced_base(&mut child).await;
        Self { child, base, http: reqwest::Client::new() }
    }

    async fn stop(self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        assert!(wait(self.child).await.success());
    }

    async fn post_run(&self, configuration: &str) -> reqwest::Response {
        let body = json!({ "configuration_id": configuration, "document_ids": [] });
        self.http.post(format!("{}/runs", self.base)).json(&body).send().await.expect("request")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).send().await.expect("request")
    }

    /// `ade_event_store_errors_total`: appends the event store refused.
    async fn store_errors(&self) -> u64 {
        let metrics = self.get("/metrics").await.text().await.expect("metrics");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("ade_event_store_errors_total "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map_or(0, |value| value as u64)
    }

    async fn readyz(&self) -> StatusCode {
        self.get("/readyz").await.status()
    }

    /// Waits (bounded) until `/readyz` answers `status`: it probes the disk at most once a second.
    async fn await_ready(&self, status: StatusCode) {
        tokio::time::timeout(PATIENCE, async {
            while self.readyz().await != status {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("/readyz never answered {status}"));
    }

    async fn sse(&self, run_id: &str) -> SseReader {
        let response = self
            .http
            .get(format!("{}/runs/{run_id}/events", self.base))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        SseReader::new(response)
    }

    /// Creates a run of `hello` and follows it: it must succeed.
    async fn hello_succeeds(&self) {
        let created = self.post_run("hello").await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let run: Value = created.json().await.expect("run");
        let id = run["id"].as_str().expect("id").to_owned();
        let frames = self.sse(&id).await.rest().await;
        let last: Value = serde_json::from_str(datas(&frames).last().expect("events")).expect("json");
        assert_eq!(last["payload"]["status"], "succeeded", "{last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_yields_a_succeeded_run_and_the_server_comes_back_when_space_is_freed() {
    let Some(disk) = SmallDisk::mount_or_skip(24 << 20) else { return };
    let configurations = configurations();
    let logs = tempfile::tempdir().expect("logs");
    let data = disk.path().join("data");
    let server = Server::start(&data, configurations.path(), &logs.path().join("first.log")).await;
    server.hello_succeeds().await;

    // A run is half way when the disk fills up.
    let created = server.post_run("chatty").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let run: Value = created.json().await.expect("run");
    let id = run["id"].as_str().expect("id").to_owned();
    let mut stream = server.sse(&id).await;
    let mut seen = Vec::new();
    while !seen.iter().any(|data: &String| data.contains("\"line 199\"")) {
        let frame = stream.next().await.expect("the run goes on");
        seen.extend(frame.data().map(str::to_owned));
    }
    disk.fill();
    std::fs::write(configurations.path().join("go"), b"").expect("go");

    server.await_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    let detail = problem(server.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(detail.contains("refuses writes"), "{detail}");
    // A client of its own: the server answers before reading the whole body, then closes.
    let upload = reqwest::Client::new()
        .post(format!("{}/documents?filename=a.csv", server.base))
        .body(vec![b'a'; 64 << 10])
        .send()
        .await
        .expect("request");
    let detail = problem(upload, StatusCode::INSUFFICIENT_STORAGE).await;
    assert!(detail.contains("storage is full"), "{detail}");
    problem(server.post_run("hello").await, StatusCode::INSUFFICIENT_STORAGE).await;
    let waiting: Value = server.get(&format!("/runs/{id}")).await.json().await.expect("run");
    assert!(["running", "queued"].contains(&waiting["status"].as_str().unwrap_or_default()), "{waiting}");

    // The engine's lines have hit the full disk (and not only the disk's last free bytes).
    tokio::time::timeout(PATIENCE, async {
        while server.store_errors().await == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("an append fails on the full disk");

    // Space comes back: the run ends, failed, with the lines before the hole and nothing after.
    disk.free();
    let rest = stream.rest().await;
    seen.extend(datas(&rest));
    let sequences: Vec<u64> = seen.iter().map(|d| sequence(d)).collect();
    assert_eq!(sequences, (1..=seen.len() as u64).collect::<Vec<_>>(), "ordered, no gap, no duplicate");
    let types: Vec<String> = seen.iter().map(|d| event_type(d)).collect();
    assert_eq!(types.iter().filter(|t| *t == "run.started").count(), 1, "the engine ran once");
    assert_eq!(&types[types.len() - 2..], ["run.error", "run.completed"], "the end: {:?}", &seen[seen.len() - 3..]);
    let last: Value = serde_json::from_str(seen.last().expect("events")).expect("json");
    assert_eq!(last["payload"]["status"], "failed", "never succeeded with lost output: {last}");
    assert_eq!(last["payload"]["failure"]["code"], "store_error", "{last}");
    let lines: Vec<String> = seen
        .iter()
        .filter(|d| event_type(d) == "console.line")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["payload"]["message"].as_str().map(str::to_owned))
        .filter(|m| m.starts_with("line "))
        .collect();
    assert!(lines.len() < 20200, "lines were lost");
    assert_eq!(lines, (0..lines.len()).map(|i| format!("line {i}")).collect::<Vec<_>>(), "a prefix, no hole");
    let ended: Value = server.get(&format!("/runs/{id}")).await.json().await.expect("run");
    assert_eq!((ended["status"].as_str(), ended["failure"]["code"].as_str()), (Some("failed"), Some("store_error")));
    server.await_ready(StatusCode::OK).await;
    server.hello_succeeds().await;
    server.stop().await;
    let log = std::fs::read_to_string(logs.path().join("first.log")).expect("log");
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert!(errors < 30, "the error log is rate-limited; {errors} ERROR lines:\n{log}");

    // It starts on a full disk: a read-only service until space is freed.
    disk.fill();
    let server = Server::start(&data, configurations.path(), &logs.path().join("second.log")).await;
    let run: Value = server.get(&format!("/runs/{id}")).await.json().await.expect("reads work");
    assert_eq!(run["status"], "failed");
    let replay = server.sse(&id).await.rest().await;
    assert_eq!(datas(&replay), seen, "the log replays whole");
    assert_eq!(server.readyz().await, StatusCode::SERVICE_UNAVAILABLE);
    problem(server.post_run("hello").await, StatusCode::INSUFFICIENT_STORAGE).await;
    disk.free();
    server.await_ready(StatusCode::OK).await;
    server.hello_succeeds().await;
    server.stop().await;
}
