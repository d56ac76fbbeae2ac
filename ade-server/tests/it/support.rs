//! A real server on 127.0.0.1:0 over a real runtime, and helpers to talk to it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ade_core::Runtime;
use ade_core::test_util::{GatedEngine, gated_configuration};
use ade_server::{ServeError, Server, ServerConfig, ShutdownHandle, Tokens};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Longest any single wait in a test may take before the test fails instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The process-wide Prometheus recorder (a recorder can be installed once per process).
pub(crate) fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().expect("install the recorder")
        })
        .clone()
}

/// Tokens of the auth tests: `admin` may use every workspace, `acme` only `acme`, `two` both
/// `acme` and `beta`.
pub(crate) fn test_tokens() -> Tokens {
    Tokens::from_json(
        r#"{"tokens": [
            {"name": "admin", "token": "admin-secret", "workspaces": ["*"]},
            {"name": "acme-token", "token": "acme-secret", "workspaces": ["acme"]},
            {"name": "two", "token": "two-secret", "workspaces": ["acme", "beta"]}
        ]}"#,
    )
    .expect("valid tokens")
}

/// The runtime of every test server, on a fresh data directory: the example configurations,
/// `quick` (a gated-engine run that needs no permit) and `gated` (one that waits for `gate`).
async fn test_runtime() -> (Runtime, tempfile::TempDir, Arc<Semaphore>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let gate = Arc::new(Semaphore::new(0));
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let runtime = ade_extract::register(Runtime::builder())
        .data_dir(dir.path())
        .workers(4)
        .configurations_dir(examples)
        .configuration(gated_configuration("quick", 3, false, 2))
        .configuration(gated_configuration("gated", 2, true, 3))
        .engine("gated", Arc::new(GatedEngine { gate: gate.clone() }), None)
        .build()
        .await
        .expect("runtime");
    (runtime, dir, gate)
}

/// The router over the test runtime, called in-process (no socket, no port): for the tests that
/// look only at statuses, headers and bodies. Streams and connection behaviour need a
/// [`TestServer`].
pub(crate) struct InProcess {
    router: axum::Router,
    /// The hosted runtime.
    pub(crate) runtime: Runtime,
    /// The data directory.
    pub(crate) dir: tempfile::TempDir,
}

impl InProcess {
    /// The router with default settings.
    pub(crate) async fn start() -> Self {
        let (runtime, dir, _gate) = test_runtime().await;
        let webhooks = ade_webhooks::Webhooks::start(&runtime, ade_webhooks::WebhookOptions::default()).await;
        let state =
            ade_server::AppState::new(runtime.clone(), ServerConfig::new()).with_webhooks(webhooks.expect("webhooks"));
        let router = ade_server::router(state);
        Self { router, runtime, dir }
    }

    /// `method path`, with a JSON body when given; the whole answer.
    pub(crate) async fn send(&self, method: Method, path: &str, json: Option<&Value>) -> Answer {
        use tower::ServiceExt as _;
        let request = axum::http::Request::builder().method(method).uri(path);
        let request = match json {
            Some(body) => request
                .header("content-type", "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(body).expect("json"))),
            None => request.body(axum::body::Body::empty()),
        };
        let response = self.router.clone().oneshot(request.expect("request")).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        Answer { status: parts.status, headers: parts.headers, body }
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// `GET path` as JSON with status 200.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {path}");
        answer.json()
    }

    /// `PUT path` with a JSON body.
    pub(crate) async fn put_json(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// Creates a run of `configuration` in `workspace`; the run resource.
    pub(crate) async fn create_run(&self, workspace: &str, configuration: &str) -> Value {
        let body = json!({ "workspace_id": workspace, "configuration_id": configuration });
        let answer = self.send(Method::POST, "/runs", Some(&body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "create a run of {configuration}");
        answer.json()
    }
}

/// A whole response: from a socket or from the router in-process.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: bytes::Bytes,
}

impl Answer {
    /// Reads `response` to its end.
    pub(crate) async fn read(response: reqwest::Response) -> Self {
        let (status, headers) = (response.status(), response.headers().clone());
        Self { status, headers, body: response.bytes().await.unwrap_or_default() }
    }

    /// The body as JSON (`null` when it is not).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value, empty when absent.
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// A running server.
pub(crate) struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// A client without a default token.
    pub(crate) http: reqwest::Client,
    /// Permits let gated runs go on.
    pub(crate) gate: Arc<Semaphore>,
    /// The token sent by [`request`](Self::request), if any.
    pub(crate) token: Option<String>,
    /// The hosted runtime.
    pub(crate) runtime: Runtime,
    /// Stops the server.
    pub(crate) shutdown: ShutdownHandle,
    /// The server's task.
    pub(crate) task: Option<JoinHandle<Result<(), ServeError>>>,
    /// The data directory.
    pub(crate) dir: tempfile::TempDir,
}

impl TestServer {
    /// An open server with default settings.
    pub(crate) async fn start() -> Self {
        Self::start_with(ServerConfig::new()).await
    }

    /// A server with `config`.
    pub(crate) async fn start_with(config: ServerConfig) -> Self {
        let (runtime, dir, gate) = test_runtime().await;
        let server =
            Server::bind("127.0.0.1:0".parse().expect("address"), runtime.clone(), config).await.expect("bind");
        let base = format!("http://{}", server.local_addr());
        let shutdown = server.shutdown_handle();
        let task = tokio::spawn(server.run(std::future::pending()));
        let http = reqwest::Client::builder().build().expect("client");
        Self { base, http, gate, token: None, runtime, shutdown, task: Some(task), dir }
    }

    /// The same server, with requests sent with `token`.
    pub(crate) fn with_token(&self, token: &str) -> Client<'_> {
        Client { server: self, token: Some(token.to_owned()) }
    }

    /// Requests without a token.
    pub(crate) fn client(&self) -> Client<'_> {
        Client { server: self, token: self.token.clone() }
    }

    /// Stops the server and waits for it to finish.
    pub(crate) async fn stop(mut self) {
        self.shutdown.shutdown();
        self.gate.close();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(PATIENCE, task).await;
        }
    }
}

/// Requests to a [`TestServer`], with or without a token.
pub(crate) struct Client<'a> {
    server: &'a TestServer,
    token: Option<String>,
}

impl Client<'_> {
    /// A request builder for `path` (which may carry a query).
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.server.http.request(method, format!("{}{path}", self.server.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path).send().await.expect("request")
    }

    /// `GET path` as JSON with status 200.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(Method::POST, path).json(body).send().await.expect("request")
    }

    /// Uploads `bytes` as a raw body named `filename` in `workspace`.
    pub(crate) async fn upload(&self, workspace: &str, filename: &str, bytes: &[u8]) -> Value {
        let response = self
            .request(Method::POST, &format!("/documents?workspace_id={workspace}&filename={filename}"))
            .header("content-type", "text/csv")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }

    /// Creates a run of `configuration` in `workspace`; the run resource.
    pub(crate) async fn create_run(&self, workspace: &str, configuration: &str, documents: &[&str]) -> Value {
        let body = json!({ "workspace_id": workspace, "configuration_id": configuration, "document_ids": documents });
        let response = self.post_json("/runs", &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create a run of {configuration}");
        response.json().await.expect("json")
    }

    /// `GET /runs/{id}/events` as Server-Sent Events.
    pub(crate) async fn sse(&self, run_id: &str) -> reqwest::Response {
        self.request(Method::GET, &format!("/runs/{run_id}/events"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("request")
    }

    /// Follows a run's SSE stream to its end; the frames.
    pub(crate) async fn follow(&self, run_id: &str) -> Vec<Frame> {
        let response = self.sse(run_id).await;
        match response.status() {
            StatusCode::NO_CONTENT => Vec::new(),
            StatusCode::OK => SseReader::new(response).rest().await,
            other => panic!("events of {run_id}: {other}"),
        }
    }

    /// The run's stored log as NDJSON lines (without newlines).
    pub(crate) async fn log(&self, run_id: &str) -> Vec<String> {
        let response = self
            .request(Method::GET, &format!("/runs/{run_id}/events"))
            .header("accept", "application/x-ndjson")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), "application/x-ndjson");
        let text = response.text().await.expect("body");
        assert!(text.is_empty() || text.ends_with('\n'), "NDJSON ends with a newline");
        text.lines().map(str::to_owned).collect()
    }
}

/// The base URL an `ade-server` child announces on the first line of its stdout
/// (`ade-server listening on http://<address>`).
pub(crate) async fn announced_base(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout piped");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(PATIENCE, line).await.expect("it starts").expect("join").expect("read");
    let base = line.trim().rsplit(' ').next().expect("address").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "ade-server did not start: {line:?}");
    base
}

/// A header's value as text ("" when absent).
pub(crate) fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Asserts an RFC 9457 problem with `status`; its `detail`.
pub(crate) async fn problem(response: reqwest::Response, status: StatusCode) -> String {
    problem_in(&Answer::read(response).await, status)
}

/// [`problem`] of a whole answer.
pub(crate) fn problem_in(answer: &Answer, status: StatusCode) -> String {
    let got = answer.status;
    let content_type = answer.header("content-type");
    let body = answer.json();
    assert_eq!(got, status, "status; body {body}");
    assert_eq!(content_type, "application/problem+json", "content type; body {body}");
    assert!(body["type"].as_str().is_some_and(|t| !t.is_empty()), "type in {body}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "title in {body}");
    assert_eq!(body["status"], json!(status.as_u16()), "status in {body}");
    let detail = body["detail"].as_str().unwrap_or_default().to_owned();
    assert!(!detail.is_empty(), "detail in {body}");
    detail
}

/// One SSE frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// `retry: <ms>`.
    Retry(u64),
    /// A comment line (`: keepalive`).
    Comment(String),
    /// An event.
    Event {
        /// `id:`.
        id: String,
        /// `event:`.
        event: String,
        /// `data:`.
        data: String,
    },
}

impl Frame {
    /// The data of an event frame.
    pub(crate) fn data(&self) -> Option<&str> {
        match self {
            Self::Event { data, .. } => Some(data),
            _ => None,
        }
    }
}

/// Reads an SSE response frame by frame.
pub(crate) struct SseReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// Bytes left in the buffer when the body ended (a half-written frame).
    pub(crate) leftover: usize,
}

impl SseReader {
    /// Reads `response`.
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self { response, buffer: Vec::new(), leftover: 0 }
    }

    /// The next frame; `None` when the body ends. Fails the test after [`PATIENCE`].
    pub(crate) async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(raw).expect("utf-8 frame");
                return Some(parse_frame(text.trim_end_matches('\n')));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream must go on or end")
                .expect("the stream must not fail");
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => {
                    self.leftover = self.buffer.len();
                    return None;
                }
            }
        }
    }

    /// Every frame up to the end of the body.
    pub(crate) async fn rest(mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next().await {
            frames.push(frame);
        }
        assert_eq!(self.leftover, 0, "the stream ended inside a frame");
        frames
    }
}

fn parse_frame(text: &str) -> Frame {
    if let Some(retry) = text.strip_prefix("retry: ") {
        return Frame::Retry(retry.parse().expect("retry in ms"));
    }
    if let Some(comment) = text.strip_prefix(':') {
        return Frame::Comment(comment.trim().to_owned());
    }
    let mut id = String::new();
    let mut event = String::new();
    let mut data = String::new();
    for line in text.split('\n') {
        let (name, value) = line.split_once(": ").unwrap_or_else(|| panic!("a field line: {line:?}"));
        match name {
            "id" => id = value.to_owned(),
            "event" => event = value.to_owned(),
            "data" => {
                assert!(data.is_empty(), "one data line per event");
                data = value.to_owned();
            }
            other => panic!("unexpected field {other}"),
        }
    }
    Frame::Event { id, event, data }
}

/// The event data of `frames`, in order.
pub(crate) fn datas(frames: &[Frame]) -> Vec<String> {
    frames.iter().filter_map(Frame::data).map(str::to_owned).collect()
}

/// The `sequence` of an event's JSON.
pub(crate) fn sequence(json: &str) -> u64 {
    serde_json::from_str::<Value>(json).expect("event json")["sequence"].as_u64().expect("sequence")
}

/// The `type` of an event's JSON.
pub(crate) fn event_type(json: &str) -> String {
    serde_json::from_str::<Value>(json).expect("event json")["type"].as_str().expect("type").to_owned()
}

/// A run id from a run resource.
pub(crate) fn id_of(run: &Value) -> String {
    run["id"].as_str().expect("id").to_owned()
}
