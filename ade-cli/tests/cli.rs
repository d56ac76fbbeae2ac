//! The `ade` binary end to end: embedded on the sample data, and against a server.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use ade_client::{Client, ListRuns};
use ade_core::Runtime;
use ade_core::run::RunStatus;
use ade_core::test_util::{GatedEngine, gated_configuration};
use ade_server::{Server, ServerConfig};
use tokio::sync::Semaphore;

/// Longest any single wait in a test may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// A real server on 127.0.0.1 with the configurations `quick` (3 lines, 2 lines) and `gated`
/// (2 lines, a gate no permit opens, 3 lines): its base URL and its shutdown.
async fn start_server(dir: &Path) -> (String, ade_server::ShutdownHandle) {
    let gate = Arc::new(Semaphore::new(0));
    let runtime = Runtime::builder()
        .data_dir(dir)
        .configuration(gated_configuration("quick", 3, false, 2))
        .configuration(gated_configuration("gated", 2, true, 3))
        .engine("gated", Arc::new(GatedEngine { gate }), None)
        .build()
        .await
        .expect("runtime");
    let config = ServerConfig::new().with_shutdown_grace(Duration::from_millis(200));
    let server = Server::bind("127.0.0.1:0".parse().expect("address"), runtime, config).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.run(std::future::pending()));
    (base, shutdown)
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Runs `ade` with `args` off the async workers; its output.
async fn ade(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ade"))
            .args(&args)
            .env_remove("ADE_SERVER")
            .env_remove("ADE_TOKEN")
            .output()
            .expect("run ade")
    })
    .await
    .expect("the ade process")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_run_on_the_sample_data() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().display().to_string();
    let config = examples().join("config").display().to_string();
    let members = examples().join("data/members.csv").display().to_string();
    let base = ["--data-dir", data.as_str(), "--config-dir", config.as_str()];

    let mut args = strings(&base);
    args.extend(strings(&["run", members.as_str(), "--config", "members"]));
    let out = ade(args).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout {stdout}\nstderr {}", text(&out.stderr));
    assert!(stdout.contains(": succeeded"), "{stdout}");
    assert!(stdout.contains("tables: 1, rows: 6"), "{stdout}");
    assert!(stdout.contains("table 1: members.csv"), "{stdout}");
    assert!(stdout.contains("issues so far 2"), "{stdout}");
    assert!(stdout.contains("normalized.xlsx"), "{stdout}");
    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.strip_suffix(" created")))
        .expect("the run id")
        .to_owned();

    let mut args = strings(&base);
    args.extend(strings(&["runs", "list"]));
    let out = ade(args).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&run_id), "{}", text(&out.stdout));

    // The NDJSON of `ade events` is the run's log, in order, ending with run.completed.
    let mut args = strings(&base);
    args.extend(strings(&["events", run_id.as_str(), "--ndjson"]));
    let out = ade(args).await;
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("an event line")).collect();
    let sequences: Vec<u64> = lines.iter().map(|e| e["sequence"].as_u64().expect("sequence")).collect();
    assert_eq!(sequences, (1..=lines.len() as u64).collect::<Vec<_>>());
    assert_eq!(lines.last().map(|e| e["type"].clone()), Some(serde_json::json!("run.completed")));

    let mut args = strings(&base);
    args.extend(strings(&["events", run_id.as_str(), "--follow", "--after", "2"]));
    let out = ade(args).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).lines().count(), lines.len() - 2, "{}", text(&out.stdout));

    // Usage and API errors exit 2.
    let mut args = strings(&base);
    args.extend(strings(&["run", members.as_str(), "--config", "nope"]));
    let out = ade(args).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
    let out = ade(strings(&["--data-dir", data.as_str(), "runs", "get", "not-a-run"])).await;
    assert_eq!(out.status.code(), Some(2));
    let out = ade(strings(&["bogus"])).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_server_exit_codes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (base, shutdown) = start_server(dir.path()).await;
    let client = Client::new(base.clone()).expect("client");
    let members = examples().join("data/members.csv").display().to_string();

    let out = ade(strings(&["--server", base.as_str(), "run", members.as_str(), "--config", "quick"])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout {stdout}\nstderr {}", text(&out.stderr));
    assert!(stdout.contains(": succeeded"), "{stdout}");
    assert!(stdout.contains(&format!("{base}/runs/")), "the outputs' URL in {stdout}");

    // A run that is cancelled exits 1.
    let child_base = base.clone();
    let child =
        tokio::spawn(ade(strings(&["--server", child_base.as_str(), "run", members.as_str(), "--config", "gated"])));
    let gated = tokio::time::timeout(PATIENCE, async {
        loop {
            let page = client.list_runs(&ListRuns::default().status(RunStatus::Running)).await.expect("list");
            if let Some(run) = page.runs.first() {
                return run.id;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the gated run starts");
    client.cancel(gated).await.expect("cancel");
    let out = child.await.expect("the ade process");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout {stdout}\nstderr {}", text(&out.stderr));
    assert!(stdout.contains(": cancelled"), "{stdout}");

    // Unknown run, unreachable server: 2.
    let out = ade(strings(&["--server", base.as_str(), "runs", "get", "run_01JK3HXPQKZ4P6RZ3BET8ESZ1T"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nobody = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let out = ade(strings(&["--server", nobody.as_str(), "runs", "list"])).await;
    assert_eq!(out.status.code(), Some(2));
    shutdown.shutdown();
}
