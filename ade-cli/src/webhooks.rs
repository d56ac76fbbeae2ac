//! `ade webhooks …`: subscriptions of a server's workspace to its events (ade-server delivers
//! them, so these commands need `--server`).

use std::io::Write as _;
use std::process::ExitCode;

use ade_client::NewWebhook;
use ade_client::core::webhook::{Webhook, WebhookId};
use clap::Subcommand;

use crate::{Context, Failure, Outcome, json};

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksCommand {
    /// The workspace's webhooks (id, status, event types, URL).
    List {
        /// The list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Subscribes URL to the workspace's events; prints the webhook with its signing secret.
    Create {
        /// Where events are POSTed.
        url: String,
        /// Only events of this type (`run.completed`), prefix (`run.*`) or `*`; repeatable.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
    },
    /// One webhook as JSON.
    Show {
        /// The webhook (`wh_…`).
        id: String,
    },
    /// Deletes a webhook: nothing more is sent to it.
    Delete {
        /// The webhook.
        id: String,
    },
    /// A webhook's latest deliveries, newest first.
    Deliveries {
        /// The webhook.
        id: String,
        /// The list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enables a disabled webhook: delivery resumes where it stopped.
    Enable {
        /// The webhook.
        id: String,
    },
}

fn webhook_id(text: &str) -> Result<WebhookId, Failure> {
    text.parse().map_err(|_| Failure::Usage(format!("{text:?} is not a webhook id (wh_…)")))
}

fn line(webhook: &Webhook) -> String {
    let types = if webhook.event_types.is_empty() { "*".to_owned() } else { webhook.event_types.join(",") };
    let status = serde_json::to_value(webhook.status).ok().and_then(|v| v.as_str().map(str::to_owned));
    format!("{}  {:<8}  {:<20}  {}", webhook.id, status.unwrap_or_default(), types, webhook.url)
}

pub(crate) async fn webhooks(context: &Context, command: WebhooksCommand) -> Result<Outcome, Failure> {
    if context.embedded.is_some() {
        return Err(Failure::Usage(
            "webhooks are delivered by a running ade-server: pass --server URL (or set ADE_SERVER)".to_owned(),
        ));
    }
    let client = &context.client;
    match command {
        WebhooksCommand::List { json: as_json } => {
            let list = client.list_webhooks(context.workspace.as_ref()).await?;
            if as_json {
                say!("{}", json(&serde_json::json!({ "webhooks": list })));
            } else if list.is_empty() {
                note!("no webhooks: create one with `{} webhooks create URL`", context.again());
            } else {
                for webhook in &list {
                    say!("{}", line(webhook));
                }
            }
        }
        WebhooksCommand::Create { url, events } => {
            let mut new = NewWebhook::new(url).event_types(events);
            if let Some(workspace) = context.workspace.clone() {
                new = new.workspace(workspace);
            }
            say!("{}", json(&client.create_webhook(&new).await?));
            note!("verify each request's webhook-signature with the secret above (Standard Webhooks)");
        }
        WebhooksCommand::Show { id } => say!("{}", json(&client.get_webhook(&webhook_id(&id)?).await?)),
        WebhooksCommand::Delete { id } => {
            let id = webhook_id(&id)?;
            client.delete_webhook(&id).await?;
            say!("webhook {id} deleted");
        }
        WebhooksCommand::Deliveries { id, json: as_json } => {
            let deliveries = client.webhook_deliveries(&webhook_id(&id)?).await?;
            if as_json {
                say!("{}", json(&serde_json::json!({ "deliveries": deliveries })));
            } else if deliveries.is_empty() {
                note!("no deliveries yet");
            } else {
                for delivery in &deliveries {
                    let status = serde_json::to_value(delivery.status).ok().and_then(|v| v.as_str().map(str::to_owned));
                    say!(
                        "{}  {:<9}  {:>2} attempt(s)  {:<22} {}  {}",
                        delivery.last_attempt_at,
                        status.unwrap_or_default(),
                        delivery.attempts,
                        delivery.event_type,
                        delivery.run_id,
                        delivery.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        WebhooksCommand::Enable { id } => {
            let webhook = client.enable_webhook(&webhook_id(&id)?).await?;
            say!("{}", line(&webhook));
        }
    }
    Ok(Outcome::Exit(ExitCode::SUCCESS))
}
