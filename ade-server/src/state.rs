//! [`AppState`]: what every handler shares.

use std::sync::Arc;

use ade_core::Runtime;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;

/// The runtime the server hosts, its configuration, and the shutdown signal open streams follow.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: Runtime,
    config: ServerConfig,
    shutdown: CancellationToken,
    configuration_writes: tokio::sync::Mutex<()>,
    /// The webhooks, once started ([`AppState::with_webhooks`]).
    webhooks: std::sync::OnceLock<ade_webhooks::Webhooks>,
}

impl AppState {
    /// State for a router over `runtime`. With a metrics handle, the SPEC §11 metrics are
    /// described to the installed recorder (the label-free ones registered at zero).
    pub fn new(runtime: Runtime, config: ServerConfig) -> Self {
        if config.metrics.is_some() {
            crate::http_metrics::register();
        }
        Self {
            inner: Arc::new(Inner {
                runtime,
                config,
                shutdown: CancellationToken::new(),
                configuration_writes: tokio::sync::Mutex::new(()),
                webhooks: std::sync::OnceLock::new(),
            }),
        }
    }

    /// With `webhooks` (started on the same runtime) behind `/webhooks`; without, those routes
    /// answer 404. [`Server::bind`](crate::Server::bind) starts and sets them.
    #[must_use]
    pub fn with_webhooks(self, webhooks: ade_webhooks::Webhooks) -> Self {
        let _ = self.inner.webhooks.set(webhooks);
        self
    }

    /// The webhooks, if started.
    pub fn webhooks(&self) -> Option<&ade_webhooks::Webhooks> {
        self.inner.webhooks.get()
    }

    /// The hosted runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Cancelled when the server shuts down: open streams end at the next event boundary and
    /// `/readyz` answers 503.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Held while `PUT /configurations/{id}` checks and changes a configuration, so that two of
    /// them never interleave.
    pub(crate) fn configuration_writes(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.configuration_writes
    }
}
