//! [`RunSummaryBuilder`]: folds a run's events into a [`RunSummary`] (SPEC §7).
//!
//! The builder is a pure, incremental fold: feed it the run's events in sequence order with
//! [`push`](RunSummaryBuilder::push), and ask for a [`RunSummary`] at any point with
//! [`summary`](RunSummaryBuilder::summary) — a live partial summary while the run is active, or the
//! final one once the orchestrator knows the run's outcome. It never fails and never panics, whatever
//! the events say.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Configuration, EngineSpec, FieldSpec};
use crate::event::{
    BuildEnv, BuildReason, BuildStatus, ConfigurationId, Envelope, EventPayload, FieldIssueCounts, RunCompleted, RunId,
    Severity, TableSummary, Timestamp, ValidationAggregate, WorkspaceId,
};
use crate::run::{Failure, RunStatus};
use crate::summary::{
    FieldBreakdown, FileBreakdown, RUN_SUMMARY_SCHEMA, RUN_SUMMARY_VERSION, RunSummary, SummaryBreakdowns, SummaryCore,
    SummaryRun,
};

/// A canonical field of the run's configuration, as the summary needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredField {
    /// The field's name.
    pub name: String,
    /// Its label (the name when the configuration gives none).
    pub label: String,
    /// Whether it is required.
    pub required: bool,
}

impl ConfiguredField {
    /// A field named `name`, labelled `label` (the name when `None`).
    pub fn new(name: impl Into<String>, label: Option<String>, required: bool) -> Self {
        let name = name.into();
        let label = label.unwrap_or_else(|| name.clone());
        Self { name, label, required }
    }
}

impl From<&FieldSpec> for ConfiguredField {
    fn from(spec: &FieldSpec) -> Self {
        Self::new(spec.name.clone(), spec.label.clone(), spec.required)
    }
}

/// How the run ended, as the orchestrator knows it (SPEC §7 rule 6).
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcomeInfo {
    /// The run's status.
    pub status: RunStatus,
    /// Why it failed, when the orchestrator knows.
    pub failure: Option<Failure>,
    /// When it ended.
    pub completed_at: Option<Timestamp>,
}

impl From<&RunCompleted> for RunOutcomeInfo {
    /// The outcome a `run.completed` payload reports.
    fn from(completed: &RunCompleted) -> Self {
        Self {
            status: completed.status.into(),
            failure: completed.failure.clone(),
            completed_at: Some(completed.execution.completed_at),
        }
    }
}

/// What the summary needs of one `run.table.summary`.
#[derive(Debug, Clone)]
struct TableFacts {
    source_file: String,
    source_sheet: String,
    row_count: u64,
    unmapped_column_count: u64,
    /// `(field, score)` of every mapped column with `is_satisfied`.
    satisfied: Vec<(String, f64)>,
    validation: ValidationAggregate,
}

impl From<&TableSummary> for TableFacts {
    fn from(table: &TableSummary) -> Self {
        Self {
            source_file: table.source_file.clone(),
            source_sheet: table.source_sheet.clone(),
            row_count: table.row_count,
            unmapped_column_count: table.unmapped_column_count,
            satisfied: table
                .mapping
                .mapped_columns
                .iter()
                .filter(|column| column.is_satisfied)
                .map(|column| (column.field.clone(), column.score))
                .collect(),
            validation: table.validation.clone(),
        }
    }
}

/// A pure, incremental fold of a run's events into its summary (SPEC §7).
///
/// Feed the run's events in sequence order with [`push`](Self::push); ask for the summary at any point
/// with [`summary`](Self::summary). Pushing the same event twice changes nothing. Events of another run,
/// and event types the summary does not use (console lines, phases, issues, `x.*`, unknown types),
/// are ignored.
///
/// ```
/// use ade_model::event::{ConfigurationId, Envelope, RunId, WorkspaceId};
/// use ade_model::run::RunStatus;
/// use ade_model::summary::{ConfiguredField, RunOutcomeInfo, RunSummaryBuilder};
///
/// let line = r#"{"type":"run.queued","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N",
///   "created_at":"2026-11-26T18:52:57.145320Z","sequence":1,"source":"api","workspace_id":"acme",
///   "configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T",
///   "payload":{"status":"queued","mode":"execute","options":{}}}"#;
/// let event: Envelope = serde_json::from_str(line)?;
/// let fields = vec![ConfiguredField::new("email", Some("E-mail".to_owned()), true)];
/// let mut builder =
///     RunSummaryBuilder::new(event.run_id, event.workspace_id.clone(), event.configuration_id.clone(), fields);
/// builder.push(&event);
/// assert_eq!(builder.summary(None).run.status, RunStatus::Queued);
/// assert_eq!(builder.summary(None).core.required_field_count, 1);
///
/// let outcome = RunOutcomeInfo { status: RunStatus::Cancelled, failure: None, completed_at: None };
/// assert_eq!(builder.summary(Some(&outcome)).run.status, RunStatus::Cancelled);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RunSummaryBuilder {
    run_id: RunId,
    workspace_id: WorkspaceId,
    configuration_id: ConfigurationId,
    configuration_version: Option<String>,
    fields: Vec<ConfiguredField>,
    /// The furthest non-terminal status the events show (`queued`, `building`, `running`).
    progress: RunStatus,
    /// Tables by `table_id` (rule 1).
    tables: BTreeMap<String, TableFacts>,
    /// The last `run.validation.summary` (rule 4).
    run_validation: Option<ValidationAggregate>,
    engine_version: Option<String>,
    config_version: Option<String>,
    /// `created_at` of `run.started`.
    started_at: Option<Timestamp>,
    /// `reason` and `should_build` of `build.created`.
    build_created: Option<(BuildReason, bool)>,
    /// `env` of `build.completed`.
    build_env: Option<BuildEnv>,
    /// Whether `build.completed` said `reused`.
    build_reused: bool,
    /// The last `run.error`, as a failure.
    last_error: Option<Failure>,
    /// What `run.completed` said, once seen.
    completed: Option<RunOutcomeInfo>,
}

impl RunSummaryBuilder {
    /// A builder for one run, with its configuration's fields in configuration order.
    pub fn new(
        run_id: RunId,
        workspace_id: WorkspaceId,
        configuration_id: ConfigurationId,
        fields: Vec<ConfiguredField>,
    ) -> Self {
        Self {
            run_id,
            workspace_id,
            configuration_id,
            configuration_version: None,
            fields,
            progress: RunStatus::Queued,
            tables: BTreeMap::new(),
            run_validation: None,
            engine_version: None,
            config_version: None,
            started_at: None,
            build_created: None,
            build_env: None,
            build_reused: false,
            last_error: None,
            completed: None,
        }
    }

    /// Sets the content hash of the run's configuration (`run.configuration_version`).
    #[must_use]
    pub fn with_configuration_version(mut self, configuration_version: Option<String>) -> Self {
        self.configuration_version = configuration_version;
        self
    }

    /// The canonical fields of a configuration, in order: an `extract` configuration's `fields`
    /// (label = label, or the name); none for other engines.
    pub fn fields_of(configuration: &Configuration) -> Vec<ConfiguredField> {
        // Only `extract` declares fields; any other engine (`process`, and whatever comes later) has none.
        match &configuration.engine {
            EngineSpec::Extract(spec) => spec.fields.iter().map(ConfiguredField::from).collect(),
            _ => Vec::new(),
        }
    }

    /// The configured fields the summary reports, in configuration order.
    pub fn fields(&self) -> &[ConfiguredField] {
        &self.fields
    }

    /// Feeds the next event, in sequence order.
    ///
    /// Events of another run and types the summary does not use are ignored; nothing here panics.
    pub fn push(&mut self, event: &Envelope) {
        if event.run_id != self.run_id {
            return;
        }
        match &event.payload {
            EventPayload::RunQueued(_) => self.advance(RunStatus::Queued),
            EventPayload::BuildCreated(created) => {
                self.build_created = Some((created.reason, created.should_build));
            }
            EventPayload::BuildStarted(_) => self.advance(RunStatus::Building),
            EventPayload::BuildCompleted(completed) => {
                if let Some(env) = &completed.env {
                    self.build_env = Some(env.clone());
                }
                self.build_reused = completed.status == BuildStatus::Reused;
            }
            EventPayload::RunStarted(started) => {
                self.advance(RunStatus::Running);
                self.started_at = Some(event.created_at);
                self.engine_version = started.engine_version.clone();
                self.config_version = started.config_version.clone();
            }
            EventPayload::RunTableSummary(table) => {
                self.tables.insert(table.table_id.clone(), TableFacts::from(table));
            }
            EventPayload::RunValidationSummary(aggregate) => self.run_validation = Some(aggregate.clone()),
            EventPayload::RunError(error) => {
                self.last_error =
                    Some(Failure { stage: error.stage, code: error.code.clone(), message: error.message.clone() });
            }
            EventPayload::RunCompleted(completed) => {
                // Terminal states are final: a second `run.completed` (which the contract forbids)
                // does not change the first.
                if self.completed.is_none() {
                    self.completed = Some(RunOutcomeInfo::from(completed.as_ref()));
                }
            }
            EventPayload::BuildPhaseStarted(_)
            | EventPayload::BuildPhaseCompleted(_)
            | EventPayload::ConsoleLine(_)
            | EventPayload::RunPhaseStarted(_)
            | EventPayload::RunPhaseCompleted(_)
            | EventPayload::RunValidationIssue(_)
            | EventPayload::Extension { .. }
            | EventPayload::Unknown { .. } => {}
        }
    }

    /// Moves the live status forward to `status`, never back.
    fn advance(&mut self, status: RunStatus) {
        let rank = |s: RunStatus| match s {
            RunStatus::Queued => 0,
            RunStatus::Building => 1,
            _ => 2,
        };
        if rank(status) > rank(self.progress) {
            self.progress = status;
        }
    }

    /// The summary of the events pushed so far.
    ///
    /// With `outcome` (the orchestrator's, at the end of the run), its status, failure and completion
    /// time win. Without it, the status is the one `run.completed` reported if it was seen, otherwise
    /// the live one: `queued`, then `building` after `build.started`, then `running` after
    /// `run.started`. A failed run without failure details takes them from the last `run.error`.
    ///
    /// The summary is kept within the [`bounds`](crate::summary::bounds) of a summary: what does
    /// not fit is left out or cut short, and `truncated` says what.
    pub fn summary(&self, outcome: Option<&RunOutcomeInfo>) -> RunSummary {
        let mut summary = RunSummary {
            schema: RUN_SUMMARY_SCHEMA.to_owned(),
            version: RUN_SUMMARY_VERSION.to_owned(),
            run: self.run_part(outcome),
            core: self.core_part(),
            breakdowns: SummaryBreakdowns { by_file: self.by_file(), by_field: self.by_field() },
            truncated: None,
        };
        summary.bound();
        summary
    }

    /// `run`: identity, outcome (rule 6), build environment (rule 7) and timing.
    fn run_part(&self, outcome: Option<&RunOutcomeInfo>) -> SummaryRun {
        let (status, failure, completed_at) = match (outcome, &self.completed) {
            (Some(outcome), seen) => (
                outcome.status,
                outcome.failure.clone(),
                outcome.completed_at.or(seen.as_ref().and_then(|c| c.completed_at)),
            ),
            (None, Some(seen)) => (seen.status, seen.failure.clone(), seen.completed_at),
            (None, None) => (self.progress, None, None),
        };
        let failure = match failure {
            None if status == RunStatus::Failed => self.last_error.clone(),
            failure => failure,
        };
        let (env_reason, env_reused) = self.env();
        let duration_seconds = match (self.started_at, completed_at) {
            (Some(started), Some(completed)) => {
                let micros = completed.unix_micros().saturating_sub(started.unix_micros()).max(0);
                // Microseconds since the epoch fit an f64 exactly up to ~285 years.
                Some(micros as f64 / 1_000_000.0)
            }
            _ => None,
        };
        let (failure_stage, failure_code, failure_message) = match failure {
            Some(Failure { stage, code, message }) => (Some(stage), Some(code), Some(message)),
            None => (None, None, None),
        };
        SummaryRun {
            id: self.run_id,
            workspace_id: self.workspace_id.clone(),
            configuration_id: self.configuration_id.clone(),
            configuration_version: self.configuration_version.clone(),
            status,
            failure_code,
            failure_stage,
            failure_message,
            engine_version: self.engine_version.clone(),
            config_version: self.config_version.clone(),
            env_reason,
            env_reused,
            started_at: self.started_at,
            completed_at,
            duration_seconds,
        }
    }

    /// Rule 7: `build.created` gives the reason and `!should_build`; `build.completed.env` overrides
    /// both; `build.completed{reused}` means reused.
    fn env(&self) -> (Option<BuildReason>, Option<bool>) {
        let mut reason = self.build_created.map(|(reason, _)| reason);
        let mut reused = self.build_created.map(|(_, should_build)| !should_build);
        if let Some(env) = &self.build_env {
            reason = Some(env.reason);
            reused = Some(env.reused);
        }
        if self.build_reused {
            reused = Some(true);
        }
        (reason, reused)
    }

    /// The run's validation counts: the last `run.validation.summary`, else the tables' sum (rule 4).
    fn run_validation(&self) -> ValidationAggregate {
        match &self.run_validation {
            Some(aggregate) => aggregate.clone(),
            None => {
                let mut total = ValidationAggregate::default();
                for table in self.tables.values() {
                    merge_saturating(&mut total, &table.validation);
                }
                total
            }
        }
    }

    /// The best score of every field satisfied in some table (rule 3).
    fn mapped_fields(&self) -> BTreeMap<&str, f64> {
        let mut best: BTreeMap<&str, f64> = BTreeMap::new();
        for (field, score) in self.tables.values().flat_map(|table| &table.satisfied) {
            best.entry(field.as_str()).and_modify(|b| *b = b.max(*score)).or_insert(*score);
        }
        best
    }

    /// `core`: rules 2, 3 and 4.
    fn core_part(&self) -> SummaryCore {
        let files: BTreeSet<&str> = self.tables.values().map(|t| t.source_file.as_str()).collect();
        let sheets: BTreeSet<(&str, &str)> =
            self.tables.values().map(|t| (t.source_file.as_str(), t.source_sheet.as_str())).collect();
        let mapped = self.mapped_fields();
        let validation = self.run_validation();
        SummaryCore {
            input_file_count: count(files.len()),
            input_sheet_count: count(sheets.len()),
            table_count: count(self.tables.len()),
            row_count: self.tables.values().fold(0, |sum: u64, t| sum.saturating_add(t.row_count)),
            canonical_field_count: count(self.fields.len()),
            required_field_count: count(self.fields.iter().filter(|f| f.required).count()),
            mapped_field_count: count(self.fields.iter().filter(|f| mapped.contains_key(f.name.as_str())).count()),
            unmapped_column_count: self
                .tables
                .values()
                .fold(0, |sum: u64, t| sum.saturating_add(t.unmapped_column_count)),
            validation_issue_count_total: validation.issues_total,
            issue_counts_by_severity: validation.issues_by_severity,
            issue_counts_by_code: validation.issues_by_code,
        }
    }

    /// `breakdowns.by_file`: from the tables only, sorted by `source_file` (rules 4 and 5).
    fn by_file(&self) -> Vec<FileBreakdown> {
        let mut files: BTreeMap<&str, FileBreakdown> = BTreeMap::new();
        for table in self.tables.values() {
            let file = files
                .entry(table.source_file.as_str())
                .or_insert_with(|| FileBreakdown { source_file: table.source_file.clone(), ..Default::default() });
            file.table_count = file.table_count.saturating_add(1);
            file.row_count = file.row_count.saturating_add(table.row_count);
            file.validation_issue_count_total =
                file.validation_issue_count_total.saturating_add(table.validation.issues_total);
            add_counts(&mut file.issue_counts_by_severity, &table.validation.issues_by_severity);
            add_counts(&mut file.issue_counts_by_code, &table.validation.issues_by_code);
        }
        files.into_values().collect()
    }

    /// `breakdowns.by_field`: one entry per configured field, in configuration order (rules 3–5).
    fn by_field(&self) -> Vec<FieldBreakdown> {
        let mapped = self.mapped_fields();
        let validation = self.run_validation();
        let none = FieldIssueCounts::default();
        self.fields
            .iter()
            .map(|field| {
                let max_score = mapped.get(field.name.as_str()).copied();
                let issues = validation.issues_by_field.get(&field.name).unwrap_or(&none);
                FieldBreakdown {
                    field: field.name.clone(),
                    label: field.label.clone(),
                    required: field.required,
                    mapped: max_score.is_some(),
                    max_score,
                    validation_issue_count_total: issues.issues_total,
                    issue_counts_by_severity: issues.issues_by_severity.clone(),
                    issue_counts_by_code: issues.issues_by_code.clone(),
                }
            })
            .collect()
    }
}

/// A collection's length as a count.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Adds counts, saturating instead of overflowing on absurd input.
fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (key, n) in from {
        let mine = into.entry(key.clone()).or_default();
        *mine = mine.saturating_add(*n);
    }
}

/// [`ValidationAggregate::merge`], saturating instead of overflowing on absurd input.
fn merge_saturating(into: &mut ValidationAggregate, from: &ValidationAggregate) {
    into.issues_total = into.issues_total.saturating_add(from.issues_total);
    add_counts::<Severity>(&mut into.issues_by_severity, &from.issues_by_severity);
    add_counts(&mut into.issues_by_code, &from.issues_by_code);
    for (field, counts) in &from.issues_by_field {
        let mine = into.issues_by_field.entry(field.clone()).or_default();
        mine.issues_total = mine.issues_total.saturating_add(counts.issues_total);
        add_counts(&mut mine.issues_by_severity, &counts.issues_by_severity);
        add_counts(&mut mine.issues_by_code, &counts.issues_by_code);
    }
    into.max_severity = into.max_severity.max(from.max_severity);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Artifacts, RunCompleted};
    use crate::event::{
        BuildCompleted, BuildCreated, BuildStarted, ConsoleLevel, ConsoleLine, ConsoleScope, ConsoleStream, EventId,
        EventSource, Execution, MappedColumn, RunError, RunQueued, RunStarted, TableMapping, TableMetadata,
    };
    use crate::run::{RunMode, RunOutcome, Stage};

    const HAPPY_PATH: &str = include_str!("../../../tests/data/happy_path.ndjson");
    const BUILD_FAILURE: &str = include_str!("../../../tests/data/build_failure.ndjson");

    /// 2026-11-26T18:52:57Z, in microseconds since the epoch.
    const T0: i64 = 1_795_719_177_000_000;

    fn at_ms(ms: i64) -> Timestamp {
        Timestamp::from_unix_micros(T0 + ms * 1000).expect("in range")
    }

    /// One run's log under construction: sequences count up, each event 10 ms after the last.
    struct Log {
        run_id: RunId,
        sequence: u64,
    }

    impl Log {
        fn new() -> Self {
            Self { run_id: RunId::new(), sequence: 0 }
        }

        fn event(&mut self, payload: EventPayload) -> Envelope {
            self.sequence += 1;
            let ms = i64::try_from(self.sequence).expect("small") * 10;
            self.event_at(at_ms(ms), payload)
        }

        fn event_at(&mut self, created_at: Timestamp, payload: EventPayload) -> Envelope {
            Envelope {
                event_id: EventId::new(),
                created_at,
                sequence: self.sequence,
                source: EventSource::Engine,
                workspace_id: WorkspaceId::new("acme").expect("valid"),
                configuration_id: ConfigurationId::new("members").expect("valid"),
                run_id: self.run_id,
                build_id: None,
                payload,
            }
        }

        fn builder_with(&self, fields: Vec<ConfiguredField>) -> RunSummaryBuilder {
            RunSummaryBuilder::new(
                self.run_id,
                WorkspaceId::new("acme").expect("valid"),
                ConfigurationId::new("members").expect("valid"),
                fields,
            )
        }

        /// A builder with the `members` fields: member_id*, email*, full_name, joined_on.
        fn builder(&self) -> RunSummaryBuilder {
            self.builder_with(members_fields())
        }
    }

    fn members_fields() -> Vec<ConfiguredField> {
        vec![
            ConfiguredField::new("member_id", Some("Member ID".to_owned()), true),
            ConfiguredField::new("email", Some("E-mail".to_owned()), true),
            ConfiguredField::new("full_name", Some("Full name".to_owned()), false),
            ConfiguredField::new("joined_on", None, false),
        ]
    }

    fn fold(builder: &mut RunSummaryBuilder, events: &[Envelope]) {
        for event in events {
            builder.push(event);
        }
    }

    fn queued() -> EventPayload {
        EventPayload::RunQueued(RunQueued::default())
    }

    fn build_created(reason: BuildReason, should_build: bool) -> EventPayload {
        EventPayload::BuildCreated(BuildCreated {
            status: Default::default(),
            reason,
            should_build,
            fingerprint: "sha256:00".to_owned(),
            extra: Default::default(),
        })
    }

    fn build_started(reason: BuildReason) -> EventPayload {
        EventPayload::BuildStarted(BuildStarted { status: Default::default(), reason, extra: Default::default() })
    }

    fn build_completed(status: BuildStatus, env: Option<BuildEnv>) -> EventPayload {
        EventPayload::BuildCompleted(BuildCompleted {
            status,
            duration_ms: Some(23),
            exit_code: None,
            summary: None,
            env,
            error: None,
            extra: Default::default(),
        })
    }

    fn run_started(env: Option<BuildEnv>) -> EventPayload {
        EventPayload::RunStarted(RunStarted {
            status: Default::default(),
            mode: RunMode::Execute,
            engine_version: Some("0.1.0".to_owned()),
            config_version: Some("3".to_owned()),
            env,
            extra: Default::default(),
        })
    }

    fn console() -> EventPayload {
        EventPayload::ConsoleLine(ConsoleLine {
            scope: ConsoleScope::Run,
            stream: ConsoleStream::Stdout,
            level: ConsoleLevel::Info,
            message: "working".to_owned(),
            phase: None,
            logger: None,
            engine_timestamp: None,
            extra: Default::default(),
        })
    }

    fn run_error(stage: Stage, code: &str, message: &str) -> EventPayload {
        EventPayload::RunError(RunError {
            stage,
            code: code.to_owned(),
            message: message.to_owned(),
            phase: None,
            details: None,
            extra: Default::default(),
        })
    }

    fn run_completed(status: RunOutcome, failure: Option<Failure>, completed_at: Timestamp) -> EventPayload {
        let placeholder = Log::new().builder().summary(None);
        EventPayload::RunCompleted(Box::new(RunCompleted {
            status,
            failure,
            execution: Execution { exit_code: None, started_at: None, completed_at, duration_ms: 0 },
            artifacts: Artifacts { output_paths: Vec::new(), events_path: "logs/events.ndjson".to_owned() },
            summary: placeholder,
            event_count: 0,
            extra: Default::default(),
        }))
    }

    type Issue<'a> = (Severity, &'a str, Option<&'a str>);

    fn aggregate(issues: &[Issue<'_>]) -> ValidationAggregate {
        let mut aggregate = ValidationAggregate::default();
        for (severity, code, field) in issues {
            aggregate.record(*severity, code, *field);
        }
        aggregate
    }

    fn validation_summary(issues: &[Issue<'_>]) -> EventPayload {
        EventPayload::RunValidationSummary(aggregate(issues))
    }

    /// A `run.table.summary`; `mapped` is `(field, score, is_satisfied)`.
    fn table(
        table_id: &str,
        source: (&str, &str),
        row_count: u64,
        mapped: &[(&str, f64, bool)],
        unmapped_column_count: u64,
        issues: &[Issue<'_>],
    ) -> EventPayload {
        let mapped_columns: Vec<MappedColumn> = mapped
            .iter()
            .enumerate()
            .map(|(i, (field, score, is_satisfied))| MappedColumn {
                field: (*field).to_owned(),
                header: if *is_satisfied { format!("col {i}") } else { String::new() },
                source_column_index: if *is_satisfied { i64::try_from(i).expect("small") } else { -1 },
                score: *score,
                is_required: false,
                is_satisfied: *is_satisfied,
            })
            .collect();
        let satisfied = mapped.iter().filter(|m| m.2).count() as u64;
        EventPayload::RunTableSummary(TableSummary {
            table_id: table_id.to_owned(),
            source_file: source.0.to_owned(),
            source_sheet: source.1.to_owned(),
            row_count,
            column_count: unmapped_column_count.saturating_add(satisfied),
            mapped_field_count: satisfied,
            mapping: TableMapping { mapped_columns, unmapped_columns: Vec::new() },
            unmapped_column_count,
            validation: aggregate(issues),
            metadata: TableMetadata {
                header_row: 1,
                first_data_row: 2,
                last_data_row: row_count.saturating_add(1),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn field<'a>(summary: &'a RunSummary, name: &str) -> &'a FieldBreakdown {
        summary.breakdowns.by_field.iter().find(|f| f.field == name).expect("configured field")
    }

    fn counts<K: Ord + Clone>(pairs: &[(K, u64)]) -> BTreeMap<K, u64> {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn rule_1_a_repeated_table_id_replaces_the_earlier_one() {
        let mut log = Log::new();
        let mut builder = log.builder();
        let first = log.event(table(
            "tbl_0_0_0",
            ("a.csv", "a"),
            10,
            &[("email", 0.9, true)],
            4,
            &[(Severity::Error, "invalid_email", Some("email"))],
        ));
        let second = log.event(table("tbl_0_0_0", ("b.csv", "b"), 3, &[("email", 0.5, false)], 1, &[]));
        builder.push(&first);
        assert_eq!(builder.summary(None).core.row_count, 10);
        builder.push(&second);

        let summary = builder.summary(None);
        assert_eq!(summary.core.table_count, 1);
        assert_eq!(summary.core.row_count, 3);
        assert_eq!(summary.core.input_file_count, 1);
        assert_eq!(summary.core.unmapped_column_count, 1);
        assert_eq!(summary.core.mapped_field_count, 0, "the replaced table's mapping is gone");
        assert_eq!(summary.core.validation_issue_count_total, 0, "the replaced table's issues are gone");
        assert_eq!(field(&summary, "email").max_score, None);
        let files: Vec<&str> = summary.breakdowns.by_file.iter().map(|f| f.source_file.as_str()).collect();
        assert_eq!(files, ["b.csv"]);
    }

    #[test]
    fn rule_2_files_sheets_tables_and_rows() {
        let mut log = Log::new();
        let mut builder = log.builder();
        let empty = builder.summary(None).core;
        assert_eq!(
            (empty.input_file_count, empty.input_sheet_count, empty.table_count, empty.row_count),
            (0, 0, 0, 0),
            "no tables: all zero"
        );

        let events = [
            log.event(table("tbl_0_0_0", ("a.xlsx", "Sheet1"), 10, &[], 0, &[])),
            log.event(table("tbl_0_0_1", ("a.xlsx", "Sheet1"), 5, &[], 0, &[])),
            log.event(table("tbl_0_1_0", ("a.xlsx", "Sheet2"), 7, &[], 0, &[])),
            log.event(table("tbl_1_0_0", ("b.csv", "b"), 3, &[], 0, &[])),
            // Same sheet name as in a.xlsx, but another file: another sheet.
            log.event(table("tbl_2_0_0", ("c.xlsx", "Sheet1"), 0, &[], 0, &[])),
        ];
        fold(&mut builder, &events);
        let core = builder.summary(None).core;
        assert_eq!(core.input_file_count, 3);
        assert_eq!(core.input_sheet_count, 4);
        assert_eq!(core.table_count, 5);
        assert_eq!(core.row_count, 25);
    }

    #[test]
    fn rule_3_mapped_fields_max_score_and_unmapped_columns() {
        let mut log = Log::new();
        let mut builder = log.builder();
        let events = [
            log.event(table(
                "tbl_0_0_0",
                ("a.csv", "a"),
                1,
                &[
                    ("member_id", 0.6, true),
                    ("email", 0.8, true),
                    ("full_name", 0.95, false),
                    ("joined_on", 0.0, false),
                ],
                2,
                &[],
            )),
            log.event(table(
                "tbl_1_0_0",
                ("b.csv", "b"),
                1,
                &[
                    ("member_id", 0.9, true),
                    ("email", 0.99, false),
                    ("full_name", 0.0, false),
                    ("joined_on", 0.0, false),
                ],
                3,
                &[],
            )),
        ];
        fold(&mut builder, &events);
        let summary = builder.summary(None);

        let member_id = field(&summary, "member_id");
        assert!(member_id.mapped);
        assert_eq!(member_id.max_score, Some(0.9), "the highest satisfied score");
        let email = field(&summary, "email");
        assert!(email.mapped);
        assert_eq!(email.max_score, Some(0.8), "an unsatisfied higher score does not count");
        let full_name = field(&summary, "full_name");
        assert!(!full_name.mapped);
        assert_eq!(full_name.max_score, None, "never satisfied: null, whatever its scores");
        assert!(!field(&summary, "joined_on").mapped);

        assert_eq!(summary.core.mapped_field_count, 2);
        assert_eq!(summary.core.unmapped_column_count, 5);
    }

    #[test]
    fn rule_4_validation_counts_from_tables_unless_a_run_validation_summary_arrives() {
        let mut log = Log::new();
        let mut builder = log.builder();
        let events = [
            log.event(table(
                "tbl_0_0_0",
                ("a.csv", "a"),
                100,
                &[],
                0,
                &[
                    (Severity::Error, "missing_required_value", Some("member_id")),
                    (Severity::Warning, "invalid_email", Some("email")),
                    (Severity::Warning, "invalid_email", Some("email")),
                ],
            )),
            log.event(table("tbl_1_0_0", ("b.csv", "b"), 10, &[], 0, &[(Severity::Info, "trimmed", None)])),
        ];
        fold(&mut builder, &events);

        // From the tables.
        let summary = builder.summary(None);
        assert_eq!(summary.core.validation_issue_count_total, 4);
        assert_eq!(
            summary.core.issue_counts_by_severity,
            counts(&[(Severity::Info, 1), (Severity::Warning, 2), (Severity::Error, 1)])
        );
        assert_eq!(
            summary.core.issue_counts_by_code,
            counts(&[
                ("invalid_email".to_owned(), 2),
                ("missing_required_value".to_owned(), 1),
                ("trimmed".to_owned(), 1)
            ])
        );
        assert_eq!(field(&summary, "member_id").validation_issue_count_total, 1);
        assert_eq!(field(&summary, "email").validation_issue_count_total, 2);
        assert_eq!(field(&summary, "email").issue_counts_by_code, counts(&[("invalid_email".to_owned(), 2)]));
        let by_file_before = summary.breakdowns.by_file.clone();
        assert_eq!(by_file_before[0].validation_issue_count_total, 3);
        assert_eq!(by_file_before[1].validation_issue_count_total, 1);

        // A run.validation.summary is authoritative for core and per-field counts (it may count
        // more, e.g. issues of tables whose summaries were never published).
        let run_summary = log.event(validation_summary(&[
            (Severity::Warning, "invalid_email", Some("email")),
            (Severity::Warning, "invalid_email", Some("email")),
            (Severity::Warning, "invalid_email", Some("email")),
            (Severity::Error, "bad_date", Some("joined_on")),
            (Severity::Info, "trimmed", None),
        ]));
        builder.push(&run_summary);
        let summary = builder.summary(None);
        assert_eq!(summary.core.validation_issue_count_total, 5);
        assert_eq!(
            summary.core.issue_counts_by_severity,
            counts(&[(Severity::Info, 1), (Severity::Warning, 3), (Severity::Error, 1)])
        );
        assert_eq!(field(&summary, "email").validation_issue_count_total, 3);
        assert_eq!(field(&summary, "joined_on").validation_issue_count_total, 1);
        assert_eq!(field(&summary, "member_id").validation_issue_count_total, 0, "absent from the summary: 0");
        assert_eq!(field(&summary, "member_id").issue_counts_by_code, BTreeMap::new());
        assert_eq!(summary.breakdowns.by_file, by_file_before, "by-file counts always come from tables");

        // The last one wins.
        let last = log.event(validation_summary(&[(Severity::Error, "missing_required_value", Some("member_id"))]));
        builder.push(&last);
        let summary = builder.summary(None);
        assert_eq!(summary.core.validation_issue_count_total, 1);
        assert_eq!(summary.core.issue_counts_by_code, counts(&[("missing_required_value".to_owned(), 1)]));
        assert_eq!(field(&summary, "member_id").validation_issue_count_total, 1);
        assert_eq!(field(&summary, "email").validation_issue_count_total, 0);
        assert_eq!(summary.breakdowns.by_file, by_file_before);
    }

    #[test]
    fn rule_5_fields_follow_the_configuration_and_files_are_sorted() {
        let configuration: Configuration = serde_json::from_value(serde_json::json!({
            "id": "members", "version": "3", "engine": "extract",
            "fields": [
                {"name": "zeta", "label": "Zeta", "required": true},
                {"name": "alpha"},
                {"name": "mid", "required": true, "type": "email"}
            ]
        }))
        .expect("extract configuration");
        let fields = RunSummaryBuilder::fields_of(&configuration);
        assert_eq!(
            fields,
            [
                ConfiguredField { name: "zeta".to_owned(), label: "Zeta".to_owned(), required: true },
                ConfiguredField { name: "alpha".to_owned(), label: "alpha".to_owned(), required: false },
                ConfiguredField { name: "mid".to_owned(), label: "mid".to_owned(), required: true },
            ]
        );
        let process: Configuration = serde_json::from_value(serde_json::json!({
            "id": "script", "version": "1", "engine": "process", "command": ["true"]
        }))
        .expect("process configuration");
        assert_eq!(RunSummaryBuilder::fields_of(&process), []);

        let mut log = Log::new();
        let mut builder = log.builder_with(fields);
        assert_eq!(builder.fields().len(), 3);
        let events = [
            // The table lists fields in another order, with `is_required` contradicting the configuration.
            log.event(table("tbl_0_0_0", ("b.csv", "b"), 1, &[("mid", 0.7, true), ("alpha", 0.5, true)], 0, &[])),
            log.event(table("tbl_1_0_0", ("a.csv", "a"), 2, &[], 0, &[])),
            log.event(table("tbl_2_0_0", ("C.csv", "C"), 3, &[], 0, &[])),
        ];
        fold(&mut builder, &events);
        let summary = builder.summary(None);

        assert_eq!(summary.core.canonical_field_count, 3);
        assert_eq!(summary.core.required_field_count, 2);
        let by_field: Vec<(&str, &str, bool, bool)> = summary
            .breakdowns
            .by_field
            .iter()
            .map(|f| (f.field.as_str(), f.label.as_str(), f.required, f.mapped))
            .collect();
        assert_eq!(
            by_field,
            [("zeta", "Zeta", true, false), ("alpha", "alpha", false, true), ("mid", "mid", true, true)]
        );
        let by_file: Vec<(&str, u64)> =
            summary.breakdowns.by_file.iter().map(|f| (f.source_file.as_str(), f.row_count)).collect();
        assert_eq!(by_file, [("C.csv", 3), ("a.csv", 2), ("b.csv", 1)], "sorted by source_file");
    }

    #[test]
    fn rule_6_status_failure_and_timing() {
        let timeout = Failure { stage: Stage::Run, code: "timeout".to_owned(), message: "too slow".to_owned() };

        // The orchestrator's outcome wins over what run.completed said.
        let mut log = Log::new();
        let mut builder = log.builder();
        let events = [
            log.event(queued()),
            log.event_at(at_ms(1_000), run_started(None)),
            log.event(run_completed(RunOutcome::Succeeded, None, at_ms(2_000))),
        ];
        fold(&mut builder, &events);
        let from_log = builder.summary(None).run;
        assert_eq!(from_log.status, RunStatus::Succeeded);
        assert_eq!(from_log.started_at, Some(at_ms(1_000)), "started_at = run.started.created_at");
        assert_eq!(from_log.completed_at, Some(at_ms(2_000)));
        assert_eq!(from_log.duration_seconds, Some(1.0));
        assert_eq!(from_log.failure_code, None);
        let outcome = RunOutcomeInfo {
            status: RunStatus::Failed,
            failure: Some(timeout.clone()),
            completed_at: Some(at_ms(3_500)),
        };
        let run = builder.summary(Some(&outcome)).run;
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(
            (run.failure_stage, run.failure_code.as_deref(), run.failure_message.as_deref()),
            (Some(Stage::Run), Some("timeout"), Some("too slow"))
        );
        assert_eq!(run.completed_at, Some(at_ms(3_500)));
        assert_eq!(run.duration_seconds, Some(2.5));
        assert_eq!((run.engine_version.as_deref(), run.config_version.as_deref()), (Some("0.1.0"), Some("3")));

        // An outcome without a completion time keeps run.completed's.
        let no_time = RunOutcomeInfo { completed_at: None, ..outcome };
        assert_eq!(builder.summary(Some(&no_time)).run.completed_at, Some(at_ms(2_000)));

        // A failed outcome without failure details takes them from the last run.error.
        let mut log = Log::new();
        let mut builder = log.builder();
        let events = [
            log.event(queued()),
            log.event(run_error(Stage::Build, "config_error", "first")),
            log.event(run_error(Stage::Run, "input_error", "members.xlsx is not a workbook")),
        ];
        fold(&mut builder, &events);
        let failed = RunOutcomeInfo { status: RunStatus::Failed, failure: None, completed_at: Some(at_ms(100)) };
        let run = builder.summary(Some(&failed)).run;
        assert_eq!(
            (run.failure_stage, run.failure_code.as_deref(), run.failure_message.as_deref()),
            (Some(Stage::Run), Some("input_error"), Some("members.xlsx is not a workbook"))
        );
        assert_eq!(run.started_at, None, "the engine never started");
        assert_eq!(run.completed_at, Some(at_ms(100)));
        assert_eq!(run.duration_seconds, None, "no started_at, no duration");
        // ... but an outcome's own failure wins over run.error.
        let with_failure = RunOutcomeInfo { failure: Some(timeout), ..failed.clone() };
        assert_eq!(builder.summary(Some(&with_failure)).run.failure_code.as_deref(), Some("timeout"));
        // ... and a succeeded run has no failure, whatever run.error said.
        let succeeded = RunOutcomeInfo { status: RunStatus::Succeeded, ..failed };
        let run = builder.summary(Some(&succeeded)).run;
        assert_eq!((run.failure_stage, run.failure_code, run.failure_message), (None, None, None));
        // ... and neither has a live run.
        assert_eq!(builder.summary(None).run.failure_code, None);

        // Without an outcome, a failed run.completed with failure null also falls back to run.error.
        let completed = log.event(run_completed(RunOutcome::Failed, None, at_ms(5_000)));
        builder.push(&completed);
        let run = builder.summary(None).run;
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.failure_code.as_deref(), Some("input_error"));
        assert_eq!(run.completed_at, Some(at_ms(5_000)));
    }

    #[test]
    fn rule_7_env_from_build_created_and_build_completed() {
        let env_of = |payloads: Vec<EventPayload>| {
            let mut log = Log::new();
            let mut builder = log.builder();
            for payload in payloads {
                let event = log.event(payload);
                builder.push(&event);
            }
            let run = builder.summary(None).run;
            (run.env_reason, run.env_reused)
        };
        let env = |reason, reused| Some(BuildEnv { reason, reused });
        use BuildReason::{CacheHit, CacheMiss, ForceRebuild};

        assert_eq!(env_of(vec![queued()]), (None, None));
        assert_eq!(env_of(vec![build_created(CacheMiss, true)]), (Some(CacheMiss), Some(false)));
        assert_eq!(env_of(vec![build_created(CacheHit, false)]), (Some(CacheHit), Some(true)));
        assert_eq!(
            env_of(vec![build_created(CacheMiss, true), build_completed(BuildStatus::Succeeded, None)]),
            (Some(CacheMiss), Some(false)),
            "build.completed without env keeps build.created's"
        );
        assert_eq!(
            env_of(vec![
                build_created(ForceRebuild, true),
                build_completed(BuildStatus::Succeeded, env(CacheHit, true))
            ]),
            (Some(CacheHit), Some(true)),
            "build.completed.env overrides both"
        );
        assert_eq!(
            env_of(vec![build_created(CacheMiss, true), build_completed(BuildStatus::Reused, None)]),
            (Some(CacheMiss), Some(true)),
            "reused implies env_reused"
        );
        assert_eq!(
            env_of(vec![build_completed(BuildStatus::Reused, env(CacheHit, false))]),
            (Some(CacheHit), Some(true)),
            "reused implies env_reused, even over env"
        );
        assert_eq!(env_of(vec![build_completed(BuildStatus::Skipped, None)]), (None, None));
        assert_eq!(
            env_of(vec![run_started(env(ForceRebuild, false))]),
            (None, None),
            "run.started's env is not a source (SPEC §7 rule 7)"
        );
    }

    #[test]
    fn live_partial_summary_mid_run() {
        let mut log = Log::new();
        let mut builder = log.builder().with_configuration_version(Some("sha256:abc".to_owned()));
        let status_after = |builder: &mut RunSummaryBuilder, event: Envelope| {
            builder.push(&event);
            builder.summary(None).run.status
        };

        assert_eq!(builder.summary(None).run.status, RunStatus::Queued, "before any event");
        assert_eq!(status_after(&mut builder, log.event(queued())), RunStatus::Queued);
        assert_eq!(
            status_after(&mut builder, log.event(build_created(BuildReason::CacheMiss, true))),
            RunStatus::Queued
        );
        assert_eq!(status_after(&mut builder, log.event(build_started(BuildReason::CacheMiss))), RunStatus::Building);
        assert_eq!(status_after(&mut builder, log.event(console())), RunStatus::Building);
        let env = Some(BuildEnv { reason: BuildReason::CacheMiss, reused: false });
        assert_eq!(
            status_after(&mut builder, log.event(build_completed(BuildStatus::Succeeded, env))),
            RunStatus::Building
        );
        let started = log.event(run_started(None));
        let started_at = started.created_at;
        assert_eq!(status_after(&mut builder, started), RunStatus::Running);
        let first_table = log.event(table(
            "tbl_0_0_0",
            ("a.csv", "a"),
            40,
            &[("email", 0.8, true)],
            1,
            &[(Severity::Warning, "invalid_email", Some("email"))],
        ));
        assert_eq!(status_after(&mut builder, first_table), RunStatus::Running);
        let error = log.event(run_error(Stage::Run, "input_error", "b.xlsx is corrupt"));
        assert_eq!(status_after(&mut builder, error), RunStatus::Running);

        let live = builder.summary(None);
        assert_eq!(live.schema, RUN_SUMMARY_SCHEMA);
        assert_eq!(live.version, RUN_SUMMARY_VERSION);
        assert_eq!(live.run.id, log.run_id);
        assert_eq!(live.run.configuration_version.as_deref(), Some("sha256:abc"));
        assert_eq!(live.run.started_at, Some(started_at));
        assert_eq!((live.run.completed_at, live.run.duration_seconds), (None, None));
        assert_eq!(live.run.failure_code, None, "a run.error does not fail a live run");
        assert_eq!((live.run.env_reason, live.run.env_reused), (Some(BuildReason::CacheMiss), Some(false)));
        assert_eq!((live.core.table_count, live.core.row_count, live.core.mapped_field_count), (1, 40, 1));
        assert_eq!(live.core.validation_issue_count_total, 1);
        assert_eq!(field(&live, "email").max_score, Some(0.8));

        let completed = log.event(run_completed(
            RunOutcome::Failed,
            Some(Failure { stage: Stage::Run, code: "input_error".to_owned(), message: "b.xlsx".to_owned() }),
            at_ms(10_000),
        ));
        assert_eq!(status_after(&mut builder, completed), RunStatus::Failed);
        let late = log.event(run_started(None));
        assert_eq!(status_after(&mut builder, late), RunStatus::Failed, "terminal is final");
    }

    #[test]
    fn feeding_one_at_a_time_equals_folding_at_the_end() {
        let events: Vec<Envelope> =
            HAPPY_PATH.lines().map(|line| serde_json::from_str(line).expect("happy path event")).collect();
        let first = events.first().expect("events");
        let new_builder = || {
            RunSummaryBuilder::new(
                first.run_id,
                first.workspace_id.clone(),
                first.configuration_id.clone(),
                members_fields(),
            )
        };
        let outcome = RunOutcomeInfo { status: RunStatus::Cancelled, failure: None, completed_at: Some(at_ms(0)) };

        let mut incremental = new_builder();
        for k in 0..=events.len() {
            if k > 0 {
                incremental.push(&events[k - 1]);
            }
            let mut at_once = new_builder();
            fold(&mut at_once, &events[..k]);
            assert_eq!(incremental.summary(None), at_once.summary(None), "after {k} events");
            assert_eq!(incremental.summary(Some(&outcome)), at_once.summary(Some(&outcome)), "after {k} events");
        }

        // Asking does not change anything, and pushing an event twice is harmless.
        let mut twice = new_builder();
        for event in &events {
            twice.push(event);
            twice.push(event);
            let _ = twice.summary(None);
        }
        assert_eq!(twice.summary(None), incremental.summary(None));
    }

    #[test]
    fn odd_input_never_panics() {
        let mut log = Log::new();
        let mut builder = log.builder();
        let ghost_issues = [
            (Severity::Error, "boo", Some("ghost")),
            (Severity::Error, "boo", Some("ghost")),
            (Severity::Warning, "invalid_email", Some("email")),
        ];
        let events = [
            // Out of order: completion first, then everything else.
            log.event_at(at_ms(0), run_completed(RunOutcome::Succeeded, None, at_ms(0))),
            log.event_at(at_ms(5_000), run_started(None)),
            log.event(build_started(BuildReason::CacheHit)),
            log.event(EventPayload::Extension {
                event_type: "x.acme.progress".to_owned(),
                payload: Default::default(),
            }),
            log.event(EventPayload::Unknown {
                event_type: "run.future".to_owned(),
                payload: serde_json::json!([1, 2]),
            }),
            // Fields the configuration does not have; absurd scores and counts; empty names.
            log.event(table(
                "",
                ("", ""),
                u64::MAX,
                &[("ghost", 1.0, true), ("email", f64::NAN, true), ("member_id", -3.0, true), ("email", 0.4, true)],
                u64::MAX,
                &ghost_issues,
            )),
            log.event(table("tbl_x", ("z", "z"), u64::MAX, &[("full_name", f64::INFINITY, true)], 7, &ghost_issues)),
        ];
        fold(&mut builder, &events);
        // An aggregate that breaks its own invariants, with counts that overflow when added up.
        let huge = ValidationAggregate {
            issues_total: u64::MAX,
            issues_by_code: counts(&[("boo".to_owned(), u64::MAX)]),
            ..Default::default()
        };
        let huge_table = TableSummary {
            table_id: "tbl_y".to_owned(),
            source_file: "z".to_owned(),
            validation: huge,
            ..Default::default()
        };
        let huge_event = log.event(EventPayload::RunTableSummary(huge_table));
        builder.push(&huge_event);

        let summary = builder.summary(None);
        assert_eq!(summary.run.status, RunStatus::Succeeded);
        assert_eq!(summary.run.duration_seconds, Some(0.0), "completed before started: clamped to 0");
        assert_eq!(summary.core.row_count, u64::MAX, "saturates");
        assert_eq!(summary.core.unmapped_column_count, u64::MAX, "saturates");
        assert_eq!(summary.core.validation_issue_count_total, u64::MAX, "saturates");
        assert_eq!(summary.core.issue_counts_by_code.get("boo"), Some(&u64::MAX), "saturates");
        let z = summary.breakdowns.by_file.iter().find(|f| f.source_file == "z").expect("file z");
        assert_eq!((z.table_count, z.validation_issue_count_total), (2, u64::MAX));
        assert_eq!(summary.core.input_file_count, 2);
        assert_eq!(summary.core.mapped_field_count, 3, "ghost is not a configured field");
        assert_eq!(summary.breakdowns.by_field.len(), 4);
        assert!(summary.breakdowns.by_field.iter().all(|f| f.field != "ghost"));
        assert_eq!(field(&summary, "email").validation_issue_count_total, 2);
        assert_eq!(field(&summary, "full_name").max_score, Some(f64::INFINITY));
        assert!(field(&summary, "email").mapped);

        // A run.validation.summary naming unconfigured fields: those entries are ignored in by_field.
        let ghost_summary = log.event(validation_summary(&ghost_issues));
        builder.push(&ghost_summary);
        let summary = builder.summary(None);
        assert_eq!(summary.core.validation_issue_count_total, 3, "core counts still include them");
        assert_eq!(summary.breakdowns.by_field.iter().map(|f| f.validation_issue_count_total).sum::<u64>(), 1);

        // Events of another run are not this run's.
        let mut other = Log::new();
        let foreign = other.event(table("tbl_0_0_0", ("other.csv", "o"), 1, &[], 0, &[]));
        builder.push(&foreign);
        assert_eq!(builder.summary(None), summary);

        // No fields at all, duplicated fields, an outcome that is not terminal.
        let mut empty = log.builder_with(Vec::new());
        fold(&mut empty, &events);
        assert_eq!(empty.summary(None).breakdowns.by_field, []);
        let mut twice = log.builder_with([members_fields(), members_fields()].concat());
        fold(&mut twice, &events);
        assert_eq!(twice.summary(None).core.canonical_field_count, 8);
        assert_eq!(twice.summary(None).core.mapped_field_count, 6);
        let running = RunOutcomeInfo { status: RunStatus::Running, failure: None, completed_at: None };
        assert_eq!(twice.summary(Some(&running)).run.status, RunStatus::Running);
    }

    /// The `members` configuration of the logs in `tests/data`.
    fn members_configuration() -> Configuration {
        serde_json::from_value(serde_json::json!({
            "id": "members", "version": "3", "engine": "extract",
            "fields": [
                {"name": "member_id", "label": "Member ID", "required": true},
                {"name": "email", "label": "E-mail", "required": true, "type": "email"},
                {"name": "full_name", "label": "Full name"},
                {"name": "joined_on", "type": "date"}
            ]
        }))
        .expect("members configuration")
    }

    /// Folds a log from `tests/data`; returns its builder and its `run.completed` payload.
    fn fold_log(text: &str) -> (RunSummaryBuilder, RunCompleted) {
        let events: Vec<Envelope> =
            text.lines().map(|line| serde_json::from_str(line).expect("event of the log")).collect();
        let Some(EventPayload::RunCompleted(completed)) = events.last().map(|e| e.payload.clone()) else {
            panic!("the log ends with run.completed")
        };
        let first = events.first().expect("events");
        let mut builder = RunSummaryBuilder::new(
            first.run_id,
            first.workspace_id.clone(),
            first.configuration_id.clone(),
            RunSummaryBuilder::fields_of(&members_configuration()),
        )
        .with_configuration_version(completed.summary.run.configuration_version.clone());
        fold(&mut builder, &events);
        (builder, *completed)
    }

    #[test]
    fn happy_path_log_reproduces_its_summary() {
        let (builder, completed) = fold_log(HAPPY_PATH);
        let expected = &completed.summary;
        let outcome = RunOutcomeInfo::from(&completed);
        let summary = builder.summary(Some(&outcome));
        assert_eq!(builder.summary(None), summary, "run.completed says what the outcome says");

        assert_eq!(summary.core, expected.core);
        assert_eq!(summary.breakdowns, expected.breakdowns);

        // duration_seconds = completed_at − started_at (58.602907 − 57.834150).
        assert_eq!(summary.run.duration_seconds, Some(0.768_757));
        assert_eq!(summary.run, expected.run);
    }

    #[test]
    fn build_failure_log_reproduces_its_summary() {
        let (builder, completed) = fold_log(BUILD_FAILURE);
        let expected = &completed.summary;
        let summary = builder.summary(Some(&RunOutcomeInfo::from(&completed)));
        assert_eq!(builder.summary(None), summary);

        assert_eq!(summary.core, expected.core);
        assert_eq!(summary.breakdowns, expected.breakdowns);

        // env_reason comes from build.created{force_rebuild} (build.completed has no env).
        assert_eq!(summary.run.env_reason, Some(BuildReason::ForceRebuild));
        let expected_run = expected.run.clone();
        assert_eq!(summary.run, expected_run);
        assert_eq!(summary.run.failure_code.as_deref(), Some("build_failed"));

        // Without the failure in the outcome, run.error supplies the same details.
        let bare = RunOutcomeInfo { failure: None, ..RunOutcomeInfo::from(&completed) };
        assert_eq!(builder.summary(Some(&bare)).run, expected_run);
    }
}
