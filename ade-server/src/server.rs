//! [`Server`]: binds, serves until told to stop, then ends open streams and the runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ade_core::Runtime;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::connection::HeadLimits;
use crate::routes::router;
use crate::state::AppState;

/// Why the server could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Open (no tokens) on an address other than loopback, without
    /// [`allow_open`](ServerConfig::allow_open).
    #[error(
        "refusing to serve {0} without tokens: configure tokens, bind a loopback address, or allow an open server explicitly"
    )]
    OpenNonLoopback(SocketAddr),
    /// Binding or serving failed.
    #[error("{action} {addr}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The stored webhook subscriptions could not be loaded.
    #[error("webhooks: {0}")]
    Webhooks(#[from] ade_webhooks::Error),
}

/// A bound server. [`run`](Self::run) serves until the [`ShutdownHandle`] fires.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
}

/// Stops a [`Server`]: open event streams end between two events, new connections are refused,
/// and the runtime shuts down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    token: CancellationToken,
}

impl ShutdownHandle {
    /// Starts the shutdown.
    pub fn shutdown(&self) {
        self.token.cancel();
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) to serve `runtime`.
    ///
    /// # Errors
    /// [`ServeError::OpenNonLoopback`] when no token is configured, `addr` is not loopback, and
    /// [`allow_open`](ServerConfig::allow_open) is false; [`ServeError::Io`] when binding fails.
    pub async fn bind(addr: SocketAddr, runtime: Runtime, config: ServerConfig) -> Result<Self, ServeError> {
        if config.tokens.is_empty() && !addr.ip().is_loopback() && !config.allow_open {
            return Err(ServeError::OpenNonLoopback(addr));
        }
        let listener =
            TcpListener::bind(addr).await.map_err(|source| ServeError::Io { action: "bind", addr, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Io { action: "bind", addr, source })?;
        let webhooks = ade_webhooks::Webhooks::start(&runtime, config.webhooks.clone()).await?;
        Ok(Self { listener, addr, state: AppState::new(runtime, config).with_webhooks(webhooks) })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (runtime and configuration).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// What stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { token: self.state.shutdown_token().clone() }
    }

    /// Serves until [`ShutdownHandle::shutdown`] or `signal` (whichever comes first); then no run
    /// starts any more (queued runs stay queued for the next start), open streams end, in-flight
    /// requests get [`shutdown_drain`](ServerConfig::shutdown_drain) to complete (connections
    /// still open after it are closed), and the runtime shuts down: executing runs get
    /// [`shutdown_grace`](ServerConfig::shutdown_grace) to finish, after which they are left to
    /// recovery at the next start (their engines die with the process).
    ///
    /// # Errors
    /// None today: a failed accept is logged and retried ([`ServeError::Io`] is kept for serving
    /// failures).
    pub async fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let token = self.state.shutdown_token().clone();
        let on_signal = token.clone();
        let runtime = self.state.runtime().clone();
        let stopping = runtime.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = signal => on_signal.cancel(),
                () = on_signal.cancelled() => {}
            }
            // No run starts from now on, not even while connections drain: queued runs stay
            // queued for the next start.
            stopping.stop_claiming();
        });
        let grace = self.state.config().shutdown_grace;
        let addr = self.addr;
        tracing::info!(%addr, "serving");
        let header_read_timeout = self.state.config().header_read_timeout;
        let limits = HeadLimits::of(self.state.config());
        let drain = self.state.config().shutdown_drain;
        serve(self.listener, router(self.state), token, header_read_timeout, limits, drain).await;
        tracing::info!("HTTP stopped; shutting the runtime down");
        if tokio::time::timeout(grace, runtime.shutdown()).await.is_err() {
            tracing::warn!(?grace, "runs still executing after the grace period are left to recovery");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Accepts connections until `token` is cancelled, serving each with HTTP/1.1; then stops
/// accepting, lets every connection finish its in-flight request (event streams end on the same
/// token) for at most `drain`, closes those still open, and returns.
///
/// The bound matters: hyper polls a response body only while the socket takes data, so a client
/// that stopped reading an event stream (or reads a download slowly) would otherwise keep its
/// connection, and the server, from ever closing.
///
/// HTTP/1.1 only (SSE clients speak it; HTTP/2 was never built in). hyper's HTTP/1 connection
/// itself rather than `axum::serve`, whose per-connection task (a version-detecting `auto`
/// builder, upgrade support, its own shutdown channels) cost ~3 KiB more per connection, which
/// 10,000 idle SSE subscribers notice (BENCHMARKS.md).
async fn serve(
    listener: TcpListener,
    app: Router,
    token: CancellationToken,
    header_read_timeout: Duration,
    limits: HeadLimits,
    drain: Duration,
) {
    let http = crate::connection::builder(header_read_timeout, limits);
    // Every connection's task, to wait for at the end.
    let connections = TaskTracker::new();
    // Cancelled when the drain period is over: every connection still open is dropped (closed).
    let close = CancellationToken::new();
    crate::trim::spawn(token.clone());
    loop {
        let tcp = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        // TCP_NODELAY: an SSE frame is small and must leave now. With Nagle's algorithm a frame
        // waits for the ACK of the previous one, which a client that only reads delays by up to
        // 40 ms (Linux; 200 ms elsewhere): that was the whole cross-instance p99 (BENCHMARKS.md).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        // A clone of the router is one `Arc`: its route table is built once, in `router`.
        let connection =
            crate::connection::serve(&http, limits, TokioIo::new(tcp), TowerToHyperService::new(app.clone()));
        // Child tokens: the task looks at them every time it wakes, and a token of its own locks
        // nothing the other connections share (the shared ones cost every event stream a lock per
        // wake-up).
        let (stop, closed) = (token.child_token(), close.child_token());
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(error) = ended {
                            tracing::trace!(%error, "connection ended with an error");
                        }
                        break;
                    }
                    // Finish the request in flight, then close.
                    () = stop.cancelled(), if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    () = closed.cancelled() => {
                        tracing::debug!("connection closed at the end of the shutdown drain");
                        break;
                    }
                }
            }
            crate::trim::connection_closed();
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait()).await.is_err() {
        tracing::warn!(?drain, "connections still open after the shutdown drain are closed");
        close.cancel();
        connections.wait().await;
    }
}

/// After a failed accept: a connection that failed before it was accepted is the client's
/// business; anything else (out of file descriptors) is logged, and accepting waits a second.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(error.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
    {
        return;
    }
    tracing::error!(%error, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
