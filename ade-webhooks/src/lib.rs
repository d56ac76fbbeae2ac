//! # ade-webhooks
//!
//! Webhooks for ade, per the Standard Webhooks specification: a subscription names a workspace,
//! a URL and the event types it wants (`run.completed`, `run.*`, `*`); every event of that
//! workspace's runs persisted after the subscription was made is POSTed to the URL, one request
//! per event, with the headers `webhook-id` (the event's id, the same on every retry),
//! `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>`, see [`Secret`]); the
//! body is the event's envelope, exactly as stored.
//!
//! Delivery is that of the runtime's event exporters: **at least once, in order per run**, from
//! a durable cursor per subscription and run (a restart, even `kill -9`, resumes where it
//! stopped and never skips), retried with exponential backoff and jitter. Each subscription is
//! its own exporter: a slow or dead endpoint slows neither the runs nor another subscription.
//! A subscription whose every delivery has failed for [`WebhookOptions::disable_after`] is
//! disabled; [`Webhooks::enable`] resumes it where it stopped (the events in between are
//! delivered then). Targets on loopback, private or reserved addresses are refused unless
//! [`WebhookOptions::allow_private_targets`] (server-side request forgery, see [`target`]).
//!
//! Subscriptions are kept as JSON records in the runtime's blob store (`webhooks/<id>.json`, in
//! the data directory by default); their cursors in the run store; the delivery log (the latest
//! [`WebhookOptions::delivery_log`] deliveries of each) in memory.

mod error;
mod exporter;
mod signature;
mod subscription;
pub mod target;
#[cfg(feature = "test-util")]
pub mod test_util;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ade_core::Runtime;
use ade_core::blob::{BlobKey, BlobStore};
use ade_core::event::{Timestamp, WorkspaceId};
use tokio::io::AsyncReadExt;

pub use error::{Error, Result};
pub use signature::Secret;
pub use subscription::{Delivery, DeliveryStatus, EventFilter, Webhook, WebhookId, WebhookStatus};

use exporter::{Subscription, WebhookExporter, exporter_name};

/// The largest subscription record read back (a URL and a few filters).
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// How webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookOptions {
    /// Whether targets on loopback, private or reserved addresses are allowed (default no).
    pub allow_private_targets: bool,
    /// How long one request may take, connection included (default 10 s).
    pub timeout: Duration,
    /// A subscription whose every delivery failed for this long is disabled (default 24 h).
    pub disable_after: Duration,
    /// Deliveries kept per subscription in its log (default 100).
    pub delivery_log: usize,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout: Duration::from_secs(10),
            disable_after: Duration::from_secs(24 * 60 * 60),
            delivery_log: 100,
        }
    }
}

impl WebhookOptions {
    /// Sets [`allow_private_targets`](Self::allow_private_targets).
    #[must_use]
    pub fn with_private_targets(mut self, allow: bool) -> Self {
        self.allow_private_targets = allow;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`disable_after`](Self::disable_after).
    #[must_use]
    pub fn with_disable_after(mut self, window: Duration) -> Self {
        self.disable_after = window;
        self
    }
}

/// A new subscription's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewWebhook {
    /// The workspace whose runs' events it gets.
    pub workspace_id: WorkspaceId,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it gets; empty: every event.
    pub event_types: Vec<String>,
}

impl NewWebhook {
    /// A subscription of `workspace_id`'s events (every type) at `url`.
    pub fn new(workspace_id: WorkspaceId, url: impl Into<String>) -> Self {
        Self { workspace_id, url: url.into(), event_types: Vec::new() }
    }

    /// Only events of `patterns` (`run.completed`, `run.*`, `*`).
    #[must_use]
    pub fn event_types(mut self, patterns: Vec<String>) -> Self {
        self.event_types = patterns;
        self
    }
}

/// What every subscription's deliveries share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) http: reqwest::Client,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) options: WebhookOptions,
}

impl Shared {
    /// Reads a subscription's record; `None` when it was deleted.
    pub(crate) async fn load(&self, key: &BlobKey) -> Result<Option<Webhook>> {
        let corrupt = |reason: String| Error::Corrupt { key: key.to_string(), reason };
        let Some(reader) = self.blobs.open(key).await? else { return Ok(None) };
        let mut bytes = Vec::new();
        reader.take(MAX_RECORD_BYTES).read_to_end(&mut bytes).await.map_err(|e| corrupt(e.to_string()))?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| corrupt(e.to_string()))
    }

    /// Writes a subscription's record.
    pub(crate) async fn save(&self, webhook: &Webhook) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(webhook).map_err(ade_core::Error::from)?;
        self.blobs.put(&record_key(&webhook.id)?, &mut bytes.as_slice(), MAX_RECORD_BYTES).await?;
        Ok(())
    }
}

/// The webhooks of a runtime: its subscriptions and their deliveries. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Webhooks {
    shared: Arc<Shared>,
    subscriptions: Arc<RwLock<HashMap<WebhookId, Arc<Subscription>>>>,
}

impl Webhooks {
    /// Loads the stored subscriptions and starts delivering to the enabled ones. A record that
    /// cannot be read, or that names a target the options refuse, is logged and left out.
    ///
    /// # Errors
    /// [`Error::Client`] when the HTTP client cannot be built; blob store errors.
    pub async fn start(runtime: &Runtime, options: WebhookOptions) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(target::GuardedResolver { allow_private: options.allow_private_targets }))
            .user_agent(concat!("ade-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        let webhooks = Self {
            shared: Arc::new(Shared { http, blobs: runtime.blob_store().clone(), options }),
            subscriptions: Arc::default(),
        };
        let prefix = BlobKey::from_segments(["webhooks"])?;
        for entry in webhooks.shared.blobs.list(&prefix).await? {
            let key = entry.key.to_string();
            let Some(file) = key.strip_prefix("webhooks/") else { continue };
            if !file.ends_with(".json") {
                continue;
            }
            // One bad record (hand-edited, or a private target the deployment no longer allows)
            // costs its own subscription, not the start: it is left as it is, and said.
            let loaded = match webhooks.read_record(&entry.key).await {
                Ok(webhook) => webhooks.subscription(webhook),
                Err(error) => Err(error),
            };
            match loaded {
                Ok(subscription) => webhooks.register(runtime, subscription)?,
                Err(error) => {
                    tracing::error!(record = %key, %error, "a webhook is not delivered: its record is refused")
                }
            }
        }
        Ok(webhooks)
    }

    /// Creates a subscription and starts delivering to it; the subscription, with its secret.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::PrivateTarget`], [`Error::InvalidFilter`]; store errors.
    pub async fn create(&self, runtime: &Runtime, new: NewWebhook) -> Result<Webhook> {
        let webhook = Webhook {
            id: WebhookId::new(),
            workspace_id: new.workspace_id,
            url: new.url,
            event_types: new.event_types,
            secret: Secret::generate()?.expose(),
            status: WebhookStatus::Enabled,
            disabled_reason: None,
            created_at: Timestamp::now(),
        };
        let subscription = self.subscription(webhook.clone())?;
        self.shared.save(&webhook).await?;
        self.register(runtime, subscription)?;
        Ok(webhook)
    }

    /// The subscriptions whose workspace `visible` accepts, by id.
    pub fn list(&self, visible: impl Fn(&WorkspaceId) -> bool) -> Vec<Webhook> {
        let mut list: Vec<Webhook> = self
            .read()
            .values()
            .map(|subscription| subscription.record())
            .filter(|webhook| visible(&webhook.workspace_id))
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// One subscription.
    pub fn get(&self, id: &WebhookId) -> Option<Webhook> {
        self.read().get(id).map(|subscription| subscription.record())
    }

    /// The latest deliveries of a subscription, newest first.
    pub fn deliveries(&self, id: &WebhookId) -> Option<Vec<Delivery>> {
        self.read().get(id).map(|subscription| subscription.deliveries())
    }

    /// Stops delivering to a subscription and forgets it.
    ///
    /// # Errors
    /// [`Error::NotFound`]; store errors.
    pub async fn delete(&self, runtime: &Runtime, id: &WebhookId) -> Result<()> {
        let removed = self.subscriptions.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
        let Some(subscription) = removed else { return Err(Error::NotFound(id.to_string())) };
        runtime.remove_exporter(&exporter_name(&subscription.record()));
        self.shared.blobs.delete(&record_key(id)?).await?;
        Ok(())
    }

    /// Enables a disabled subscription: delivery resumes where it stopped.
    ///
    /// # Errors
    /// [`Error::NotFound`]; store errors.
    pub async fn enable(&self, runtime: &Runtime, id: &WebhookId) -> Result<Webhook> {
        let subscription = self.read().get(id).cloned().ok_or_else(|| Error::NotFound(id.to_string()))?;
        let record = {
            let mut record = subscription.record.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            record.status = WebhookStatus::Enabled;
            record.disabled_reason = None;
            record.clone()
        };
        self.shared.save(&record).await?;
        // A fresh delivery task, which starts from the cursors now rather than after a backoff.
        let name = exporter_name(&record);
        runtime.remove_exporter(&name);
        runtime.add_exporter(Arc::new(WebhookExporter::new(subscription, self.shared.clone())))?;
        Ok(record)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<WebhookId, Arc<Subscription>>> {
        self.subscriptions.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks a record and makes its subscription.
    fn subscription(&self, webhook: Webhook) -> Result<Arc<Subscription>> {
        let url = target::check_url(&webhook.url, self.shared.options.allow_private_targets)?;
        let filter = EventFilter::new(&webhook.event_types)?;
        let secret = Secret::parse(&webhook.secret)?;
        Ok(Arc::new(Subscription::new(webhook, secret, filter, url)))
    }

    /// Keeps a subscription and, when it is enabled, starts delivering to it.
    fn register(&self, runtime: &Runtime, subscription: Arc<Subscription>) -> Result<()> {
        let record = subscription.record();
        if record.status == WebhookStatus::Enabled {
            runtime.add_exporter(Arc::new(WebhookExporter::new(subscription.clone(), self.shared.clone())))?;
        }
        self.subscriptions.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(record.id, subscription);
        Ok(())
    }

    async fn read_record(&self, key: &BlobKey) -> Result<Webhook> {
        self.shared
            .load(key)
            .await?
            .ok_or_else(|| Error::Corrupt { key: key.to_string(), reason: "listed, then gone".to_owned() })
    }
}

pub(crate) fn record_key(id: &WebhookId) -> Result<BlobKey> {
    Ok(BlobKey::from_segments(["webhooks".to_owned(), format!("{id}.json")])?)
}
