//! The routes of SPEC §4 and the router that serves them.
//!
//! To add a route, add it to [`api_routes`] (authenticated, scoped to the caller's workspaces) or
//! [`public_routes`] (probes, documents about the API, the run viewer); [`router`] puts the layers
//! and fallbacks around both.

mod configurations;
mod documents;
mod events;
mod outputs;
mod probes;
mod runs;
mod webhooks;

use ade_core::event::RunId;
use ade_core::run::Run;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse as _;
use axum::routing::{MethodRouter, get, post};
use tower_http::trace::TraceLayer;

use crate::auth::{self, Caller, EVENTS_ROUTE};
use crate::error::{Error, Result};
use crate::state::AppState;

pub(crate) use outputs::Output;
pub(crate) use runs::CreateRunBody;
pub use runs::MAX_RUNS_LIMIT;
pub(crate) use webhooks::CreateWebhookBody;

/// The routes that need a caller (SPEC §4.2).
pub fn api_routes(state: &AppState) -> Router<AppState> {
    api_table().router.route_layer(from_fn_with_state(state.clone(), auth::authenticate))
}

fn api_table() -> Routes {
    Routes::default()
        .route("/documents", post(documents::upload))
        .route("/documents/{id}", get(documents::get))
        .route("/configurations", get(configurations::list))
        .route("/configurations/{id}", get(configurations::get).put(configurations::put))
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route(EVENTS_ROUTE, get(events::get))
        .route("/runs/{id}/outputs", get(outputs::list))
        .route("/runs/{id}/outputs/{name}", get(outputs::download))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/{id}", get(webhooks::get).delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/webhooks/{id}/enable", post(webhooks::enable))
}

/// The routes anyone may call: probes, metrics, the API's description and the run viewer (a page
/// with no data of its own: it reads everything through the authenticated API).
pub fn public_routes() -> Router<AppState> {
    public_table().router
}

fn public_table() -> Routes {
    Routes::default()
        .route("/", get(crate::viewer::index))
        .route("/viewer.js", get(crate::viewer::script))
        .route("/viewer.css", get(crate::viewer::style))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .route("/openapi.json", get(openapi))
}

/// Every path [`router`] routes, as written in the router (`/runs/{id}`): the OpenAPI test checks
/// that the document describes each, with each of its methods.
pub fn routed_paths() -> Vec<&'static str> {
    let mut paths = api_table().paths;
    paths.extend(public_table().paths);
    paths
}

/// A router that remembers the paths it routes (axum's cannot list them).
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn route(mut self, path: &'static str, methods: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, methods);
        self.paths.push(path);
        self
    }
}

/// `GET /openapi.json`: the document of [`crate::openapi`], built once. Served under a mount
/// point or a public URL, it names that base in `servers`, so that tools resolve its paths there
/// (at the root it has none: `/` is the default).
async fn openapi(mount: crate::mount::Mount) -> axum::response::Response {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(crate::openapi::document);
    let base = mount.link("");
    if base.is_empty() {
        return axum::Json(document).into_response();
    }
    let mut document = document.clone();
    if let Some(object) = document.as_object_mut() {
        object.insert("servers".to_owned(), serde_json::json!([{ "url": base }]));
    }
    axum::Json(document).into_response()
}

/// The whole API over `state`: routes, problem+json fallbacks, request metrics and traces.
///
/// No timeout layer applies to responses: event streams last as long as their run. Request bodies
/// have a read timeout (module `body_timeout`); body limits are enforced by the handlers, which
/// name the limit in their errors (SPEC §9).
///
/// With [CORS](crate::cors) configured, its layer is outside the auth middleware (a preflight
/// needs no token) and outside the body and URI limits (their refusals are readable by the page).
///
/// Nested under a prefix (`Router::new().nest("/ade", router(state))`), the links it returns
/// and the viewer's URLs carry the prefix ([`crate::mount`]).
pub fn router(state: AppState) -> Router {
    let routes = api_routes(&state)
        .merge(public_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(from_fn_with_state(state.clone(), crate::body_timeout::limit))
        .layer(from_fn_with_state(state.clone(), crate::connection::limit_uri));
    let routes = match &state.config().cors {
        Some(origins) => routes.layer(origins.layer()),
        None => routes,
    };
    routes
        .layer(from_fn(crate::http_metrics::record))
        .layer(
            // Path only: the query may hold an `access_token`, which is never logged.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
                })
                .on_failure(log_failure),
        )
        .with_state(state)
}

/// 5xx answers, at most one line a second: a full disk answers every write 507, and a line per
/// request would bury the log (and fill what is left of the disk). The cause of a 500 is logged
/// where it is made ([`Error`]'s `IntoResponse`).
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    static LOGGED: ade_core::log_limit::LogLimit = ade_core::log_limit::LogLimit::every_second();
    if let Some(suppressed) = LOGGED.allow() {
        tracing::warn!(%class, ?latency, suppressed, "response failed");
    }
}

async fn not_found(request: Request) -> Error {
    Error::NotFound(format!("no route {}", excerpt(request.uri().path())))
}

async fn method_not_allowed(method: Method) -> Error {
    Error::MethodNotAllowed(method.to_string())
}

/// Where configurations created with `PUT /configurations/{id}` are kept: `<data_dir>/configurations`.
pub fn stored_configurations_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("configurations")
}

/// Cuts user-supplied text before it is echoed in an error.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A run id from a path segment; anything else is a run that does not exist (404).
pub(crate) fn parse_run_id(text: &str) -> Result<RunId> {
    text.parse().map_err(|_| Error::NotFound(format!("no run {}", excerpt(text))))
}

/// The run, if the caller may see it; 404 otherwise, exactly as if it did not exist.
pub(crate) async fn visible_run(state: &AppState, caller: &Caller, id: RunId) -> Result<Run> {
    match state.runtime().get_run(caller.single_workspace(), id).await? {
        Some(run) if caller.can_see(&run.workspace_id) => Ok(run),
        _ => Err(Error::NotFound(format!("no run {id}"))),
    }
}
