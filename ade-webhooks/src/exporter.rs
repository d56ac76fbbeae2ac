//! [`WebhookExporter`]: one subscription's deliveries, as an [`EventExporter`] of the runtime.
//!
//! The runtime gives it every persisted event of every run, in order per run, at least once, from
//! a cursor it keeps per exporter and run (so a restart, even `kill -9`, resumes where delivery
//! stopped). It POSTs the events the subscription asks for, one request per event, and returns
//! `Ok` only when every one of them was answered 2xx; otherwise the runtime retries the batch from
//! the first event not acknowledged, with exponential backoff and jitter. Each subscription is its
//! own exporter with its own task, so a slow or dead endpoint holds back neither the runs nor any
//! other subscription.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ade_core::event::{StoredEvent, Timestamp};
use ade_core::export::{EventExporter, ExportError};
use ade_core::store::RunKey;
use async_trait::async_trait;

use crate::Shared;
use crate::signature::Secret;
use crate::subscription::{Delivery, DeliveryStatus, EventFilter, Webhook, WebhookStatus};

/// A subscription as the deliveries use it.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Its record (status changes when it is disabled or enabled).
    pub(crate) record: Mutex<Webhook>,
    pub(crate) secret: Secret,
    pub(crate) filter: EventFilter,
    pub(crate) url: reqwest::Url,
    /// Since when every attempt has failed (none: the last one succeeded).
    failing_since: Mutex<Option<Instant>>,
    /// The latest deliveries, oldest first.
    log: Mutex<VecDeque<Delivery>>,
}

impl Subscription {
    pub(crate) fn new(record: Webhook, secret: Secret, filter: EventFilter, url: reqwest::Url) -> Self {
        Self {
            record: Mutex::new(record),
            secret,
            filter,
            url,
            failing_since: Mutex::new(None),
            log: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn record(&self) -> Webhook {
        lock(&self.record).clone()
    }

    /// The latest deliveries, newest first.
    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.log).iter().rev().cloned().collect()
    }

    /// Records an attempt at `delivery`'s event: a new entry, or the event's entry updated.
    fn log_attempt(&self, mut delivery: Delivery, keep: usize) {
        let mut log = lock(&self.log);
        if let Some(entry) = log.iter_mut().rev().find(|entry| entry.event_id == delivery.event_id) {
            delivery.attempts = entry.attempts + 1;
            *entry = delivery;
            return;
        }
        log.push_back(delivery);
        while log.len() > keep.max(1) {
            log.pop_front();
        }
    }
}

/// Delivers one subscription's events.
#[derive(Debug)]
pub(crate) struct WebhookExporter {
    name: String,
    subscription: Arc<Subscription>,
    shared: Arc<Shared>,
}

impl WebhookExporter {
    pub(crate) fn new(subscription: Arc<Subscription>, shared: Arc<Shared>) -> Self {
        let name = exporter_name(&subscription.record());
        Self { name, subscription, shared }
    }

    /// POSTs one event; `Ok` on a 2xx answer, else the HTTP status (if any) and why.
    async fn post(&self, id: &str, body: &[u8]) -> Result<u16, (Option<u16>, String)> {
        let timestamp = Timestamp::now().unix_micros() / 1_000_000;
        let signature = self.subscription.secret.sign(id, timestamp, body);
        let sent = self
            .shared
            .http
            .post(self.subscription.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        let response = sent.map_err(|error| (None, describe(&error)))?;
        let status = response.status();
        // The body is not read: an endpoint's answer is its status.
        drop(response);
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((Some(status.as_u16()), format!("the endpoint answered {status}")))
        }
    }

    /// A failed attempt: disables the subscription once every attempt has failed for longer than
    /// the failure window.
    async fn failed(&self, error: String) -> ExportError {
        let failing_for = {
            let mut since = lock(&self.subscription.failing_since);
            since.get_or_insert_with(Instant::now).elapsed()
        };
        let window = self.shared.options.disable_after;
        if failing_for >= window {
            let reason = format!("every delivery failed for {}; the last: {error}", human(window));
            let record = {
                let mut record = lock(&self.subscription.record);
                record.status = WebhookStatus::Disabled;
                record.disabled_reason = Some(reason.clone());
                record.clone()
            };
            tracing::warn!(webhook = %record.id, %reason, "disabled a webhook");
            if let Err(error) = self.shared.save(&record).await {
                tracing::error!(webhook = %record.id, %error, "could not record that a webhook is disabled");
            }
        }
        ExportError::new(error)
    }
}

#[async_trait]
impl EventExporter for WebhookExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, run: &RunKey, events: &[Arc<StoredEvent>]) -> Result<(), ExportError> {
        if run.workspace_id != lock(&self.subscription.record).workspace_id {
            return Ok(());
        }
        // The stored record is the truth: instances sharing the data directory (PostgreSQL) see
        // each other's deletes, disables and enables here.
        let id = self.subscription.record().id;
        let stored = self.shared.load(&crate::record_key(&id).map_err(ExportError::from_source)?).await;
        match stored.map_err(ExportError::from_source)? {
            // Deleted (elsewhere): nothing of it is wanted any more.
            None => return Ok(()),
            Some(stored) => *lock(&self.subscription.record) = stored,
        }
        let (created_at, status) = {
            let record = lock(&self.subscription.record);
            (record.created_at, record.status)
        };
        if status == WebhookStatus::Disabled {
            // Not acknowledged: enabled again, delivery resumes here.
            return Err(ExportError::new("the webhook is disabled"));
        }
        let first = events.first().map_or(0, |event| event.sequence());
        for event in events {
            let envelope = event.envelope().map_err(ExportError::from_source)?;
            // A subscription gets the events persisted after it was made, not the history.
            if envelope.created_at < created_at || !self.subscription.filter.matches(envelope.event_type()) {
                continue;
            }
            let id = envelope.event_id.to_string();
            let answer = self.post(&id, event.json()).await;
            let entry = |status, response_status, last_error| Delivery {
                event_id: envelope.event_id,
                run_id: envelope.run_id,
                sequence: envelope.sequence,
                event_type: envelope.event_type().to_owned(),
                status,
                attempts: 1,
                response_status,
                last_error,
                last_attempt_at: Timestamp::now(),
            };
            match answer {
                Ok(code) => {
                    self.subscription.log_attempt(entry(DeliveryStatus::Delivered, Some(code), None), self.keep());
                    *lock(&self.subscription.failing_since) = None;
                }
                Err((code, error)) => {
                    let logged = entry(DeliveryStatus::Failed, code, Some(error.clone()));
                    self.subscription.log_attempt(logged, self.keep());
                    let failure = self.failed(error).await;
                    // What was sent before stays sent: the retry starts at this event.
                    return Err(match envelope.sequence.checked_sub(1) {
                        Some(taken) if taken >= first => failure.delivered_up_to(taken),
                        _ => failure,
                    });
                }
            }
        }
        Ok(())
    }
}

impl WebhookExporter {
    fn keep(&self) -> usize {
        self.shared.options.delivery_log
    }
}

/// The exporter (and cursor) name of a subscription.
pub(crate) fn exporter_name(webhook: &Webhook) -> String {
    format!("webhook:{}", webhook.id)
}

/// A request error with its causes (reqwest's own message says only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `90 s`, `2 h`: a window as people read it.
fn human(window: Duration) -> String {
    let secs = window.as_secs();
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s if s > 0 => format!("{s} s"),
        _ => format!("{} ms", window.as_millis()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
