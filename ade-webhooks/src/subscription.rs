//! A subscription (`Webhook`), its event type filter, and the entries of its delivery log.

use ade_core::event::{EventId, RunId, Timestamp, WorkspaceId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A subscription's id: `wh_` and a ULID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct WebhookId(String);

impl WebhookId {
    /// A new id.
    pub fn new() -> Self {
        Self(format!("wh_{}", ulid::Ulid::generate()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for WebhookId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for WebhookId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for WebhookId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.strip_prefix("wh_").map(ulid::Ulid::from_string) {
            Some(Ok(ulid)) => Ok(Self(format!("wh_{ulid}"))),
            _ => Err(Error::NotFound(text.chars().take(64).collect())),
        }
    }
}

impl TryFrom<String> for WebhookId {
    type Error = Error;

    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<WebhookId> for String {
    fn from(id: WebhookId) -> Self {
        id.0
    }
}

/// Which events a subscription gets: exact types (`run.completed`), prefixes (`run.*`), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    patterns: Vec<String>,
}

impl EventFilter {
    /// A filter of `patterns`; none means every event.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`] for a pattern that is empty, has characters an event type never
    /// has, or a `*` anywhere but alone or after a final `.`.
    pub fn new(patterns: &[String]) -> Result<Self> {
        for pattern in patterns {
            let stem = pattern.strip_suffix(".*").unwrap_or(pattern);
            let valid = pattern == "*"
                || (!stem.is_empty()
                    && stem.split('.').all(|part| {
                        !part.is_empty()
                            && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    }));
            if !valid || pattern.len() > 128 {
                return Err(Error::InvalidFilter(pattern.chars().take(128).collect()));
            }
        }
        Ok(Self { patterns: patterns.to_vec() })
    }

    /// Whether an event of `event_type` passes.
    pub fn matches(&self, event_type: &str) -> bool {
        self.patterns.is_empty()
            || self.patterns.iter().any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => pattern == event_type,
            })
    }
}

/// Whether a subscription is being delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WebhookStatus {
    /// Events are delivered.
    Enabled,
    /// Deliveries failed for longer than the deployment's failure window: nothing is sent until
    /// the subscription is enabled again, when delivery resumes where it stopped.
    Disabled,
}

/// A subscription: where the events of a workspace go, which of them, and how they are signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// The workspace whose runs' events it gets.
    pub workspace_id: WorkspaceId,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it gets (`run.completed`, `run.*`, `*`); empty: every event.
    pub event_types: Vec<String>,
    /// The signing secret (`whsec_…`, Standard Webhooks).
    pub secret: String,
    /// Whether events are delivered.
    pub status: WebhookStatus,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// What a delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// The endpoint answered 2xx.
    Delivered,
    /// The last attempt failed; it is retried (unless the subscription is disabled).
    Failed,
}

/// One event's delivery to a subscription, in its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Delivery {
    /// The event (and the `webhook-id` header of every attempt).
    pub event_id: EventId,
    /// Its run.
    pub run_id: RunId,
    /// Its sequence in the run.
    pub sequence: u64,
    /// Its type.
    pub event_type: String,
    /// What the last attempt came to.
    pub status: DeliveryStatus,
    /// Attempts so far (by this instance since it started).
    pub attempts: u32,
    /// The endpoint's last HTTP status, if it answered.
    pub response_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str]) -> EventFilter {
        EventFilter::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>()).expect("valid")
    }

    #[test]
    fn filters_match_types_prefixes_and_everything() {
        assert!(filter(&[]).matches("console.line"));
        assert!(filter(&["*"]).matches("build.completed"));
        let completed = filter(&["run.completed"]);
        assert!(completed.matches("run.completed") && !completed.matches("run.completed.extra"));
        let runs = filter(&["run.*"]);
        assert!(runs.matches("run.queued") && runs.matches("run.phase.started") && !runs.matches("build.started"));
        assert!(!runs.matches("runner.x"), "a prefix ends at a dot");
        for bad in ["", "run.", "*.completed", "run*", "Run.Completed", "run..x", "run. completed"] {
            assert!(EventFilter::new(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_parse_only_their_own_form() {
        let id = WebhookId::new();
        assert_eq!(id.as_str().parse::<WebhookId>().expect("parse"), id);
        for bad in ["", "wh_", "wh_nope", "run_01M8C4DS2PH0887ZPTJ9T85312", "../wh"] {
            assert!(bad.parse::<WebhookId>().is_err(), "{bad}");
        }
    }
}
