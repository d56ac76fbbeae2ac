//! A real server on 127.0.0.1 over a real runtime with a gated test engine, a cutting proxy and a
//! fake SSE server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ade_client::{Client, Reconnect};
use ade_core::Runtime;
use ade_core::test_util::{GatedEngine, gated_configuration};
use ade_server::{ServeError, Server, ServerConfig, ShutdownHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Longest any single wait in a test may take before the test fails instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A running server.
pub(crate) struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// Permits let gated runs go on.
    pub(crate) gate: Arc<Semaphore>,
    /// The hosted runtime.
    pub(crate) runtime: Runtime,
    shutdown: ShutdownHandle,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// A server on a free port over `dir`.
    pub(crate) async fn start(dir: &Path) -> Self {
        Self::start_on(dir, "127.0.0.1:0".parse().expect("address")).await
    }

    /// A server on `addr` over `dir`. Configurations: `quick` (3 lines, 2 lines), `gated` (2
    /// lines, gate, 3 lines), `long` (20 lines, gate, 200 lines).
    pub(crate) async fn start_on(dir: &Path, addr: SocketAddr) -> Self {
        Self::start_with(dir, addr, ServerConfig::new()).await
    }

    /// A server on a free port over `dir` that only answers the bearer token `secret`.
    pub(crate) async fn start_with_token(dir: &Path) -> Self {
        let tokens =
            ade_server::Tokens::from_json(r#"{"tokens": [{"name": "admin", "token": "secret", "workspaces": ["*"]}]}"#)
                .expect("valid tokens");
        Self::start_with(dir, "127.0.0.1:0".parse().expect("address"), ServerConfig::new().with_tokens(tokens)).await
    }

    async fn start_with(dir: &Path, addr: SocketAddr, config: ServerConfig) -> Self {
        let gate = Arc::new(Semaphore::new(0));
        let runtime = Runtime::builder()
            .data_dir(dir)
            .workers(4)
            .configuration(gated_configuration("quick", 3, false, 2))
            .configuration(gated_configuration("gated", 2, true, 3))
            .configuration(gated_configuration("long", 20, true, 200))
            .engine("gated", Arc::new(GatedEngine { gate: gate.clone() }), None)
            .build()
            .await
            .expect("runtime");
        let mut config = config.with_shutdown_grace(Duration::from_millis(200));
        config.sse_retry = Duration::from_millis(20);
        let server = Server::bind(addr, runtime.clone(), config).await.expect("bind");
        let addr = server.local_addr();
        let shutdown = server.shutdown_handle();
        let task = tokio::spawn(server.run(std::future::pending()));
        Self { base: format!("http://{addr}"), addr, gate, runtime, shutdown, task: Some(task) }
    }

    /// A client of this server with a quick reconnection policy.
    pub(crate) fn client(&self) -> Client {
        quick(Client::new(self.base.clone()).expect("client"))
    }

    /// A client of this server's runtime in-process (no HTTP), or of the server over HTTP.
    pub(crate) fn over(&self, transport: Transport) -> Client {
        match transport {
            Transport::Http => self.client(),
            Transport::Local => Client::local(self.runtime.clone()),
        }
    }

    /// Stops the server (its gate stays as it is) and waits for it to finish.
    pub(crate) async fn stop(mut self) {
        self.shutdown.shutdown();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(PATIENCE, task).await;
        }
    }
}

/// Which transport a test uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    /// HTTP to the server.
    Http,
    /// The runtime in-process.
    Local,
}

/// `client` with short reconnection delays and many attempts.
pub(crate) fn quick(client: Client) -> Client {
    client.with_reconnect(
        Reconnect::new()
            .initial_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(300))
            .max_attempts(40),
    )
}

/// The run's stored log as raw NDJSON lines.
pub(crate) async fn raw_log(base: &str, run_id: &str) -> Vec<String> {
    let response = reqwest::Client::new()
        .get(format!("{base}/runs/{run_id}/events"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().await.expect("body").lines().map(str::to_owned).collect()
}

/// A small deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// A TCP proxy to `upstream` that cuts each connection after a seeded random number of bytes
/// (1..`max_bytes`) from the server; the counter counts the connections it has accepted.
pub(crate) async fn cutting_proxy(
    upstream: SocketAddr,
    seed: u64,
    max_bytes: u64,
) -> (String, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let base = format!("http://{}", listener.local_addr().expect("proxy address"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        let mut rng = Rng::new(seed);
        while let Ok((client, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let budget = 1 + rng.below(max_bytes);
            tokio::spawn(forward(client, upstream, budget));
        }
    });
    (base, connections, task)
}

async fn forward(client: TcpStream, upstream: SocketAddr, mut budget: u64) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    };
    let down = async {
        let mut buffer = vec![0u8; 512];
        while budget > 0 {
            let want = usize::try_from(budget).unwrap_or(usize::MAX).min(buffer.len());
            match server_read.read(&mut buffer[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    budget -= n as u64;
                }
            }
        }
    };
    // Whichever direction ends first cuts the whole connection (both sockets are dropped).
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// The `Last-Event-ID` of each request a fake server received ("" when absent).
pub(crate) type Seen = Arc<std::sync::Mutex<Vec<String>>>;

/// A fake server answering every request with a 200 SSE body of `lines` as events, then closing.
pub(crate) async fn fake_sse(lines: Vec<String>) -> (String, Seen, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake server");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let seen = Seen::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let lines = lines.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).to_lowercase();
                let last_event_id = head
                    .lines()
                    .find_map(|l| l.strip_prefix("last-event-id:"))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default();
                record.lock().expect("not poisoned").push(last_event_id);
                let mut body = String::from("retry: 10\n\n");
                for line in &lines {
                    let sequence = serde_json::from_str::<Value>(line).expect("event")["sequence"].clone();
                    body.push_str(&format!("id: {sequence}\nevent: ade.event\ndata: {line}\n\n"));
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, seen, task)
}
