//! `POST /webhooks`, `GET /webhooks`, `GET/DELETE /webhooks/{id}`, `GET /webhooks/{id}/deliveries`,
//! `POST /webhooks/{id}/enable`: subscriptions to a workspace's events (crate `ade-webhooks`),
//! scoped by token like runs.

use ade_core::event::WorkspaceId;
use ade_webhooks::{Delivery, NewWebhook, Webhook, WebhookId, Webhooks};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Deserialize;

use super::excerpt;
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::mount::Mount;
use crate::state::AppState;

// Also the OpenAPI document's `CreateWebhookRequest`.
/// The body of `POST /webhooks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhookBody {
    /// The workspace whose runs' events it gets; default: the token's workspace if it has
    /// exactly one, else `default`.
    workspace_id: Option<WorkspaceId>,
    /// Where events are POSTed (`http` or `https`; public addresses only, unless the server
    /// allows private ones).
    #[schemars(regex(pattern = r"^https?://[^\s/?#@]+([/?#]\S*)?$"), length(max = 2048))]
    url: String,
    /// The event types it gets: types (`run.completed`), prefixes (`run.*`) or `*`; default:
    /// every event.
    #[serde(default)]
    #[schemars(inner(regex(pattern = r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$"), length(max = 128)))]
    event_types: Vec<String>,
}

/// Query of `GET /webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    workspace_id: Option<String>,
}

fn webhooks(state: &AppState) -> Result<&Webhooks> {
    state.webhooks().ok_or_else(|| Error::NotFound("webhooks are not enabled on this server".to_owned()))
}

/// The subscription, if the caller may see it; 404 otherwise, as if it did not exist.
fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<(WebhookId, Webhook)> {
    let missing = || Error::NotFound(format!("no webhook {}", excerpt(id)));
    let id: WebhookId = id.parse().map_err(|_| missing())?;
    match webhooks(state)?.get(&id) {
        Some(webhook) if caller.can_see(&webhook.workspace_id) => Ok((id, webhook)),
        _ => Err(missing()),
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    mount: Mount,
    caller: Caller,
    body: ApiJson<CreateWebhookBody>,
) -> Result<Response> {
    let request = body.value;
    let workspace_id = caller.workspace_or_default(request.workspace_id)?;
    let new = NewWebhook::new(workspace_id, request.url).event_types(request.event_types);
    let webhook = webhooks(&state)?.create(state.runtime(), new).await?;
    let location = HeaderValue::from_str(&mount.link(&format!("/webhooks/{}", webhook.id)))
        .map_err(|_| Error::Internal("a webhook link is not a header value".to_owned()))?;
    let mut response = (StatusCode::CREATED, Json(webhook)).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<serde_json::Value>> {
    let only = caller.listed_workspace(query.workspace_id.as_deref())?;
    let listed = webhooks(&state)?.list(|workspace| only.as_ref().is_none_or(|only| only == workspace));
    Ok(Json(serde_json::json!({ "webhooks": listed })))
}

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Webhook>> {
    Ok(Json(visible(&state, &caller, &id)?.1))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let (id, _) = visible(&state, &caller, &id)?;
    webhooks(&state)?.delete(state.runtime(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>> {
    let (id, _) = visible(&state, &caller, &id)?;
    let deliveries: Vec<Delivery> = webhooks(&state)?.deliveries(&id).unwrap_or_default();
    Ok(Json(serde_json::json!({ "deliveries": deliveries })))
}

pub(super) async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Webhook>> {
    let (id, _) = visible(&state, &caller, &id)?;
    Ok(Json(webhooks(&state)?.enable(state.runtime(), &id).await?))
}
