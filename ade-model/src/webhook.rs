//! Webhook subscriptions as the API shows them (`/webhooks`, crate `ade-webhooks` delivers them):
//! a subscription and the entries of its delivery log.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{EventId, RunId, Timestamp, WorkspaceId};

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
            _ => Err(Error::InvalidId {
                kind: "webhook id",
                value: text.chars().take(100).collect(),
                reason: "expected wh_ and a ULID",
            }),
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

    #[test]
    fn ids_parse_only_their_own_form() {
        let id = WebhookId::new();
        assert_eq!(id.as_str().parse::<WebhookId>().expect("parse"), id);
        for bad in ["", "wh_", "wh_nope", "run_01M8C4DS2PH0887ZPTJ9T85312", "../wh"] {
            assert!(bad.parse::<WebhookId>().is_err(), "{bad}");
        }
    }
}
