//! Validation issue counts: [`ValidationAggregate`], one shape everywhere (SPEC §2.2).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bad a validation issue is. Ordered: `info < warning < error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; the value was kept.
    Info,
    /// Suspicious; the value was kept.
    Warning,
    /// Invalid.
    Error,
}

impl Severity {
    /// The spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// Issue counts of one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldIssueCounts {
    /// All issues of the field.
    pub issues_total: u64,
    /// Issues per severity.
    #[serde(default)]
    pub issues_by_severity: BTreeMap<Severity, u64>,
    /// Issues per code.
    #[serde(default)]
    pub issues_by_code: BTreeMap<String, u64>,
}

/// Validation issue counts of a table or a whole run.
///
/// Invariants: `issues_total` = Σ `issues_by_severity` = Σ `issues_by_code`; `max_severity` is
/// `null` iff `issues_total` is 0. Counts include issues that were not published as events because
/// of the per-run cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationAggregate {
    /// All issues.
    pub issues_total: u64,
    /// Issues per severity.
    #[serde(default)]
    pub issues_by_severity: BTreeMap<Severity, u64>,
    /// Issues per code.
    #[serde(default)]
    pub issues_by_code: BTreeMap<String, u64>,
    /// Issues per field (issues tied to no field are counted only above).
    #[serde(default)]
    pub issues_by_field: BTreeMap<String, FieldIssueCounts>,
    /// The worst severity seen; `null` when there are no issues.
    pub max_severity: Option<Severity>,
}

impl ValidationAggregate {
    /// Counts one issue.
    pub fn record(&mut self, severity: Severity, code: &str, field: Option<&str>) {
        self.issues_total += 1;
        *self.issues_by_severity.entry(severity).or_default() += 1;
        *self.issues_by_code.entry(code.to_owned()).or_default() += 1;
        self.max_severity = self.max_severity.max(Some(severity));
        if let Some(field) = field {
            let counts = self.issues_by_field.entry(field.to_owned()).or_default();
            counts.issues_total += 1;
            *counts.issues_by_severity.entry(severity).or_default() += 1;
            *counts.issues_by_code.entry(code.to_owned()).or_default() += 1;
        }
    }

    /// Adds another aggregate's counts to this one.
    pub fn merge(&mut self, other: &ValidationAggregate) {
        self.issues_total += other.issues_total;
        add_counts(&mut self.issues_by_severity, &other.issues_by_severity);
        add_counts(&mut self.issues_by_code, &other.issues_by_code);
        for (field, counts) in &other.issues_by_field {
            let mine = self.issues_by_field.entry(field.clone()).or_default();
            mine.issues_total += counts.issues_total;
            add_counts(&mut mine.issues_by_severity, &counts.issues_by_severity);
            add_counts(&mut mine.issues_by_code, &counts.issues_by_code);
        }
        self.max_severity = self.max_severity.max(other.max_severity);
    }

    /// Whether the SPEC §2.2 invariants hold.
    pub fn is_consistent(&self) -> bool {
        self.issues_total == self.issues_by_severity.values().sum::<u64>()
            && self.issues_total == self.issues_by_code.values().sum::<u64>()
            && (self.max_severity.is_none() == (self.issues_total == 0))
            && self.max_severity == self.issues_by_severity.iter().filter(|(_, n)| **n > 0).map(|(s, _)| *s).max()
    }
}

fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (key, n) in from {
        *into.entry(key.clone()).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_merge_keep_the_invariants() {
        let mut a = ValidationAggregate::default();
        assert!(a.is_consistent());
        assert_eq!(
            serde_json::to_value(&a).ok().and_then(|v| v.get("max_severity").cloned()),
            Some(serde_json::Value::Null)
        );
        a.record(Severity::Warning, "invalid_email", Some("email"));
        a.record(Severity::Error, "missing_required_value", Some("member_id"));
        let mut b = ValidationAggregate::default();
        b.record(Severity::Warning, "invalid_email", Some("email"));
        b.record(Severity::Info, "trimmed", None);
        a.merge(&b);
        assert!(a.is_consistent());
        assert_eq!(a.issues_total, 4);
        assert_eq!(a.max_severity, Some(Severity::Error));
        assert_eq!(a.issues_by_code.get("invalid_email"), Some(&2));
        assert_eq!(a.issues_by_field.get("email").map(|f| f.issues_total), Some(2));
        assert_eq!(a.issues_by_field.len(), 2, "issues without a field are not per-field");
    }
}
