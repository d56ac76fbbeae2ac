//! `GET /configurations`, `GET /configurations/{id}`, `PUT /configurations/{id}` (SPEC §8.3).

use ade_core::config::{Configuration, EngineSpec};
use ade_core::event::ConfigurationId;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use super::excerpt;
use crate::auth::{Caller, Scope};
use crate::error::{Error, Result};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

pub(super) async fn list(State(state): State<AppState>) -> Json<Value> {
    let configurations: Vec<_> = state.runtime().configurations().iter().map(|c| c.as_ref().clone()).collect();
    Json(serde_json::json!({ "configurations": configurations }))
}

fn parse_id(text: &str) -> Result<ConfigurationId> {
    text.parse().map_err(|_| Error::NotFound(format!("no configuration {}", excerpt(text))))
}

pub(super) async fn get(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<Configuration>> {
    let id = parse_id(&id)?;
    let configuration =
        state.runtime().configuration(&id).ok_or_else(|| Error::NotFound(format!("no configuration {id}")))?;
    Ok(Json(configuration.as_ref().clone()))
}

/// Creates or replaces a data-only (`extract`) configuration. Configurations are shared by every
/// workspace, so only a token allowed in all of them (`*`) may change them. Only configurations
/// created by a `PUT` may be replaced by one: at start the configuration directory wins over a
/// stored configuration, so replacing one of its configurations here would be lost silently.
pub(super) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    body: ApiJson<Value>,
) -> Result<(StatusCode, Json<Configuration>)> {
    if caller.scope != Scope::All {
        return Err(Error::Forbidden(
            "configurations are shared by all workspaces: only a token for every workspace (`*`) may change them"
                .to_owned(),
        ));
    }
    let id = id.parse::<ConfigurationId>().map_err(|e| Error::Unprocessable(e.to_string()))?;
    let Value::Object(mut object) = body.value else {
        return Err(Error::Unprocessable("a configuration is a JSON object".to_owned()));
    };
    match object.get("id") {
        None => {
            object.insert("id".to_owned(), Value::String(id.to_string()));
        }
        Some(Value::String(given)) if given == id.as_str() => {}
        Some(_) => return Err(Error::Unprocessable(format!("the body's `id` must be {id}, as in the path"))),
    }
    let configuration: Configuration = serde_json::from_value(Value::Object(object))
        .map_err(|e| Error::Unprocessable(format!("invalid configuration: {e}")))?;
    let EngineSpec::Extract(_) = &configuration.engine else {
        return Err(Error::Unprocessable(format!(
            "only `extract` configurations can be created over HTTP (this one is {:?}); \
             `process` configurations come from the server's configuration directory",
            configuration.engine.engine_name()
        )));
    };
    // Refused before anything is written: no `extract` engine registered, rules that do not
    // compile (the engine's own check), too many fields for a run's summary.
    state.runtime().check_configuration(&configuration)?;
    // One change at a time: the check below compares the live configuration with its file.
    let _writing = state.configuration_writes().lock().await;
    let existing = state.runtime().configuration(&id);
    if let Some(existing) = &existing {
        if !matches!(existing.engine, EngineSpec::Extract(_)) {
            return Err(Error::Conflict(format!(
                "configuration {id} is a {:?} configuration from the server's configuration directory; it cannot be replaced over HTTP",
                existing.engine.engine_name()
            )));
        }
        if !is_stored(&state, existing).await? {
            return Err(Error::Conflict(format!(
                "configuration {id} comes from the server's configuration directory: change it there \
                 (a configuration stored over HTTP would be shadowed by it at the next start)"
            )));
        }
    }
    // Kept first, then registered: a write that fails changes nothing, so the live configuration
    // and its file always agree (and a later `PUT` is not refused as a directory configuration).
    persist(&state, &configuration).await?;
    if let Err(error) = state.runtime().put_configuration(configuration.clone()) {
        // The runtime has no engine for it: put the file back as it was.
        let restored = match &existing {
            Some(previous) => persist(&state, previous).await,
            None => tokio::fs::remove_file(stored_path(&state, &id))
                .await
                .map_err(|e| Error::Internal(format!("removing configuration {id}: {e}"))),
        };
        if let Err(restore_error) = restored {
            tracing::error!(%id, %restore_error, "could not undo a stored configuration the runtime refused");
        }
        return Err(error.into());
    }
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(configuration)))
}

/// Where a `PUT` keeps configuration `id`.
fn stored_path(state: &AppState, id: &ConfigurationId) -> std::path::PathBuf {
    super::stored_configurations_dir(state.runtime().data_dir()).join(format!("{id}.json"))
}

/// Whether `current` is the configuration a `PUT` stored: if not (no file, or another
/// configuration than the live one), it came from the host, which loads it again at every start.
async fn is_stored(state: &AppState, current: &Configuration) -> Result<bool> {
    match tokio::fs::read(stored_path(state, &current.id)).await {
        Ok(bytes) => Ok(serde_json::from_slice::<Configuration>(&bytes).is_ok_and(|stored| stored == *current)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(Error::Internal(format!("reading stored configuration {}: {error}", current.id))),
    }
}

/// Writes the configuration to `<data_dir>/configurations/<id>.json` (atomically: a temporary
/// file, then a rename), where the binary loads it from at start.
async fn persist(state: &AppState, configuration: &Configuration) -> Result<()> {
    let dir = super::stored_configurations_dir(state.runtime().data_dir());
    let failed = |e: std::io::Error| Error::Internal(format!("storing configuration {}: {e}", configuration.id));
    tokio::fs::create_dir_all(&dir).await.map_err(failed)?;
    let json = serde_json::to_vec_pretty(configuration).map_err(|e| Error::Internal(e.to_string()))?;
    let path = stored_path(state, &configuration.id);
    let temporary = dir.join(format!(".{}.json.tmp", configuration.id));
    tokio::fs::write(&temporary, json).await.map_err(failed)?;
    tokio::fs::rename(&temporary, &path).await.map_err(failed)
}
