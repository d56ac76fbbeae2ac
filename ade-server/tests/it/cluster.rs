//! Three `ade-server` processes on one PostgreSQL database (SPEC §6): one system. Each test has
//! its own schema; without `ADE_TEST_PG_URL` they skip (and fail under `ADE_REQUIRE_PG=1`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use ade_postgres::test_util::{self as pg_testing, Schema, fresh_schema};

use crate::support::{Frame, PATIENCE, SseReader, announced_base};

/// How long a lease lasts in these clusters: a dead instance's run ends about this long after.
const LEASE_SECS: &str = "1";

/// One number from the shared database.
async fn query_one(schema: &Schema, sql: &str) -> i64 {
    let pool = schema.connect().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&pool).await.expect("query")
}

/// One `ade-server` process; killed when dropped.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three instances on one schema and one shared data directory, with configurations `quick` (two
/// console lines) and `slow` (400 lines, 10 ms apart, that first writes its server's pid).
struct Cluster {
    instances: Vec<Instance>,
    http: reqwest::Client,
    pids: PathBuf,
    schema: Schema,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(admin_url: &str) -> Self {
        let (_pool, schema) = fresh_schema(admin_url).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (data, config, pids) = (dir.path().join("data"), dir.path().join("config"), dir.path().join("pids"));
        for path in [&data, &config, &pids] {
            std::fs::create_dir_all(path).expect("dir");
        }
        let quick = json!({ "id": "quick", "version": "1", "engine": "process", "command": ["sh", "-c", "echo one; echo two"] });
        // `$PPID` of the engine's shell is the server executing the run.
        let script = format!(
            "echo $PPID > {}/$ADE_RUN_ID; i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line $i; sleep 0.01; done",
            pids.display()
        );
        let slow = json!({ "id": "slow", "version": "1", "engine": "process", "command": ["sh", "-c", script] });
        std::fs::write(config.join("quick.json"), quick.to_string()).expect("write");
        std::fs::write(config.join("slow.json"), slow.to_string()).expect("write");
        let mut instances = Vec::new();
        for name in ["a", "b", "c"] {
            instances
                .push(start_instance(&schema.url(), &data, &config, &dir.path().join(format!("{name}.log"))).await);
        }
        Self { instances, http: reqwest::Client::new(), pids, schema, _dir: dir }
    }

    async fn create(&self, instance: usize, configuration: &str) -> String {
        let response = self
            .http
            .post(format!("{}/runs", self.instances[instance].base))
            .json(&json!({ "configuration_id": configuration, "document_ids": [] }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED);
        let run: Value = response.json().await.expect("json");
        run["id"].as_str().expect("id").to_owned()
    }

    async fn get_run(&self, instance: usize, id: &str) -> Value {
        let response = self.http.get(format!("{}/runs/{id}", self.instances[instance].base)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    /// The SSE stream of a run from `instance`, to its end: the events' data.
    async fn stream(&self, instance: usize, id: &str) -> Vec<Value> {
        self.stream_in_background(instance, id).await.expect("stream")
    }

    /// [`stream`](Self::stream), read by a task of its own (to follow a run while it goes on).
    fn stream_in_background(&self, instance: usize, id: &str) -> tokio::task::JoinHandle<Vec<Value>> {
        let request = self
            .http
            .request(Method::GET, format!("{}/runs/{id}/events", self.instances[instance].base))
            .header("accept", "text/event-stream");
        tokio::spawn(async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), StatusCode::OK);
            let frames = SseReader::new(response).rest().await;
            frames.iter().filter_map(Frame::data).map(|data| serde_json::from_str(data).expect("event json")).collect()
        })
    }

    /// The stored log of a run, as NDJSON from `instance`.
    async fn log(&self, instance: usize, id: &str) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/runs/{id}/events", self.instances[instance].base))
            .header("accept", "application/x-ndjson")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("body");
        text.lines().map(|line| serde_json::from_str(line).expect("event json")).collect()
    }

    /// Waits until the `slow` run `id` writes which server executes it; that server's index.
    async fn executor_of(&self, id: &str) -> usize {
        let file = self.pids.join(id);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(pid) = std::fs::read_to_string(&file).ok().and_then(|text| text.trim().parse::<u32>().ok()) {
                return self.instances.iter().position(|i| i.child.id() == pid).expect("one of the three executes it");
            }
            assert!(tokio::time::Instant::now() < deadline, "the slow run never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn start_instance(database_url: &str, data: &Path, config: &Path, log: &Path) -> Instance {
    let log = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ade-server"))
        .args(["--bind", "127.0.0.1:0", "--workers", "2", "--lease-secs", LEASE_SECS, "--database-url", database_url])
        .arg("--data-dir")
        .arg(data)
        .arg("--config-dir")
        .arg(config)
        .env_remove("ADE_TOKENS")
        .env_remove("ADE_TOKENS_FILE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start ade-server");
    let base = announced_base(&mut child).await;
    Instance { child, base }
}

/// Sequences 1..=n, exactly one `run.completed`, last.
fn assert_contiguous_and_terminal(events: &[Value]) {
    let sequences: Vec<u64> = events.iter().map(|e| e["sequence"].as_u64().expect("sequence")).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>(), "contiguous from 1, no duplicate");
    let completed = events.iter().filter(|e| e["type"] == "run.completed").count();
    assert_eq!(completed, 1, "exactly one run.completed");
    assert_eq!(events.last().map(|e| &e["type"]), Some(&json!("run.completed")), "run.completed is last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_created_on_a_runs_once_and_streams_from_c_as_logged() {
    let Some(url) = pg_testing::url() else { return };
    let cluster = Cluster::start(&url).await;
    let id = cluster.create(0, "slow").await;
    let executor = cluster.executor_of(&id).await;
    // Streamed live (the run is still going) from each instance, including ones not executing it.
    let streams: Vec<_> = (0..3).map(|i| cluster.stream_in_background(i, &id)).collect();
    let mut streamed = Vec::new();
    for stream in streams {
        streamed.push(stream.await.expect("stream"));
    }
    let log = cluster.log(2, &id).await;
    assert_contiguous_and_terminal(&log);
    assert_eq!(log.iter().filter(|e| e["type"] == "run.started").count(), 1, "executed once");
    assert!(log.iter().filter(|e| e["type"] == "console.line").count() >= 400);
    for (i, events) in streamed.iter().enumerate() {
        assert_eq!(events, &log, "instance {i}'s stream (executor: {executor}) is the log");
    }
    let run = cluster.get_run(1, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_executing_instance_ends_its_run_once_within_the_lease() {
    let Some(url) = pg_testing::url() else { return };
    let mut cluster = Cluster::start(&url).await;
    let id = cluster.create(0, "slow").await;
    let executor = cluster.executor_of(&id).await;
    let watcher = (executor + 1) % 3;
    let stream = cluster.stream_in_background(watcher, &id);
    // Let it write a while, then kill -9 the instance executing it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while cluster.get_run(watcher, &id).await["last_sequence"].as_u64().unwrap_or(0) < 50 {
        assert!(tokio::time::Instant::now() < deadline, "the run makes no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead = cluster.instances.remove(executor);
    let killed_at = tokio::time::Instant::now();
    drop(dead); // SIGKILL, and reaped
    let streamed = tokio::time::timeout(PATIENCE, stream).await.expect("the watcher's stream ends").expect("stream");
    let ended_after = killed_at.elapsed();
    let log = cluster.log(0, &id).await;
    assert_contiguous_and_terminal(&log);
    assert_eq!(streamed, log, "the watcher's stream is the log, without gap or duplicate");
    let completed = log.last().expect("events");
    assert_eq!(completed["payload"]["status"], "failed", "{completed}");
    assert_eq!(completed["payload"]["failure"]["code"], "orchestrator_lost", "{completed}");
    // The lease is 1 s; the survivors look for expired leases every quarter of it.
    assert!(ended_after < Duration::from_secs(10), "ended {ended_after:?} after the kill");
    let run = cluster.get_run(1, &id).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["last_sequence"].as_u64(), Some(log.len() as u64));
    assert_eq!(
        query_one(&cluster.schema, &format!("SELECT count(*) FROM ade_events WHERE run_id = '{id}'")).await,
        log.len() as i64,
        "nothing stored beyond the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_runs_across_three_instances_all_complete_exactly_once() {
    let Some(url) = pg_testing::url() else { return };
    let cluster = Cluster::start(&url).await;
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(cluster.create(i % 3, "quick").await);
    }
    for (i, id) in ids.iter().enumerate() {
        let events = cluster.stream(i % 3, id).await;
        assert_contiguous_and_terminal(&events);
        assert_eq!(events.iter().filter(|e| e["type"] == "run.started").count(), 1, "{id} executed once");
        assert_eq!(events.last().map(|e| &e["payload"]["status"]), Some(&json!("succeeded")), "{id}");
    }
    assert_eq!(
        query_one(&cluster.schema, "SELECT count(*) FROM ade_runs WHERE status = 'succeeded'").await,
        200,
        "every run finished once"
    );
    assert_eq!(query_one(&cluster.schema, "SELECT count(*) FROM ade_events WHERE terminal").await, 200);
}
