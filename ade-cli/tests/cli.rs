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
/// (2 lines, a gate no permit opens, 3 lines), and the `extract` engine: its base URL and its
/// shutdown.
async fn start_server(dir: &Path) -> (String, ade_server::ShutdownHandle) {
    let gate = Arc::new(Semaphore::new(0));
    let builder = Runtime::builder();
    // The `extract` engine, for configurations put over HTTP (`run --config FILE`).
    #[cfg(feature = "extract")]
    let builder = ade_extract::register(builder);
    let runtime = builder
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

/// `ade` started as a child process whose stdout and stderr are read line by line as they come.
struct Spawned {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Everything read so far, `out: ` / `err: ` before each line.
    seen: String,
}

impl Spawned {
    fn start(args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ade"))
            .args(args)
            .env_remove("ADE_SERVER")
            .env_remove("ADE_TOKEN")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start ade");
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (tag, reader) in [
            ("out", Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ("err", Box::new(stderr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ] {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(reader).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if sender.send(format!("{tag}: {line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Self { child, lines, seen: String::new() }
    }

    /// Reads lines until one contains `needle`; fails the test after [`PATIENCE`].
    async fn wait_for(&mut self, needle: &str) {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push_str(&line);
                self.seen.push('\n');
                if line.contains(needle) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "no line with {needle:?} in:\n{}", self.seen);
    }

    fn interrupt(&self) {
        let pid = self.child.id().expect("a running child");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    }

    /// Waits for the exit; its code and everything it printed.
    async fn finish(mut self) -> (Option<i32>, String) {
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await.expect("ade exits").expect("wait");
        // Both pipes are closed once the process is gone: read what is left.
        while let Ok(Some(line)) = tokio::time::timeout(PATIENCE, self.lines.recv()).await {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        (status.code(), self.seen)
    }
}

/// A configuration directory with `slow` (a process engine that says `started` on stderr, then
/// sleeps; SIGTERM ends it) and `stubborn` (the same, but it ignores SIGTERM, so a cancel takes
/// the runtime's grace period and a SIGKILL).
fn slow_configurations(dir: &Path) -> PathBuf {
    let configs = dir.join("config");
    std::fs::create_dir_all(&configs).expect("configuration directory");
    let slow = serde_json::json!({
        "id": "slow", "version": "1", "engine": "process",
        "command": ["sh", "-c", "echo started >&2; exec sleep 30"],
    });
    let stubborn = serde_json::json!({
        "id": "stubborn", "version": "1", "engine": "process",
        "command": ["sh", "-c", "trap '' TERM; echo started >&2; exec sleep 30"],
    });
    std::fs::write(configs.join("slow.json"), slow.to_string()).expect("write slow.json");
    std::fs::write(configs.join("stubborn.json"), stubborn.to_string()).expect("write stubborn.json");
    configs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_an_embedded_run_and_waits_for_its_end() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let configs = slow_configurations(dir.path()).display().to_string();
    let data = dir.path().join("data").display().to_string();
    let input = examples().join("data/hello.csv").display().to_string();
    let mut child = Spawned::start(&["--data-dir", &data, "--config-dir", &configs, "run", &input, "--config", "slow"]);
    // The engine's stderr line is shown live (a warning): the run is going.
    child.wait_for("warn: started").await;
    child.interrupt();
    child.wait_for("cancelling run").await;
    let (code, seen) = child.finish().await;
    assert_eq!(code, Some(1), "{seen}");
    assert!(seen.contains("run: completed (cancelled)"), "{seen}");
    assert!(seen.contains(": cancelled"), "{seen}");

    // The run is over in the log too: its last event is run.completed{cancelled}.
    let run = seen
        .lines()
        .find_map(|l| l.strip_prefix("out: run ").and_then(|r| r.strip_suffix(" created")))
        .expect("the run id")
        .to_owned();
    let out = ade(strings(&["--data-dir", &data, "events", &run, "--ndjson"])).await;
    let last = text(&out.stdout).lines().last().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"));
    let last = last.expect("events");
    assert_eq!(last["type"], "run.completed");
    assert_eq!(last["payload"]["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_leaves_an_embedded_run_at_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let configs = slow_configurations(dir.path()).display().to_string();
    let data = dir.path().join("data").display().to_string();
    let input = examples().join("data/hello.csv").display().to_string();
    let mut child =
        Spawned::start(&["--data-dir", &data, "--config-dir", &configs, "run", &input, "--config", "stubborn"]);
    child.wait_for("warn: started").await;
    child.interrupt();
    // The engine ignores SIGTERM: the run stays cancelling for the runtime's grace (10 s).
    child.wait_for("cancelling run").await;
    child.interrupt();
    let (code, seen) = child.finish().await;
    assert_eq!(code, Some(130), "{seen}");
    assert!(seen.contains("err: detached: run run_"), "{seen}");
    assert!(!seen.contains("run: completed"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_against_a_server_leaves_the_run_going() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (base, shutdown) = start_server(dir.path()).await;
    let client = Client::new(base.clone()).expect("client");
    let members = examples().join("data/members.csv").display().to_string();
    let mut child = Spawned::start(&["--server", &base, "run", &members, "--config", "gated"]);
    child.wait_for(" created").await;
    child.interrupt();
    let (code, seen) = child.finish().await;
    assert_eq!(code, Some(130), "{seen}");
    let run = seen
        .lines()
        .find_map(|l| l.strip_prefix("out: run ").and_then(|r| r.strip_suffix(" created")))
        .expect("the run id")
        .to_owned();
    assert!(seen.contains(&format!("err: interrupted: run {run} goes on on the server")), "{seen}");
    assert!(seen.contains(&format!("ade --server {base} events {run} --follow")), "{seen}");
    assert!(seen.contains(&format!("ade --server {base} runs cancel {run}")), "{seen}");
    // Not cancelled: the run is still going (held at its gate).
    let id = run.parse().expect("a run id");
    let status = client.get_run(id).await.expect("the run").status;
    assert!(!status.is_terminal(), "{status:?}");
    client.cancel(id).await.expect("cancel");
    shutdown.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_json_modes_configurations_and_outputs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data").display().to_string();
    let config = examples().join("config").display().to_string();
    let members = examples().join("data/members.csv").display().to_string();
    let hello = examples().join("data/hello.csv").display().to_string();
    let base = ["--data-dir", data.as_str(), "--config-dir", config.as_str()];
    let with = |more: &[&str]| {
        let mut args = strings(&base);
        args.extend(strings(more));
        args
    };

    // --json: stdout is the run's log as NDJSON and nothing else; the human text is on stderr.
    let out = ade(with(&["run", &hello, "--config", "hello", "--json"])).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let events: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("every stdout line is an event")).collect();
    let sequences: Vec<u64> = events.iter().map(|e| e["sequence"].as_u64().expect("sequence")).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.last().map(|e| e["type"].clone()), Some(serde_json::json!("run.completed")));
    assert!(stderr.contains(": succeeded"), "{stderr}");
    // Console lines: warnings always, info only with -v.
    assert!(stderr.contains("  warn: a line on stderr becomes a warning"), "{stderr}");
    assert!(!stderr.contains("hello.csv: 3 lines"), "{stderr}");
    let out = ade(with(&["run", &hello, "--config", "hello", "-v"])).await;
    let stdout = text(&out.stdout);
    assert!(stdout.contains("  hello.csv: 3 lines"), "{stdout}");
    assert!(stdout.contains("  warn: a line on stderr becomes a warning"), "{stdout}");
    let hello_run = run_id_in(&stdout);

    // --mode: the run is created in that mode; validate_only writes no outputs.
    let out = ade(with(&["run", &members, "--config", "members", "--mode", "validate_only"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let validated = run_id_in(&text(&out.stdout));
    let out = ade(with(&["runs", "get", &validated])).await;
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a run");
    assert_eq!(run["mode"], "validate_only");
    let out = ade(with(&["run", &members, "--config", "members", "--mode", "sideways"])).await;
    assert_eq!(out.status.code(), Some(2));

    // runs list --json, one run a page, and --cursor to the next page.
    let out = ade(with(&["runs", "list", "--json", "--limit", "1"])).await;
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a page");
    assert_eq!(first["runs"].as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(first["runs"][0]["id"], validated.as_str());
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let out = ade(with(&["runs", "list", "--json", "--limit", "1", "--cursor", &cursor])).await;
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a page");
    assert_eq!(second["runs"][0]["id"], hello_run.as_str(), "{second}");
    let out = ade(with(&["runs", "list", "--limit", "1"])).await;
    assert!(text(&out.stderr).contains("runs list --cursor "), "{}", text(&out.stderr));

    // configurations list | show | put (kept in the data directory: a later ade knows it).
    let out = ade(with(&["configurations", "list"])).await;
    let listed = text(&out.stdout);
    assert!(listed.contains("members") && listed.contains("hello"), "{listed}");
    let out = ade(with(&["configurations", "show", "members"])).await;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a configuration");
    assert_eq!(shown["engine"], "extract");
    let mut copy = shown.clone();
    copy["id"] = serde_json::json!("members_copy");
    let file = dir.path().join("members_copy.json");
    std::fs::write(&file, copy.to_string()).expect("write");
    let file = file.display().to_string();
    let out = ade(with(&["configurations", "put", &file])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ade(strings(&["--data-dir", &data, "configurations", "list", "--json"])).await;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("configurations");
    let ids: Vec<&str> =
        listed["configurations"].as_array().expect("a list").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["members_copy"], "{listed}");
    let hello_file = examples().join("config/hello.json").display().to_string();
    let out = ade(with(&["configurations", "put", &hello_file])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config-dir"), "{}", text(&out.stderr));

    // run --config FILE: registered for this run, whatever the configuration directory holds.
    let mut other = shown.clone();
    other["id"] = serde_json::json!("members_from_file");
    let file = dir.path().join("members_from_file.json");
    std::fs::write(&file, other.to_string()).expect("write");
    let out = ade(strings(&["--data-dir", &data, "run", &members, "--config", &file.display().to_string()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("configuration members_from_file (version 1) from"), "{stdout}");
    assert!(stdout.contains("tables: 1, rows: 6"), "{stdout}");
    let out = ade(strings(&["--data-dir", &data, "run", &members, "--config", "missing.json"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.json"), "{}", text(&out.stderr));

    // An unknown configuration: the error lists the known ones.
    let out = ade(with(&["run", &members, "--config", "nope"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown configuration nope; known: hello, members, members_copy"),
        "{}",
        text(&out.stderr)
    );

    // outputs: the list, one to a file, one to stdout.
    let out = ade(with(&["outputs", &hello_run])).await;
    assert!(text(&out.stdout).contains("count.txt"), "{}", text(&out.stdout));
    let out = ade(with(&["outputs", &hello_run, "--json"])).await;
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("outputs");
    assert_eq!(outputs["outputs"][0]["name"], "count.txt");
    let out = ade(with(&["outputs", &hello_run, "count.txt"])).await;
    assert_eq!(text(&out.stdout), "total lines: 3\n");
    let target = dir.path().join("count.txt");
    let out = ade(with(&["outputs", &hello_run, "count.txt", "-o", &target.display().to_string()])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&target).expect("the output"), "total lines: 3\n");
    let out = ade(with(&["outputs", &hello_run, "../../x"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
}

/// The run id in `run … created`.
fn run_id_in(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.strip_suffix(" created")))
        .expect("the run id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_server_config_files_and_outputs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (base, shutdown) = start_server(&dir.path().join("server")).await;
    let members = examples().join("data/members.csv").display().to_string();
    let members_file = examples().join("config/members.json").display().to_string();
    let hello_file = examples().join("config/hello.json").display().to_string();

    // run --config FILE puts the (extract) configuration on the server first.
    let out = ade(strings(&["--server", &base, "run", &members, "--config", &members_file, "--json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tables: 1, rows: 6"), "{stderr}");
    let run = run_id_in(&stderr);
    let out = ade(strings(&["--server", &base, "configurations", "list"])).await;
    assert!(text(&out.stdout).contains("members"), "{}", text(&out.stdout));
    // The same file again: nothing to change, no error.
    let out = ade(strings(&["--server", &base, "configurations", "put", &members_file])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A process configuration cannot be put over HTTP: the error says where it goes.
    let out = ade(strings(&["--server", &base, "run", &members, "--config", &hello_file])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config-dir"), "{}", text(&out.stderr));

    // outputs over HTTP: listed, downloaded byte for byte.
    let out = ade(strings(&["--server", &base, "outputs", &run])).await;
    assert!(text(&out.stdout).contains("normalized.xlsx"), "{}", text(&out.stdout));
    let target = dir.path().join("normalized.xlsx");
    let out =
        ade(strings(&["--server", &base, "outputs", &run, "normalized.xlsx", "-o", &target.display().to_string()]))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stored = dir.path().join(format!("server/workspaces/default/runs/{run}/outputs/normalized.xlsx"));
    assert_eq!(std::fs::read(&target).expect("downloaded"), std::fs::read(&stored).expect("stored"));

    // Unknown configuration: the known ones are listed.
    let out = ade(strings(&["--server", &base, "run", &members, "--config", "nope"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("known: gated, members, quick"), "{}", text(&out.stderr));
    shutdown.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_fix() {
    // A data directory another runtime holds.
    let dir = tempfile::tempdir().expect("temporary directory");
    let runtime = Runtime::builder().data_dir(dir.path()).build().await.expect("runtime");
    let data = dir.path().display().to_string();
    let out = ade(strings(&["--data-dir", &data, "runs", "list"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains(&format!("data directory {data} is in use (a server?): pass --server URL or --data-dir DIR")),
        "{}",
        text(&out.stderr)
    );
    runtime.shutdown().await;

    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nobody = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let out = ade(strings(&["--server", &nobody, "runs", "list"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("connection refused: is ade-server running at {nobody}?")),
        "{}",
        text(&out.stderr)
    );

    // The exit codes are in --help.
    let out = ade(strings(&["--help"])).await;
    let help = text(&out.stdout);
    assert!(help.contains("Exit codes:") && help.contains("130"), "{help}");
}

/// A tmux server of its own (`-L`), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// `None` (after saying why) when tmux is not installed, unless `ADE_REQUIRE_TMUX` is set.
    fn start(name: &str, command: &str) -> Option<Self> {
        let installed = std::process::Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                std::env::var_os("ADE_REQUIRE_TMUX").is_none(),
                "ADE_REQUIRE_TMUX is set but tmux is not installed"
            );
            println!("skipped: tmux is not installed (a test of ade's screens in a terminal)");
            return None;
        }
        let tmux = Self { socket: format!("ade-cli-{name}-{}", std::process::id()) };
        tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "ade", "-x", "120", "-y", "40", "sh"]);
        tmux.run(&["send-keys", "-t", "ade", command, "Enter"]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", self.socket.as_str()])
            .args(args)
            .env_remove("ADE_SERVER")
            .env_remove("ADE_TOKEN")
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "ade"])
    }

    /// Polls the screen until `done` holds; fails the test after [`PATIENCE`].
    async fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what} never showed; the screen:\n{screen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").args(["-L", self.socket.as_str(), "kill-server"]).output();
    }
}

/// Whether the shell has written its `exit=N` line to `path`.
fn written(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.ends_with('\n'))
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_terminal_the_run_shows_its_summary() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let status = dir.path().join("status");
    let command = format!(
        "{} --data-dir {} --config-dir {} run {} --config members; echo \"exit=$?\" > {}",
        quoted(env!("CARGO_BIN_EXE_ade")),
        quoted(&dir.path().join("data").display().to_string()),
        quoted(&examples().join("config").display().to_string()),
        quoted(&examples().join("data/members.csv").display().to_string()),
        quoted(&status.display().to_string()),
    );
    let Some(tmux) = Tmux::start("summary", &command) else { return };
    let screen = tmux.until("the summary", |screen| screen.contains("outputs:") && written(&status)).await;
    assert_eq!(std::fs::read_to_string(&status).expect("the status").trim(), "exit=0", "{screen}");
    assert!(screen.contains(": succeeded"), "{screen}");
    assert!(screen.contains("tables: 1, rows: 6"), "{screen}");
    assert!(screen.contains("table 1: members.csv / members — 6 rows, 5 fields mapped"), "{screen}");
    assert!(screen.contains("normalized.xlsx"), "{screen}");
    // On a terminal the status line is a spinner, cleared at the end: no trace of it remains.
    assert!(!screen.contains("issues so far"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_terminal_ctrl_c_cancels_the_run() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let configs = slow_configurations(dir.path());
    let status = dir.path().join("status");
    let command = format!(
        "{} --data-dir {} --config-dir {} run {} --config slow; echo \"exit=$?\" > {}",
        quoted(env!("CARGO_BIN_EXE_ade")),
        quoted(&dir.path().join("data").display().to_string()),
        quoted(&configs.display().to_string()),
        quoted(&examples().join("data/hello.csv").display().to_string()),
        quoted(&status.display().to_string()),
    );
    let Some(tmux) = Tmux::start("ctrl-c", &command) else { return };
    tmux.until("the engine's first line", |screen| screen.contains("warn: started")).await;
    // The terminal's own Ctrl-C: SIGINT to the foreground process group.
    tmux.run(&["send-keys", "-t", "ade", "C-c"]);
    // The screen is read until it shows the end: tmux may draw the last lines after the shell
    // has written the exit status.
    let screen = tmux.until("the cancelled run's summary", |s| s.contains(": cancelled") && written(&status)).await;
    assert_eq!(std::fs::read_to_string(&status).expect("the status").trim(), "exit=1", "{screen}");
    assert!(screen.contains("cancelling run run_"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_counts_come_from_the_summary_not_the_capped_events() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // 12,000 members, each with a bad e-mail (an error) and an unknown tier (a warning): 24,000
    // issues, over the 10,000 `run.validation.issue` events a run may publish (SPEC §9).
    let mut csv = String::from("Member #,Name,E-mail,Joined,Tier\n");
    for i in 1..=12_000 {
        csv.push_str(&format!("{i},Name {i},not-an-email-{i},2020-01-01,silver\n"));
    }
    let input = dir.path().join("big.csv");
    std::fs::write(&input, csv).expect("write the input");
    let data = dir.path().join("data").display().to_string();
    let config = examples().join("config").display().to_string();
    let base = ["--data-dir", data.as_str(), "--config-dir", config.as_str()];
    let mut args = strings(&base);
    args.extend(strings(&["run", &input.display().to_string(), "--config", "members"]));
    let out = ade(args).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("tables: 1, rows: 12,000"), "{stdout}");
    assert!(stdout.contains("  issues: 24,000\n    warning: 12,000\n    error: 12,000"), "{stdout}");
    assert!(stdout.contains("issues so far 24,000"), "{stdout}");
    // The engine's warning about the cap is shown as it comes.
    assert!(stdout.contains("  warn: 14000 more validation issues were counted but not published"), "{stdout}");

    let mut args = strings(&base);
    args.extend(strings(&["events", &run_id_in(&stdout), "--ndjson"]));
    let out = ade(args).await;
    let published = text(&out.stdout).lines().filter(|l| l.contains(r#""type":"run.validation.issue""#)).count();
    assert_eq!(published, 10_000);
}

/// `ade webhooks …` against a server: create (a private target refused), list, deliveries,
/// delete; embedded, a message naming `--server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_managed_against_a_server() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (base, shutdown) = start_server(dir.path()).await;
    let server = ["--server", base.as_str()];
    let with = |rest: &[&str]| strings(&[&server[..], rest].concat());

    let refused = ade(with(&["webhooks", "create", "http://127.0.0.1:9/hook"])).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("private"), "{}", text(&refused.stderr));

    let created = ade(with(&["webhooks", "create", "https://hooks.example.com/ade", "--event", "run.completed"])).await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let webhook: serde_json::Value = serde_json::from_slice(&created.stdout).expect("the webhook as JSON");
    assert!(webhook["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{webhook}");
    assert_eq!(webhook["event_types"], serde_json::json!(["run.completed"]));
    let id = webhook["id"].as_str().expect("id").to_owned();

    let listed = ade(with(&["webhooks", "list"])).await;
    let listing = text(&listed.stdout);
    assert!(listing.contains(&id) && listing.contains("enabled") && listing.contains("run.completed"), "{listing}");
    let deliveries = ade(with(&["webhooks", "deliveries", &id])).await;
    assert!(deliveries.status.success());
    assert!(text(&deliveries.stderr).contains("no deliveries yet"));

    let deleted = ade(with(&["webhooks", "delete", &id])).await;
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let gone = ade(with(&["webhooks", "show", &id])).await;
    assert_eq!(gone.status.code(), Some(2));
    assert!(text(&gone.stderr).contains("404"), "{}", text(&gone.stderr));
    let bad = ade(with(&["webhooks", "show", "nope"])).await;
    assert!(text(&bad.stderr).contains("not a webhook id"), "{}", text(&bad.stderr));

    let data = dir.path().join("embedded").display().to_string();
    let embedded = ade(strings(&["--data-dir", &data, "webhooks", "list"])).await;
    assert_eq!(embedded.status.code(), Some(2));
    assert!(text(&embedded.stderr).contains("--server"), "{}", text(&embedded.stderr));
    shutdown.shutdown();
}
