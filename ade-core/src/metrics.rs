//! Metric names of SPEC §11 that `ade-core` records, through the `metrics` facade: without a
//! recorder installed by the host binary they cost next to nothing.

/// Counter `{type, source}`: events persisted and published.
pub const EVENTS_TOTAL: &str = "ade_events_total";
/// Histogram: seconds one batch append took.
pub const EVENT_APPEND_SECONDS: &str = "ade_event_append_seconds";
/// Counter: appends that failed.
pub const EVENT_STORE_ERRORS_TOTAL: &str = "ade_event_store_errors_total";
/// Gauge `{transport}`: open subscriptions.
pub const SUBSCRIBERS: &str = "ade_subscribers";
/// Counter: times a subscriber fell behind its live buffer and caught up from the store.
pub const SUBSCRIBER_CATCHUPS_TOTAL: &str = "ade_subscriber_catchups_total";

/// Counter `{status}`: runs that ended.
pub const RUNS_TOTAL: &str = "ade_runs_total";
/// Gauge `{status}`: runs not yet ended, by status.
pub const RUNS_ACTIVE: &str = "ade_runs_active";
/// Histogram: seconds from creation to `run.completed`.
pub const RUN_DURATION_SECONDS: &str = "ade_run_duration_seconds";
/// Counter `{status}`: builds by result.
pub const BUILDS_TOTAL: &str = "ade_builds_total";
/// Counter `{reason}`: engine events refused.
pub const ENGINE_REJECTED_EVENTS_TOTAL: &str = "ade_engine_rejected_events_total";

/// The `type` label of an event: catalog types as they are, all `x.*` types as `extension` and
/// any other as `unknown`, so engines cannot blow up the label's cardinality.
pub(crate) fn type_label(payload: &crate::event::EventPayload) -> &'static str {
    use crate::event::EventPayload;
    match payload {
        EventPayload::Extension { .. } => "extension",
        EventPayload::Unknown { .. } => "unknown",
        known => EventPayload::CATALOG_TYPES.iter().find(|t| **t == known.event_type()).copied().unwrap_or("unknown"),
    }
}

/// The `source` label.
pub(crate) fn source_label(source: crate::event::EventSource) -> &'static str {
    source.as_str()
}

/// Moves one run between statuses in `ade_runs_active{status}` (`""` for none).
pub(crate) fn gauge_move(from: &'static str, to: &'static str) {
    if !from.is_empty() {
        ::metrics::gauge!(RUNS_ACTIVE, "status" => from).decrement(1.0);
    }
    if !to.is_empty() && to != "succeeded" && to != "failed" && to != "cancelled" {
        ::metrics::gauge!(RUNS_ACTIVE, "status" => to).increment(1.0);
    }
}
