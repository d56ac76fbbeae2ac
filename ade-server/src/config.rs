//! [`ServerConfig`]: limits, keepalive, tokens, CORS, the public URL and the optional metrics handle.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Tokens;
use crate::cors::CorsOrigins;
use crate::mount::PublicUrl;

/// How the server behaves. Build it with [`ServerConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest JSON request body (SPEC §9: 1 MiB).
    pub max_json_body: usize,
    /// Largest uploaded document (SPEC §9: 100 MiB).
    pub max_upload: u64,
    /// Time without data after which an SSE stream gets a `: keepalive` comment (default 15 s).
    pub keepalive: Duration,
    /// The `retry:` an SSE stream starts with (default 2 s).
    pub sse_retry: Duration,
    /// Bearer tokens; empty means the server is open (SPEC §4.2).
    pub tokens: Tokens,
    /// The Prometheus recorder's handle; `GET /metrics` renders it. Libraries do not install
    /// recorders: the binary (or a test) installs one and passes its handle.
    pub metrics: Option<PrometheusHandle>,
    /// Serve without tokens on an address that is not loopback (SPEC §4.2 asks for this to be
    /// explicit).
    pub allow_open: bool,
    /// How long shutdown waits for executing runs before leaving them to recovery (default 30 s).
    pub shutdown_grace: Duration,
    /// How long shutdown lets open connections finish (a download, an upload, an event stream
    /// whose reader stopped reading) before closing them (default 10 s): a client must not keep
    /// the server, and the runs' grace period after it, from ever being reached.
    pub shutdown_drain: Duration,
    /// Default page size of `GET /runs` (at most [`MAX_RUNS_LIMIT`](crate::routes::MAX_RUNS_LIMIT)).
    pub default_runs_limit: usize,
    /// How long a client has to send a request head before its connection is closed (default
    /// 30 s): slow or silent clients cannot hold connections forever.
    pub header_read_timeout: Duration,
    /// How long a request body may go without data, and the grace period of its minimum rate
    /// (default 30 s): a body that pauses this long, or that after this long has arrived slower
    /// than [`min_body_rate`](Self::min_body_rate) on average, is answered 408 and its connection
    /// closed. Response streams (SSE, NDJSON, downloads) are not affected.
    pub body_read_timeout: Duration,
    /// The average rate, in bytes per second, below which a request body is cut once
    /// [`body_read_timeout`](Self::body_read_timeout) has passed (default 1,024): each byte
    /// received buys `1 / min_body_rate` seconds more, so a client trickling a byte at a time
    /// cannot hold a connection for long, and a slow but steady upload still completes.
    pub min_body_rate: u64,
    /// Largest request head (request line and header fields), in bytes (default 16 KiB): a larger
    /// one is answered 431.
    pub max_head_bytes: usize,
    /// Most header fields in a request (default 100): more are answered 431.
    pub max_headers: usize,
    /// Longest request target (path and query), in bytes (default 8 KiB): a longer one is
    /// answered 414.
    pub max_uri_bytes: usize,
    /// The origins whose pages may call the API from a browser (CORS); `None` (the default): no
    /// CORS, cross-origin pages cannot read any answer ([`crate::cors`]).
    pub cors: Option<CorsOrigins>,
    /// The URL clients reach the server at, when it is not what the request shows (a proxy that
    /// strips a prefix); links in responses are then absolute URLs under it. `None` (the
    /// default): links are paths under the request's mount point ([`crate::mount`]).
    pub public_url: Option<PublicUrl>,
    /// How webhooks are delivered (`/webhooks`; [`Server::bind`](crate::Server::bind) starts
    /// them): by default, only to public addresses.
    pub webhooks: ade_webhooks::WebhookOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_json_body: 1024 * 1024,
            max_upload: ade_core::api::DEFAULT_MAX_UPLOAD,
            keepalive: Duration::from_secs(15),
            sse_retry: Duration::from_secs(2),
            tokens: Tokens::default(),
            metrics: None,
            allow_open: false,
            shutdown_grace: Duration::from_secs(30),
            shutdown_drain: Duration::from_secs(10),
            default_runs_limit: ade_core::api::DEFAULT_RUNS_LIMIT,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            min_body_rate: 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            cors: None,
            public_url: None,
            webhooks: ade_webhooks::WebhookOptions::default(),
        }
    }
}

impl ServerConfig {
    /// The defaults of SPEC §4 and §9, open (no tokens), no metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`max_json_body`](Self::max_json_body).
    #[must_use]
    pub fn with_max_json_body(mut self, bytes: usize) -> Self {
        self.max_json_body = bytes;
        self
    }

    /// Sets [`max_upload`](Self::max_upload).
    #[must_use]
    pub fn with_max_upload(mut self, bytes: u64) -> Self {
        self.max_upload = bytes;
        self
    }

    /// Sets [`keepalive`](Self::keepalive) (at least 1 ms).
    #[must_use]
    pub fn with_keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval.max(Duration::from_millis(1));
        self
    }

    /// Sets [`tokens`](Self::tokens).
    #[must_use]
    pub fn with_tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// Sets [`allow_open`](Self::allow_open).
    #[must_use]
    pub fn with_allow_open(mut self, allow: bool) -> Self {
        self.allow_open = allow;
        self
    }

    /// Sets [`shutdown_grace`](Self::shutdown_grace).
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Sets [`shutdown_drain`](Self::shutdown_drain).
    #[must_use]
    pub fn with_shutdown_drain(mut self, drain: Duration) -> Self {
        self.shutdown_drain = drain;
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout) (at least 1 ms).
    #[must_use]
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets [`body_read_timeout`](Self::body_read_timeout) (at least 1 ms).
    #[must_use]
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets [`min_body_rate`](Self::min_body_rate) (at least 1 byte per second).
    #[must_use]
    pub fn with_min_body_rate(mut self, bytes_per_second: u64) -> Self {
        self.min_body_rate = bytes_per_second.max(1);
        self
    }

    /// Sets [`max_head_bytes`](Self::max_head_bytes) (at least 1 KiB).
    #[must_use]
    pub fn with_max_head_bytes(mut self, bytes: usize) -> Self {
        self.max_head_bytes = bytes.max(1024);
        self
    }

    /// Sets [`max_headers`](Self::max_headers) (at least 1).
    #[must_use]
    pub fn with_max_headers(mut self, count: usize) -> Self {
        self.max_headers = count.max(1);
        self
    }

    /// Sets [`max_uri_bytes`](Self::max_uri_bytes) (at least 256).
    #[must_use]
    pub fn with_max_uri_bytes(mut self, bytes: usize) -> Self {
        self.max_uri_bytes = bytes.max(256);
        self
    }

    /// Sets [`cors`](Self::cors): the origins allowed to call the API from a browser.
    #[must_use]
    pub fn with_cors(mut self, origins: CorsOrigins) -> Self {
        self.cors = Some(origins);
        self
    }

    /// Sets [`public_url`](Self::public_url).
    #[must_use]
    pub fn with_public_url(mut self, url: PublicUrl) -> Self {
        self.public_url = Some(url);
        self
    }

    /// Sets [`webhooks`](Self::webhooks).
    #[must_use]
    pub fn with_webhooks(mut self, options: ade_webhooks::WebhookOptions) -> Self {
        self.webhooks = options;
        self
    }

    /// Sets [`metrics`](Self::metrics).
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}
