//! The webhook operations of [`Client`] (`/webhooks`): served by ade-server only, so a local
//! client refuses them.

use ade_model::event::WorkspaceId;
use ade_model::webhook::{Delivery, Webhook, WebhookId};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Client, json, send};
use crate::error::{Error, Result};

/// What to create with [`Client::create_webhook`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct NewWebhook {
    /// The workspace; when absent, the token's workspace if it has exactly one, else `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<WorkspaceId>,
    /// Where events are POSTed.
    pub url: String,
    /// The event types (`run.completed`, `run.*`, `*`); empty: every event.
    pub event_types: Vec<String>,
}

impl NewWebhook {
    /// A subscription of every event at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self { workspace_id: None, url: url.into(), event_types: Vec::new() }
    }

    /// In `workspace_id`.
    #[must_use]
    pub fn workspace(mut self, workspace_id: WorkspaceId) -> Self {
        self.workspace_id = Some(workspace_id);
        self
    }

    /// Only events of `patterns`.
    #[must_use]
    pub fn event_types(mut self, patterns: Vec<String>) -> Self {
        self.event_types = patterns;
        self
    }
}

#[derive(Deserialize)]
struct Webhooks {
    webhooks: Vec<Webhook>,
}

#[derive(Deserialize)]
struct Deliveries {
    deliveries: Vec<Delivery>,
}

impl Client {
    /// Subscribes a URL to a workspace's events; the subscription, with its signing secret.
    ///
    /// # Errors
    /// [`Error::Api`] (403 another workspace, 422 a refused URL or filter), [`Error::Transport`],
    /// [`Error::Decode`]; [`Error::Invalid`] for a local client.
    pub async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook> {
        self.server_only()?;
        json(send(self.request(Method::POST, "/webhooks").json(webhook)).await?, "a webhook").await
    }

    /// The subscriptions of `workspace_id` (required for a token of several workspaces).
    ///
    /// # Errors
    /// As [`create_webhook`](Self::create_webhook).
    pub async fn list_webhooks(&self, workspace_id: Option<&WorkspaceId>) -> Result<Vec<Webhook>> {
        self.server_only()?;
        let mut request = self.request(Method::GET, "/webhooks");
        if let Some(workspace) = workspace_id {
            request = request.query(&[("workspace_id", workspace.as_str())]);
        }
        let list: Webhooks = json(send(request).await?, "webhooks").await?;
        Ok(list.webhooks)
    }

    /// One subscription.
    ///
    /// # Errors
    /// As [`create_webhook`](Self::create_webhook) (404 unknown).
    pub async fn get_webhook(&self, id: &WebhookId) -> Result<Webhook> {
        self.server_only()?;
        json(send(self.request(Method::GET, &format!("/webhooks/{id}"))).await?, "a webhook").await
    }

    /// Deletes a subscription: nothing more is sent to it.
    ///
    /// # Errors
    /// As [`create_webhook`](Self::create_webhook) (404 unknown).
    pub async fn delete_webhook(&self, id: &WebhookId) -> Result<()> {
        self.server_only()?;
        send(self.request(Method::DELETE, &format!("/webhooks/{id}"))).await?;
        Ok(())
    }

    /// A subscription's latest deliveries, newest first.
    ///
    /// # Errors
    /// As [`create_webhook`](Self::create_webhook) (404 unknown).
    pub async fn webhook_deliveries(&self, id: &WebhookId) -> Result<Vec<Delivery>> {
        self.server_only()?;
        let request = self.request(Method::GET, &format!("/webhooks/{id}/deliveries"));
        let list: Deliveries = json(send(request).await?, "deliveries").await?;
        Ok(list.deliveries)
    }

    /// Enables a disabled subscription: delivery resumes where it stopped.
    ///
    /// # Errors
    /// As [`create_webhook`](Self::create_webhook) (404 unknown).
    pub async fn enable_webhook(&self, id: &WebhookId) -> Result<Webhook> {
        self.server_only()?;
        json(send(self.request(Method::POST, &format!("/webhooks/{id}/enable"))).await?, "a webhook").await
    }

    fn server_only(&self) -> Result<()> {
        if self.local.is_some() {
            return Err(Error::Invalid(
                "webhooks are delivered by ade-server, which keeps running: use a client of a server".to_owned(),
            ));
        }
        Ok(())
    }
}
