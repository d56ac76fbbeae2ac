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
    use crate::event::EventSource;
    match source {
        EventSource::Api => "api",
        EventSource::Engine => "engine",
        EventSource::Worker => "worker",
    }
}
