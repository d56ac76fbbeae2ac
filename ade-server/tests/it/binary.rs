//! The `ade-server` binary: flags and environment, metrics, SIGTERM, the open-server guard.

use std::io::BufReader;
use std::process::{Command, Stdio};

use crate::support::{PATIENCE, announced_base};

pub(crate) fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ade-server"));
    command
        .env_remove("ADE_TOKENS")
        .env_remove("ADE_TOKENS_FILE")
        .env_remove("ADE_CORS_ORIGINS")
        .env_remove("ADE_PUBLIC_URL")
        .env("RUST_LOG", "info");
    command
}

/// Waits for a child in a blocking task, failing the test after [`PATIENCE`].
pub(crate) async fn wait(mut child: std::process::Child) -> std::process::ExitStatus {
    let waited = tokio::task::spawn_blocking(move || child.wait());
    tokio::time::timeout(PATIENCE, waited).await.expect("the binary exits").expect("join").expect("wait")
}

#[tokio::test]
async fn the_binary_serves_with_tokens_from_the_environment_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let mut child = binary()
        // Every request is logged at this level (tower-http's `started processing request`), so
        // the check that the token is not in the logs below can fail.
        .env("RUST_LOG", "trace")
        .args(["--bind", "127.0.0.1:0", "--keepalive-secs", "1", "--data-dir"])
        .arg(dir.path())
        .arg("--config-dir")
        .arg(&examples)
        .env("ADE_TOKENS", r#"[{"name": "ops", "token": "t0k3n-value", "workspaces": ["*"]}]"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let base = announced_base(&mut child).await;
    let http = reqwest::Client::new();
    // A fresh process: every SPEC §11 name is exported before anything happened.
    let metrics = http.get(format!("{base}/metrics")).send().await.expect("request").text().await.expect("text");
    for name in crate::metrics::SPEC_NAMES {
        assert!(metrics.contains(&format!("# TYPE {name} ")), "{name} is not exported:\n{metrics}");
    }
    let configurations = http.get(format!("{base}/configurations")).bearer_auth("t0k3n-value").send().await;
    let configurations: serde_json::Value = configurations.expect("request").json().await.expect("json");
    assert_eq!(configurations["configurations"].as_array().map(Vec::len), Some(2), "{configurations}");
    let anonymous = http.get(format!("{base}/runs")).send().await.expect("request");
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let events = http
        .get(format!("{base}/runs/run_01M8C4DS2PH0887ZPTJ9T85312/events?access_token=t0k3n-value"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("request");
    assert_eq!(events.status(), reqwest::StatusCode::NOT_FOUND);
    let metrics = http.get(format!("{base}/metrics")).send().await.expect("request").text().await.expect("text");
    assert!(metrics.contains("ade_http_requests_total{route=\"/configurations\",status=\"200\"}"), "{metrics}");
    let pid = child.id().to_string();
    let stderr = child.stderr.take().expect("stderr");
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let status = wait(child).await;
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut logs).expect("logs");
    assert!(logs.contains("SIGTERM"), "{logs}");
    let logged = logs.lines().any(|line| {
        line.contains("path=/runs/run_01M8C4DS2PH0887ZPTJ9T85312/events") && line.contains("processing request")
    });
    assert!(logged, "the request with the token is logged, without its query:\n{logs}");
    assert!(!logs.contains("t0k3n-value"), "tokens are never logged:\n{logs}");
}

#[tokio::test]
async fn the_binary_refuses_to_serve_open_on_a_public_address() {
    let dir = tempfile::tempdir().expect("dir");
    let child = binary()
        .args(["--bind", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output());
    let output = tokio::time::timeout(PATIENCE, output).await.expect("it exits").expect("join").expect("output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve"), "{stderr}");
}

/// Starts the binary on a free port over `data_dir` and the sample configuration directory; the
/// child and its base URL.
async fn start(data_dir: &std::path::Path) -> (std::process::Child, String) {
    start_with(data_dir, &[]).await
}

/// [`start`] with more flags.
pub(crate) async fn start_with(data_dir: &std::path::Path, flags: &[&str]) -> (std::process::Child, String) {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let mut child = binary()
        .args(["--bind", "127.0.0.1:0"])
        .args(flags)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config-dir")
        .arg(examples)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let base = announced_base(&mut child).await;
    (child, base)
}

/// Stops the binary with SIGTERM and waits for it.
async fn stop(child: std::process::Child) {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    assert!(wait(child).await.success());
}

#[tokio::test]
async fn a_configuration_put_over_http_survives_a_restart_and_one_of_the_directory_is_refused() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().expect("dir");
    let http = reqwest::Client::new();
    let body = |version: &str| serde_json::json!({ "version": version, "engine": "extract", "fields": [{ "name": "email", "type": "email" }] });
    let (child, base) = start(dir.path()).await;
    let put = http.put(format!("{base}/configurations/contacts")).json(&body("1")).send().await.expect("put");
    assert_eq!(put.status(), StatusCode::CREATED);
    // `members` comes from --config-dir, which wins at the next start: refused, not lost later.
    let put = http.put(format!("{base}/configurations/members")).json(&body("9")).send().await.expect("put");
    let detail = crate::support::problem(put, StatusCode::CONFLICT).await;
    assert!(detail.contains("configuration directory"), "{detail}");
    stop(child).await;

    let (child, base) = start(dir.path()).await;
    let contacts: serde_json::Value =
        http.get(format!("{base}/configurations/contacts")).send().await.expect("get").json().await.expect("json");
    assert_eq!(contacts["version"], "1", "kept across the restart");
    let put = http.put(format!("{base}/configurations/contacts")).json(&body("2")).send().await.expect("put");
    assert_eq!(put.status(), StatusCode::OK, "a configuration put before the restart can be replaced");
    let members: serde_json::Value =
        http.get(format!("{base}/configurations/members")).send().await.expect("get").json().await.expect("json");
    assert_ne!(members["version"], "9");
    stop(child).await;
}

/// Started under a low soft limit on open files (as many systems set one of 1,024), the binary
/// raises it to the hard limit: each subscriber is a socket.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_binary_raises_its_open_files_limit_to_the_hard_limit() {
    let limits = |pid: u32| -> (String, String) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let line = text.lines().find(|l| l.starts_with("Max open files")).expect("a line for open files").to_owned();
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[3].to_owned(), fields[4].to_owned())
    };
    let (_, hard) = limits(std::process::id());
    let dir = tempfile::tempdir().expect("dir");
    // The shell lowers the soft limit, then becomes the binary (same pid).
    let mut child = Command::new("sh")
        .args(["-c", r#"ulimit -Sn 256 && exec "$0" "$@""#, env!("CARGO_BIN_EXE_ade-server")])
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("ADE_TOKENS")
        .env_remove("ADE_TOKENS_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    announced_base(&mut child).await;
    let (soft_now, hard_now) = limits(child.id());
    assert_eq!(hard_now, hard, "the hard limit is left as it was");
    assert_eq!(soft_now, hard, "the soft limit of 256 is raised to the hard limit");
    stop(child).await;
}

/// A SIGTERM sent the moment the binary announces its address stops it gracefully (exit 0), not
/// with the signal's default action: it listens for signals before it announces anything. Ten
/// times, as the window was a few milliseconds.
#[tokio::test]
async fn a_sigterm_right_after_the_announcement_is_a_graceful_stop() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().expect("dir");
        let (child, _) = start(dir.path()).await;
        stop(child).await;
    }
}

/// The `Access-Control-Allow-Origin` of a preflight of `POST /runs` from `origin`.
async fn allowed_origin(http: &reqwest::Client, base: &str, origin: &str) -> String {
    let response = http
        .request(reqwest::Method::OPTIONS, format!("{base}/runs"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("request");
    crate::support::header(&response, "access-control-allow-origin")
}

#[tokio::test]
async fn cors_origins_and_the_public_url_come_from_flags_or_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let http = reqwest::Client::new();
    let spawn =
        |command: &mut Command| command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start the binary");

    // From the environment: a comma-separated list, and the public URL.
    let mut child = spawn(
        binary()
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("ADE_CORS_ORIGINS", "http://localhost:5173, https://app.example.com")
            .env("ADE_PUBLIC_URL", "https://ade.example.com/api/"),
    );
    let base = announced_base(&mut child).await;
    assert_eq!(allowed_origin(&http, &base, "http://localhost:5173").await, "http://localhost:5173");
    assert_eq!(allowed_origin(&http, &base, "https://app.example.com").await, "https://app.example.com");
    assert_eq!(allowed_origin(&http, &base, "http://localhost:3000").await, "");
    let upload = http.post(format!("{base}/documents?filename=a.csv")).body("a\n1\n").send().await.expect("upload");
    let location = crate::support::header(&upload, "location");
    assert!(location.starts_with("https://ade.example.com/api/documents/doc_"), "{location}");
    stop(child).await;

    // From flags, repeated; without them (the default) there is no CORS.
    let mut child = spawn(binary().args(["--bind", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).args([
        "--cors-origin",
        "http://localhost:5173",
        "--cors-origin",
        "http://127.0.0.1:8000",
    ]));
    let base = announced_base(&mut child).await;
    assert_eq!(allowed_origin(&http, &base, "http://127.0.0.1:8000").await, "http://127.0.0.1:8000");
    assert_eq!(allowed_origin(&http, &base, "https://app.example.com").await, "");
    stop(child).await;
    let (child, base) = start(dir.path()).await;
    assert_eq!(allowed_origin(&http, &base, "http://localhost:5173").await, "");
    stop(child).await;

    // What is not an origin or a base URL stops the start, saying why.
    for (args, reason) in [
        (["--cors-origin", "localhost:5173"], "expected scheme://host[:port]"),
        (["--public-url", "ade.example.com/api"], "expected http(s)://host[:port][/path]"),
    ] {
        let child = binary()
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let output = tokio::task::spawn_blocking(move || child.wait_with_output());
        let output = tokio::time::timeout(PATIENCE, output).await.expect("it exits").expect("join").expect("output");
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[1]) && stderr.contains(reason), "{args:?}: {stderr}");
    }
}
