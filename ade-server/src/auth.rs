//! Auth and tenancy (SPEC §4.2): bearer tokens bound to a name and a set of workspaces.
//!
//! Tokens are kept as sha256 digests and compared in constant time; the plain text is never
//! stored, echoed or logged. Browsers' `EventSource` cannot send headers, so `?access_token=` is
//! accepted on `GET /runs/{id}/events` when the response is an SSE stream, and refused elsewhere.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ade_core::event::WorkspaceId;
use axum::extract::{MatchedPath, NestedPath, Query, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::negotiate::{EventsFormat, negotiate_events};
use crate::state::AppState;

/// The route on which `?access_token=` is accepted (with `Accept: text/event-stream`).
pub(crate) const EVENTS_ROUTE: &str = "/runs/{id}/events";

/// Which workspaces a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every workspace (`*`, or an open server).
    All,
    /// Only these.
    Only(Vec<WorkspaceId>),
}

/// Who is calling: the token's name (none on an open server) and its workspaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: Option<String>,
    /// Its workspaces.
    pub scope: Scope,
}

impl Caller {
    /// A caller that may do everything (an open server).
    pub fn open() -> Self {
        Self { name: None, scope: Scope::All }
    }

    /// Whether objects of `workspace` are visible to the caller.
    pub fn can_see(&self, workspace: &WorkspaceId) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Only(list) => list.contains(workspace),
        }
    }

    /// The one workspace a store lookup can be narrowed to, when the caller has exactly one.
    pub fn single_workspace(&self) -> Option<&WorkspaceId> {
        match &self.scope {
            Scope::Only(list) if list.len() == 1 => list.first(),
            _ => None,
        }
    }

    /// The workspace a request for a new object (document, run) names, or else (SPEC §4) the
    /// caller's only workspace when its token has exactly one, else `default`; 403 if the caller
    /// may not use it, saying to name one when the token has several.
    pub(crate) fn workspace_or_default(&self, named: Option<WorkspaceId>) -> Result<WorkspaceId, Error> {
        let Some(workspace) = named else {
            let workspace = self.single_workspace().cloned().unwrap_or_default();
            return match self.check_workspace(&workspace) {
                Ok(()) => Ok(workspace),
                Err(_) => Err(Error::Forbidden(format!(
                    "this token may not use workspace {workspace}, the default: name one of its workspaces with `workspace_id`"
                ))),
            };
        };
        self.check_workspace(&workspace)?;
        Ok(workspace)
    }

    /// The workspace a listing (`GET /runs`, `GET /webhooks`) is narrowed to: the one its
    /// `workspace_id` names (403 if the caller may not use it), else the token's only workspace;
    /// `None` (every workspace) for a token of all of them; 400 for a token of several that
    /// names none.
    pub(crate) fn listed_workspace(&self, named: Option<&str>) -> Result<Option<WorkspaceId>, Error> {
        if let Some(text) = named {
            let workspace = WorkspaceId::new(text).map_err(|_| {
                Error::BadRequest(format!("`workspace_id` {:?} is not a workspace id", crate::routes::excerpt(text)))
            })?;
            self.check_workspace(&workspace)?;
            return Ok(Some(workspace));
        }
        match &self.scope {
            Scope::All => Ok(None),
            Scope::Only(list) => match list.as_slice() {
                [only] => Ok(Some(only.clone())),
                _ => Err(Error::BadRequest(
                    "this token may use several workspaces: name one with `workspace_id`".to_owned(),
                )),
            },
        }
    }

    /// Refuses (403) an action in a workspace the caller may not use.
    pub(crate) fn check_workspace(&self, workspace: &WorkspaceId) -> Result<(), Error> {
        if self.can_see(workspace) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!("this token may not use workspace {workspace}")))
        }
    }
}

/// One configured token, as written in a tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: String,
    workspaces: Vec<String>,
}

/// A tokens file: `{"tokens": [{"name", "token", "workspaces": ["acme"] | ["*"]}]}` or the bare list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokensFile {
    Wrapped { tokens: Vec<TokenEntry> },
    List(Vec<TokenEntry>),
}

/// The configured bearer tokens; empty means the server is open.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Arc<Vec<(Digest32, Caller)>>,
}

type Digest32 = [u8; 32];

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: tokens are secrets.
        let names: Vec<_> = self.entries.iter().map(|(_, caller)| caller.name.as_deref().unwrap_or("")).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

/// Why a tokens file or variable was refused.
#[derive(Debug, thiserror::Error)]
#[error("tokens: {0}")]
pub struct TokensError(String);

impl Tokens {
    /// No tokens: an open server.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether no token is configured (the server is open).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a token named `name` for `workspaces` (`*` for all).
    ///
    /// # Errors
    /// When the token is empty, a workspace name is invalid, or the list is empty.
    pub fn with(self, name: &str, token: &str, workspaces: &[&str]) -> Result<Self, TokensError> {
        let entry = TokenEntry {
            name: name.to_owned(),
            token: token.to_owned(),
            workspaces: workspaces.iter().map(|w| (*w).to_owned()).collect(),
        };
        let mut entries: Vec<_> = self.entries.iter().cloned().collect();
        entries.push(compile(entry)?);
        check_unique(&entries)?;
        Ok(Self { entries: Arc::new(entries) })
    }

    /// Parses the JSON of a tokens file (or of the `ADE_TOKENS` variable).
    ///
    /// # Errors
    /// When the JSON is not a list of `{name, token, workspaces}`, or an entry is invalid.
    pub fn from_json(json: &str) -> Result<Self, TokensError> {
        let file: TokensFile = serde_json::from_str(json).map_err(|e| {
            // serde's message may quote the input, which holds secrets: keep only where it failed.
            TokensError(format!(
                "expected {{\"tokens\": [{{\"name\", \"token\", \"workspaces\"}}]}} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let list = match file {
            TokensFile::Wrapped { tokens } | TokensFile::List(tokens) => tokens,
        };
        let entries = list.into_iter().map(compile).collect::<Result<Vec<_>, _>>()?;
        check_unique(&entries)?;
        Ok(Self { entries: Arc::new(entries) })
    }

    /// Reads a tokens file.
    ///
    /// # Errors
    /// When it cannot be read or is not valid.
    pub fn from_file(path: &Path) -> Result<Self, TokensError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| TokensError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// The caller a presented token stands for; `None` when it matches no configured token.
    pub fn authenticate(&self, token: &str) -> Option<&Caller> {
        let digest: Digest32 = Sha256::digest(token.as_bytes()).into();
        // Look at every entry, whatever matches, so timing says nothing about which did.
        let mut found = None;
        for (candidate, caller) in self.entries.iter() {
            let same = candidate.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if same && found.is_none() {
                found = Some(caller);
            }
        }
        found
    }
}

fn compile(entry: TokenEntry) -> Result<(Digest32, Caller), TokensError> {
    if entry.token.trim().is_empty() {
        return Err(TokensError(format!("token {:?} is empty", entry.name)));
    }
    if entry.workspaces.is_empty() {
        return Err(TokensError(format!("token {:?} has no workspaces (use [\"*\"] for all)", entry.name)));
    }
    let scope = if entry.workspaces.iter().any(|w| w == "*") {
        Scope::All
    } else {
        let list = entry
            .workspaces
            .iter()
            .map(|w| WorkspaceId::new(w.as_str()).map_err(|e| TokensError(format!("token {:?}: {e}", entry.name))))
            .collect::<Result<Vec<_>, _>>()?;
        Scope::Only(list)
    };
    let digest: Digest32 = Sha256::digest(entry.token.as_bytes()).into();
    Ok((digest, Caller { name: Some(entry.name), scope }))
}

fn check_unique(entries: &[(Digest32, Caller)]) -> Result<(), TokensError> {
    for (i, (digest, caller)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(other, _)| other == digest) {
            return Err(TokensError(format!("token {:?} is configured twice", caller.name.as_deref().unwrap_or(""))));
        }
    }
    Ok(())
}

/// The middleware on every API route: finds the [`Caller`] and puts it in the request's
/// extensions, or answers 401.
pub(crate) async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match caller_of(&state, &request) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => axum::response::IntoResponse::into_response(error),
    }
}

fn caller_of(state: &AppState, request: &Request) -> Result<Caller, Error> {
    let tokens = &state.config().tokens;
    if tokens.is_empty() {
        return Ok(Caller::open());
    }
    let query_token = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .ok()
        .and_then(|Query(mut query)| query.remove("access_token"));
    let header_token = match request.headers().get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(|_| unauthorized("the Authorization header is not text"))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
            Some(token.trim().to_owned())
        }
        None => None,
    };
    if query_token.is_some() && !access_token_allowed(request) {
        return Err(unauthorized(
            "`access_token` is accepted only on GET /runs/{id}/events with Accept: text/event-stream; \
             send `Authorization: Bearer <token>`",
        ));
    }
    let token = header_token.or(query_token).ok_or_else(|| unauthorized("missing bearer token"))?;
    tokens.authenticate(&token).cloned().ok_or_else(|| unauthorized("the bearer token is not valid"))
}

fn access_token_allowed(request: &Request) -> bool {
    // Nested under a prefix (`Router::nest("/ade", …)`), the matched path starts with it.
    let nested = request.extensions().get::<NestedPath>().map_or("", |nested| nested.as_str().trim_end_matches('/'));
    request.method() == Method::GET
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| path.as_str().strip_prefix(nested) == Some(EVENTS_ROUTE))
        && matches!(negotiate_events(request.headers()), Ok(EventsFormat::Sse))
}

fn unauthorized(detail: &str) -> Error {
    Error::Unauthorized(detail.to_owned())
}
