//! The run summary model (SPEC §7), schema id `ade.run_summary/v1`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{BuildReason, ConfigurationId, RunId, Severity, Timestamp, WorkspaceId};
use crate::run::{RunStatus, Stage};

/// The schema id every summary carries.
pub const RUN_SUMMARY_SCHEMA: &str = "ade.run_summary/v1";
/// The version of the summary's shape.
pub const RUN_SUMMARY_VERSION: &str = "1.0.0";

/// What a run did, folded from its event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    /// Always `ade.run_summary/v1`.
    pub schema: String,
    /// The version of the summary's shape, `1.0.0`.
    pub version: String,
    /// The run's identity, outcome and timing.
    pub run: SummaryRun,
    /// Totals over the whole run.
    pub core: SummaryCore,
    /// Totals per file and per field.
    pub breakdowns: SummaryBreakdowns,
    /// What was left out or shortened to keep the summary within its bounds (`summary::bounds`),
    /// so that `run.completed` always fits in one event; absent when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<SummaryTruncation>,
}

/// Which parts of a run summary were cut to keep it within its bounds, by place
/// (`core.issue_counts_by_code`, `breakdowns.by_field`, `breakdowns.by_field[].label`, …; `[]`
/// sums over the list's entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryTruncation {
    /// Entries left out of a list or a map, by place: how many.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub omitted: BTreeMap<String, u64>,
    /// Texts cut short (and marked `…[truncated N bytes]`), by place: how many.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shortened: BTreeMap<String, u64>,
}

/// The run part of a [`RunSummary`]. Fields without a value are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryRun {
    /// The run.
    pub id: RunId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Its configuration.
    pub configuration_id: ConfigurationId,
    /// Content hash of the configuration (`sha256:…`).
    pub configuration_version: Option<String>,
    /// The run's status when the summary was made.
    pub status: RunStatus,
    /// The failure's code, when it failed.
    pub failure_code: Option<String>,
    /// The failure's stage, when it failed.
    pub failure_stage: Option<Stage>,
    /// The failure's message, when it failed.
    pub failure_message: Option<String>,
    /// From `run.started`.
    pub engine_version: Option<String>,
    /// From `run.started`: the configuration's own version.
    pub config_version: Option<String>,
    /// From `build.completed` / `build.created`.
    pub env_reason: Option<BuildReason>,
    /// From `build.completed` / `build.created`.
    pub env_reused: Option<bool>,
    /// `created_at` of `run.started`.
    pub started_at: Option<Timestamp>,
    /// When the run ended.
    pub completed_at: Option<Timestamp>,
    /// From `started_at` to `completed_at`.
    pub duration_seconds: Option<f64>,
}

/// Totals over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryCore {
    /// Distinct `source_file`s.
    pub input_file_count: u64,
    /// Distinct `(source_file, source_sheet)`s.
    pub input_sheet_count: u64,
    /// Tables (by `table_id`).
    pub table_count: u64,
    /// Σ rows of the tables.
    pub row_count: u64,
    /// Fields of the configuration.
    pub canonical_field_count: u64,
    /// Required fields of the configuration.
    pub required_field_count: u64,
    /// Fields satisfied in some table.
    pub mapped_field_count: u64,
    /// Σ unmapped columns of the tables.
    pub unmapped_column_count: u64,
    /// All validation issues.
    pub validation_issue_count_total: u64,
    /// Issues per severity.
    pub issue_counts_by_severity: BTreeMap<Severity, u64>,
    /// Issues per code.
    pub issue_counts_by_code: BTreeMap<String, u64>,
}

/// Totals per file and per field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryBreakdowns {
    /// One entry per source file, sorted by `source_file`.
    pub by_file: Vec<FileBreakdown>,
    /// One entry per configured field, in configuration order.
    pub by_field: Vec<FieldBreakdown>,
}

/// Totals of one source file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileBreakdown {
    /// The file.
    pub source_file: String,
    /// Its tables.
    pub table_count: u64,
    /// Σ rows of its tables.
    pub row_count: u64,
    /// Its validation issues.
    pub validation_issue_count_total: u64,
    /// Issues per severity.
    pub issue_counts_by_severity: BTreeMap<Severity, u64>,
    /// Issues per code.
    pub issue_counts_by_code: BTreeMap<String, u64>,
}

/// Totals of one configured field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldBreakdown {
    /// The field's name.
    pub field: String,
    /// The field's label (its name when the configuration gives none).
    pub label: String,
    /// Whether the field is required.
    pub required: bool,
    /// Whether it was satisfied in some table.
    pub mapped: bool,
    /// The highest score where it was satisfied; `null` when it never was.
    pub max_score: Option<f64>,
    /// Its validation issues.
    pub validation_issue_count_total: u64,
    /// Issues per severity.
    pub issue_counts_by_severity: BTreeMap<Severity, u64>,
    /// Issues per code.
    pub issue_counts_by_code: BTreeMap<String, u64>,
}

pub mod bounds;
mod builder;

pub use builder::{ConfiguredField, RunOutcomeInfo, RunSummaryBuilder};
