//! A real server on 127.0.0.1:0, a real headless Chromium driven over WebDriver (chromedriver on
//! a free port), and a polling helper: wait for a condition, never for a fixed time.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ade_core::Runtime;
use ade_core::config::Configuration;
use ade_server::{AppState, Server, ServerConfig, Tokens};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest any one wait may take before the test fails instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);
/// How often a condition is polled.
pub(crate) const POLL: Duration = Duration::from_millis(75);

/// The page's console cap (`CONSOLE_CAP` in viewer.js).
pub(crate) const CONSOLE_CAP: usize = 2000;

/// Where chromedriver and Chromium are (Debian's packages), unless `ADE_CHROMEDRIVER` and
/// `ADE_CHROMIUM` say otherwise.
fn chromedriver() -> PathBuf {
    std::env::var_os("ADE_CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

fn chromium() -> PathBuf {
    std::env::var_os("ADE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// One browser at a time: two Chromiums on a small machine would make the timing checks noisy.
static BROWSER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether the browser tests can run here. When they cannot: a line on stderr (written past
/// libtest's capture, so `cargo test` shows it) and `false`, or a failure when
/// `ADE_REQUIRE_BROWSER=1` (CI), so that they are never skipped silently there.
pub(crate) fn browser_available() -> bool {
    let missing: Vec<String> =
        [chromedriver(), chromium()].into_iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("ADE_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "ADE_REQUIRE_BROWSER=1 but {} missing: install the Debian packages chromium and chromium-driver",
        missing.join(" and ")
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"skipped: chromium/chromedriver not installed (apt-get install chromium chromium-driver)\n",
    );
    false
}

/// Polls `probe` until it yields `Some`, every [`POLL`], for at most [`PATIENCE`]; then fails
/// the test with `what` and the last thing `probe` saw.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(Instant::now() < deadline, "gave up waiting for {what} after {PATIENCE:?}; last seen: {last}");
        tokio::time::sleep(POLL).await;
    }
}

/// The directory for test artifacts: `<target>/viewer`.
pub(crate) fn artifacts_dir() -> PathBuf {
    // Cargo resolves a relative CARGO_TARGET_DIR against the workspace, not a test's directory.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), |dir| workspace.join(dir));
    let dir = target.join("viewer");
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// A path of the repository.
pub(crate) fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative).canonicalize().expect("a repository file")
}

/// Headless Chromium under a chromedriver of its own; both are killed when this is dropped
/// (by a failing test) or closed.
pub(crate) struct Browser {
    /// The WebDriver session.
    pub(crate) client: Client,
    driver: DriverGuard,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session (waits for its turn first).
    pub(crate) async fn start() -> Self {
        let turn = BROWSER_LOCK.lock().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = std::os::unix::process::CommandExt::process_group(
            Command::new(chromedriver()).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()),
            0,
        )
        .spawn()
        .expect("start chromedriver");
        // The guard from here on: a failure below still ends chromedriver (and its browser).
        let guard = DriverGuard(Some(driver));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for("chromedriver to be ready", || {
            let request = http.get(format!("{url}/status")).send();
            async move {
                let status: Value =
                    request.await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
                if status["value"]["ready"] == json!(true) { Ok(()) } else { Err(status.to_string()) }
            }
        })
        .await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,1800", "--no-first-run", "--no-default-browser-check"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a WebDriver session in headless Chromium");
        Self { client, driver: guard, _turn: turn }
    }

    /// Runs `script` in the page (as a function body: `return …`) and gives its value.
    pub(crate) async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns something truthy; that value.
    pub(crate) async fn wait_script(&self, what: &str, script: &str) -> Value {
        wait_for(what, || async move {
            match self.client.execute(script, Vec::new()).await {
                Ok(value) if truthy(&value) => Ok(value),
                Ok(value) => Err(value.to_string()),
                Err(error) => Err(error.to_string()),
            }
        })
        .await
    }

    /// The page's state, for assertions and failure messages: banner, run, console lines.
    pub(crate) async fn console_lines(&self) -> Vec<String> {
        let lines = self
            .eval("return Array.from(document.querySelectorAll('#console-lines .line'), e => e.textContent);")
            .await;
        serde_json::from_value(lines).expect("console lines")
    }

    /// Saves a PNG of the window to `<target>/viewer/<name>`.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts_dir().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Types into the element matching `css`.
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        element.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        element.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub(crate) async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub(crate) async fn close(self) {
        let Self { client, driver, _turn } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
    }
}

/// Kills chromedriver's process group (chromedriver and the browser it started) when dropped.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A running server with the sample configurations and the viewer tests' `process` ones.
pub(crate) struct TestServer {
    /// `http://127.0.0.1:<port>`, and the prefix it is mounted under if any (`/ade`).
    pub(crate) base: String,
    /// A plain HTTP client.
    pub(crate) http: reqwest::Client,
    /// The token requests of [`get_json`](Self::get_json) etc. carry, if any.
    pub(crate) token: Option<String>,
    /// The server's shutdown signal ([`ade_server::ShutdownHandle`] cancels the same token).
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

/// `admin-secret`, for every workspace.
fn admin_token() -> Tokens {
    Tokens::from_json(r#"{"tokens": [{"name": "admin", "token": "admin-secret", "workspaces": ["*"]}]}"#)
        .expect("valid tokens")
}

/// `slow`: 40 numbered lines, then (once the gate file exists) 160 more with small pauses.
/// `fast`: once the gate file exists, 50,000 numbered lines as fast as it can.
fn process_configuration(id: &str, script: &str, gate: &Path) -> Configuration {
    serde_json::from_value(json!({
        "id": id, "version": "1", "engine": "process", "timeout_s": 300,
        "command": ["sh", "-c", script],
        "env": { "VIEWER_GATE": gate.to_string_lossy() },
    }))
    .expect("a valid configuration")
}

/// Lines the `slow` configuration prints before its gate, and in all.
pub(crate) const SLOW_BEFORE_GATE: usize = 40;
pub(crate) const SLOW_TOTAL: usize = 200;
/// Lines the `fast` configuration prints.
pub(crate) const FAST_TOTAL: usize = 50_000;

const SLOW_SCRIPT: &str = r#"i=1
while [ $i -le 40 ]; do echo "slow line $i"; i=$((i+1)); done
while [ ! -e "$VIEWER_GATE" ]; do sleep 0.05; done
while [ $i -le 200 ]; do echo "slow line $i"; i=$((i+1)); sleep 0.03; done"#;

const FAST_SCRIPT: &str = r#"echo "waiting for the gate"
while [ ! -e "$VIEWER_GATE" ]; do sleep 0.05; done
seq 1 50000 | sed 's/^/fast line /'"#;

impl TestServer {
    /// An open server.
    pub(crate) async fn start() -> Self {
        Self::start_with(ServerConfig::new()).await
    }

    /// A server with tokens: `admin-secret` (every workspace).
    pub(crate) async fn start_with_tokens() -> Self {
        Self::start_with_token(ServerConfig::new()).await
    }

    /// A server with `config` and the token `admin-secret` (every workspace).
    pub(crate) async fn start_with_token(config: ServerConfig) -> Self {
        let mut server = Self::start_with(config.with_tokens(admin_token())).await;
        server.token = Some("admin-secret".to_owned());
        server
    }

    async fn start_with(config: ServerConfig) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let runtime = Self::runtime(&dir).await;
        let server =
            Server::bind("127.0.0.1:0".parse().expect("address"), runtime, config).await.expect("bind the server");
        let base = format!("http://{}", server.local_addr());
        let shutdown = server.state().shutdown_token().clone();
        let task = tokio::spawn(async move {
            server.run(std::future::pending()).await.expect("serve");
        });
        Self { base, http: reqwest::Client::new(), token: None, shutdown, task: Some(task), dir }
    }

    /// The API nested under `prefix` in an application of its own
    /// (`Router::new().nest(prefix, ade_server::router(state))`), as an embedder serves it, with
    /// the token `admin-secret`; [`base`](Self::base) ends with the prefix.
    pub(crate) async fn start_mounted(prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = AppState::new(Self::runtime(&dir).await, ServerConfig::new().with_tokens(admin_token()));
        let shutdown = state.shutdown_token().clone();
        let app = axum::Router::new().nest(prefix, ade_server::router(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}{prefix}", listener.local_addr().expect("address"));
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await.expect("serve");
        });
        Self {
            base,
            http: reqwest::Client::new(),
            token: Some("admin-secret".to_owned()),
            shutdown,
            task: Some(task),
            dir,
        }
    }

    async fn runtime(dir: &tempfile::TempDir) -> Runtime {
        ade_extract::register(Runtime::builder())
            .data_dir(dir.path().join("data"))
            .workers(2)
            .configurations_dir(repo_path("examples/config"))
            .configuration(process_configuration("slow", SLOW_SCRIPT, &dir.path().join("gate-slow")))
            .configuration(process_configuration("fast", FAST_SCRIPT, &dir.path().join("gate-fast")))
            .build()
            .await
            .expect("runtime")
    }

    /// Lets the runs of configuration `id` (`slow` or `fast`) past their gate.
    pub(crate) fn open_gate(&self, id: &str) {
        std::fs::write(self.dir.path().join(format!("gate-{id}")), b"").expect("open the gate");
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `GET path` as JSON (status 200).
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let response = self.request(reqwest::Method::GET, path).send().await.expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    /// Creates a run of `configuration` without documents; its id.
    pub(crate) async fn create_run(&self, configuration: &str) -> String {
        let response = self
            .request(reqwest::Method::POST, "/runs")
            .json(&json!({ "configuration_id": configuration, "document_ids": [] }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::CREATED, "create a run of {configuration}");
        let run: Value = response.json().await.expect("json");
        run["id"].as_str().expect("a run id").to_owned()
    }

    /// The run's whole log (NDJSON), parsed.
    pub(crate) async fn log(&self, run_id: &str) -> Vec<Value> {
        let response = self
            .request(reqwest::Method::GET, &format!("/runs/{run_id}/events"))
            .header("accept", "application/x-ndjson")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let text = response.text().await.expect("body");
        text.lines().map(|line| serde_json::from_str(line).expect("an event")).collect()
    }

    /// Stops the server and waits for it to finish.
    pub(crate) async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(PATIENCE, task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The console messages of a log, in order.
pub(crate) fn console_messages(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter(|e| e["type"] == "console.line")
        .map(|e| e["payload"]["message"].as_str().expect("a message").to_owned())
        .collect()
}
