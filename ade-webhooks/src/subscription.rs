//! A subscription's event type filter. The subscription and its delivery log entries are the
//! model's (`ade_core::webhook`, re-exported here).

pub use ade_core::webhook::{Delivery, DeliveryStatus, Webhook, WebhookId, WebhookStatus};

use crate::error::{Error, Result};

/// Which events a subscription gets: exact types (`run.completed`), prefixes (`run.*`), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    patterns: Vec<String>,
}

impl EventFilter {
    /// A filter of `patterns`; none means every event.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`] for a pattern that is empty, has characters an event type never
    /// has, or a `*` anywhere but alone or after a final `.`.
    pub fn new(patterns: &[String]) -> Result<Self> {
        for pattern in patterns {
            let stem = pattern.strip_suffix(".*").unwrap_or(pattern);
            let valid = pattern == "*"
                || (!stem.is_empty()
                    && stem.split('.').all(|part| {
                        !part.is_empty()
                            && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    }));
            if !valid || pattern.len() > 128 {
                return Err(Error::InvalidFilter(pattern.chars().take(128).collect()));
            }
        }
        Ok(Self { patterns: patterns.to_vec() })
    }

    /// Whether an event of `event_type` passes.
    pub fn matches(&self, event_type: &str) -> bool {
        self.patterns.is_empty()
            || self.patterns.iter().any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => pattern == event_type,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str]) -> EventFilter {
        EventFilter::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>()).expect("valid")
    }

    #[test]
    fn filters_match_types_prefixes_and_everything() {
        assert!(filter(&[]).matches("console.line"));
        assert!(filter(&["*"]).matches("build.completed"));
        let completed = filter(&["run.completed"]);
        assert!(completed.matches("run.completed") && !completed.matches("run.completed.extra"));
        let runs = filter(&["run.*"]);
        assert!(runs.matches("run.queued") && runs.matches("run.phase.started") && !runs.matches("build.started"));
        assert!(!runs.matches("runner.x"), "a prefix ends at a dot");
        for bad in ["", "run.", "*.completed", "run*", "Run.Completed", "run..x", "run. completed"] {
            assert!(EventFilter::new(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
    }
}
