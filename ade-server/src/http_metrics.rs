//! Request metrics of SPEC §11: `ade_http_requests_total{route,status}` and
//! `ade_http_request_seconds{route}` (time to the response head; streams last longer); and the
//! table of every §11 metric, so that `/metrics` names them all from the start.

use std::fmt::Write as _;
use std::time::Instant;

use ade_core::metrics as core;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Counter `{route, status}`: requests answered.
pub const HTTP_REQUESTS_TOTAL: &str = "ade_http_requests_total";
/// Histogram `{route}`: seconds to the response head.
pub const HTTP_REQUEST_SECONDS: &str = "ade_http_request_seconds";

/// What kind of Prometheus metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, a sum and a count.
    Histogram,
}

/// Every metric of SPEC §11: name, kind, whether it has labels, and its `# HELP` text.
pub const SPEC_METRICS: [(&str, Kind, bool, &str); 12] = [
    (core::EVENTS_TOTAL, Kind::Counter, true, "Events persisted and published, by type and source."),
    (core::EVENT_APPEND_SECONDS, Kind::Histogram, false, "Seconds one batch append took."),
    (core::EVENT_STORE_ERRORS_TOTAL, Kind::Counter, false, "Event appends that failed."),
    (core::SUBSCRIBERS, Kind::Gauge, true, "Open event subscriptions, by transport."),
    (
        core::SUBSCRIBER_CATCHUPS_TOTAL,
        Kind::Counter,
        false,
        "Times a subscriber fell behind and caught up from the store.",
    ),
    (core::RUNS_TOTAL, Kind::Counter, true, "Runs that ended, by status."),
    (core::RUNS_ACTIVE, Kind::Gauge, true, "Runs not yet ended, by status."),
    (core::RUN_DURATION_SECONDS, Kind::Histogram, false, "Seconds from a run's creation to run.completed."),
    (core::BUILDS_TOTAL, Kind::Counter, true, "Builds, by result."),
    (core::ENGINE_REJECTED_EVENTS_TOTAL, Kind::Counter, true, "Engine events refused, by reason."),
    (HTTP_REQUESTS_TOTAL, Kind::Counter, true, "HTTP requests answered, by route template and status."),
    (HTTP_REQUEST_SECONDS, Kind::Histogram, true, "Seconds to an HTTP response's head, by route template."),
];

/// Describes every §11 metric to the installed recorder, and registers those without labels
/// (counters at 0, empty histograms): a dashboard or alert can then tell "none yet" from "not
/// exported". Metrics with labels have no series until a label value happens;
/// [`missing_families`] names them.
pub fn register() {
    for (name, kind, labelled, help) in SPEC_METRICS {
        match kind {
            Kind::Counter => {
                metrics::describe_counter!(name, help);
                if !labelled {
                    metrics::counter!(name).increment(0);
                }
            }
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => {
                metrics::describe_histogram!(name, help);
                if !labelled {
                    // Registering is enough: the exporter renders an empty histogram.
                    let _ = metrics::histogram!(name);
                }
            }
        }
    }
}

/// `# HELP` and `# TYPE` lines for every §11 metric `rendered` (Prometheus text) does not name
/// yet, so that every name is there from the first scrape.
pub fn missing_families(rendered: &str) -> String {
    let mut missing = String::new();
    for (name, kind, _, help) in SPEC_METRICS {
        if !rendered.contains(&format!("# TYPE {name} ")) {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = write!(missing, "# HELP {name} {help}\n# TYPE {name} {kind}\n\n");
        }
    }
    missing
}

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
