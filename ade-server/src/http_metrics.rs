//! Request metrics of SPEC §11: `ade_http_requests_total{route,status}` and
//! `ade_http_request_seconds{route}` (time to the response head; streams last longer).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Counter `{route, status}`: requests answered.
pub const HTTP_REQUESTS_TOTAL: &str = "ade_http_requests_total";
/// Histogram `{route}`: seconds to the response head.
pub const HTTP_REQUEST_SECONDS: &str = "ade_http_request_seconds";

/// Records one request; the `route` label is the route template (`/runs/{id}`), never the path,
/// so ids do not become label values.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(HTTP_REQUEST_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    response
}
