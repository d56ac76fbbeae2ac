/* eslint-disable */
/**
 * Generated from ade's schemas/ by json-schema-to-typescript (tests/typescript/generate.mjs).
 * Do not edit: run `UPDATE_SCHEMAS=1 cargo test --test it typescript` instead.
 */

/**
 * One event of a run's log: a catalog type (SPEC §2) or an extension type `x.<name>`.
 */
export type Envelope =
  | RunQueuedEvent
  | BuildCreatedEvent
  | BuildStartedEvent
  | BuildPhaseStartedEvent
  | BuildPhaseCompletedEvent
  | BuildCompletedEvent
  | ConsoleLineEvent
  | RunStartedEvent
  | RunPhaseStartedEvent
  | RunPhaseCompletedEvent
  | RunTableSummaryEvent
  | RunValidationIssueEvent
  | RunValidationSummaryEvent
  | RunErrorEvent
  | RunCompletedEvent
  | ExtensionEvent;
/**
 * `build_` followed by a ULID (26 Crockford base32 characters).
 */
export type BuildId = string;
export type ConfigurationId = string;
/**
 * RFC 3339 UTC with microseconds, e.g. 2026-11-26T18:52:57.802612Z.
 */
export type Timestamp = string;
/**
 * `evt_` followed by a ULID (26 Crockford base32 characters).
 */
export type EventId = string;
export type RunQueuedPayload = RunQueued;
/**
 * What the engine is asked to do.
 */
export type RunMode = "execute" | "validate_only" | "dry_run";
/**
 * The constant `status` of `run.queued` and `build.created`: `"queued"`.
 */
export type QueuedStatus = "queued";
/**
 * `run_` followed by a ULID (26 Crockford base32 characters).
 */
export type RunId = string;
/**
 * Who emitted an event.
 */
export type EventSource = "api" | "engine" | "worker";
export type WorkspaceId = string;
export type BuildCreatedPayload = BuildCreated;
/**
 * Why a build happens, or does not.
 */
export type BuildReason = "cache_miss" | "cache_hit" | "force_rebuild";
export type BuildStartedPayload = BuildStarted;
/**
 * The constant `status` of `build.started`: `"building"`.
 */
export type BuildingStatus = "building";
export type BuildPhaseStartedPayload = PhaseStarted;
export type BuildPhaseCompletedPayload = BuildPhaseCompleted;
/**
 * Result of one phase.
 */
export type PhaseStatus = "succeeded" | "failed" | "skipped";
export type BuildCompletedPayload = BuildCompleted;
/**
 * Result of a build.
 */
export type BuildStatus = "succeeded" | "failed" | "reused" | "skipped";
export type ConsoleLinePayload = ConsoleLine;
/**
 * Console severity.
 */
export type ConsoleLevel = "debug" | "info" | "warn" | "error";
/**
 * Whether a console line belongs to the build or the run.
 */
export type ConsoleScope = "build" | "run";
/**
 * Which output stream a console line came from.
 */
export type ConsoleStream = "stdout" | "stderr";
export type RunStartedPayload = RunStarted;
/**
 * The constant `status` of `run.started`: `"in_progress"`.
 */
export type InProgressStatus = "in_progress";
export type RunPhaseStartedPayload = PhaseStarted;
export type RunPhaseCompletedPayload = RunPhaseCompleted;
export type RunTableSummaryPayload = TableSummary;
/**
 * How bad a validation issue is. Ordered: `info < warning < error`.
 */
export type Severity = "info" | "warning" | "error";
export type RunValidationIssuePayload = ValidationIssue;
export type RunValidationSummaryPayload = ValidationAggregate;
export type RunErrorPayload = RunError;
/**
 * Which half of a run something happened in.
 */
export type Stage = "build" | "run";
export type RunCompletedPayload = RunCompleted;
/**
 * How a run ended: the terminal subset of [`RunStatus`].
 */
export type RunOutcome = "succeeded" | "failed" | "cancelled";
/**
 * Where a run is in its life. `queued → building → running → succeeded | failed | cancelled`;
 * `queued | building → failed | cancelled` is allowed too; terminal states are final.
 */
export type RunStatus = "queued" | "building" | "running" | "succeeded" | "failed" | "cancelled";

export interface RunQueuedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunQueuedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.queued";
  workspace_id: WorkspaceId;
}
/**
 * `run.queued`: the run was accepted. Always the first event, sequence 1.
 */
export interface RunQueued {
  /**
   * What the engine is asked to do.
   */
  mode: RunMode;
  /**
   * Options as requested.
   */
  options: RunOptions;
  /**
   * Who queued the run.
   */
  queued_by?: QueuedBy;
  /**
   * Always `queued`.
   */
  status: QueuedStatus;
}
/**
 * Options of a run, as requested in `POST /runs`.
 */
export interface RunOptions {
  /**
   * Build the configuration again even if a cached build exists.
   */
  force_rebuild?: boolean;
  /**
   * Only these sheets of the inputs are read (all sheets when absent).
   */
  input_sheet_names?: string[];
  /**
   * Caller's own data, stored with the run and echoed back.
   */
  metadata?: {
    [k: string]: unknown | undefined;
  };
}
/**
 * Who queued a run.
 */
export interface QueuedBy {
  /**
   * Name of the API token that created the run.
   */
  token_name?: string;
}
export interface BuildCreatedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: BuildCreatedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "build.created";
  workspace_id: WorkspaceId;
}
/**
 * `build.created`: the build cache was consulted.
 */
export interface BuildCreated {
  /**
   * The build cache key.
   */
  fingerprint: string;
  /**
   * Cache miss, hit, or forced rebuild.
   */
  reason: BuildReason;
  /**
   * Whether a build will run (false on a cache hit).
   */
  should_build: boolean;
  /**
   * Always `queued`.
   */
  status: QueuedStatus;
}
export interface BuildStartedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: BuildStartedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "build.started";
  workspace_id: WorkspaceId;
}
/**
 * `build.started`: the builder started.
 */
export interface BuildStarted {
  /**
   * Why the build runs.
   */
  reason: BuildReason;
  /**
   * Always `building`.
   */
  status: BuildingStatus;
}
export interface BuildPhaseStartedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: BuildPhaseStartedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "build.phase.started";
  workspace_id: WorkspaceId;
}
/**
 * `build.phase.started` / `run.phase.started`: a phase began.
 */
export interface PhaseStarted {
  /**
   * What the phase does, for people.
   */
  message?: string;
  /**
   * The phase's name, e.g. `mapping`.
   */
  phase: string;
}
export interface BuildPhaseCompletedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: BuildPhaseCompletedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "build.phase.completed";
  workspace_id: WorkspaceId;
}
/**
 * `build.phase.completed`: a build phase ended.
 */
export interface BuildPhaseCompleted {
  /**
   * How long it took.
   */
  duration_ms: number;
  /**
   * A word for people.
   */
  message?: string;
  /**
   * The phase's name.
   */
  phase: string;
  /**
   * How it ended.
   */
  status: PhaseStatus;
}
export interface BuildCompletedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: BuildCompletedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "build.completed";
  workspace_id: WorkspaceId;
}
/**
 * `build.completed`: the build ended (or a cached one was reused).
 */
export interface BuildCompleted {
  /**
   * How long it took.
   */
  duration_ms?: number;
  /**
   * Why the build environment was made or reused.
   */
  env?: BuildEnv;
  /**
   * Why the build failed.
   */
  error?: ErrorInfo;
  /**
   * Exit code of a subprocess build.
   */
  exit_code?: number;
  /**
   * How the build ended.
   */
  status: BuildStatus;
  /**
   * A word for people.
   */
  summary?: string;
}
/**
 * Who made a build environment, and whether it was reused.
 */
export interface BuildEnv {
  /**
   * Why the build was made or reused.
   */
  reason: BuildReason;
  /**
   * Whether a cached build was reused.
   */
  reused: boolean;
}
/**
 * A structured error inside a payload.
 */
export interface ErrorInfo {
  /**
   * Machine-readable code.
   */
  code: string;
  /**
   * Anything else that helps.
   */
  details?: {
    [k: string]: unknown | undefined;
  };
  /**
   * Human-readable explanation.
   */
  message: string;
}
export interface ConsoleLineEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: ConsoleLinePayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "console.line";
  workspace_id: WorkspaceId;
}
/**
 * `console.line`: one line of output.
 */
export interface ConsoleLine {
  /**
   * The engine's own clock, as it wrote it.
   */
  engine_timestamp?: string;
  /**
   * Severity.
   */
  level: ConsoleLevel;
  /**
   * The logger that printed it.
   */
  logger?: string;
  /**
   * One line, no trailing newline (at most 16 KiB; longer is cut and marked).
   */
  message: string;
  /**
   * The phase that printed it.
   */
  phase?: string;
  /**
   * Build or run.
   */
  scope: ConsoleScope;
  /**
   * Stdout or stderr.
   */
  stream: ConsoleStream;
}
export interface RunStartedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunStartedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.started";
  workspace_id: WorkspaceId;
}
/**
 * `run.started`: the engine started.
 */
export interface RunStarted {
  /**
   * The configuration's own `version`.
   */
  config_version?: string;
  /**
   * The engine's version.
   */
  engine_version?: string;
  /**
   * Why the build environment was made or reused.
   */
  env?: BuildEnv;
  /**
   * What the engine is asked to do.
   */
  mode: RunMode;
  /**
   * Always `in_progress`.
   */
  status: InProgressStatus;
}
export interface RunPhaseStartedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunPhaseStartedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.phase.started";
  workspace_id: WorkspaceId;
}
export interface RunPhaseCompletedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunPhaseCompletedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.phase.completed";
  workspace_id: WorkspaceId;
}
/**
 * `run.phase.completed`: an engine phase ended.
 */
export interface RunPhaseCompleted {
  /**
   * How long it took.
   */
  duration_ms: number;
  /**
   * A word for people.
   */
  message?: string;
  /**
   * Numbers the phase measured, e.g. `{"tables": 2, "rows": 1323}`.
   */
  metrics?: {
    [k: string]: number | undefined;
  };
  /**
   * The phase's name.
   */
  phase: string;
  /**
   * How it ended.
   */
  status: PhaseStatus;
}
export interface RunTableSummaryEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunTableSummaryPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.table.summary";
  workspace_id: WorkspaceId;
}
/**
 * One table of an input document.
 */
export interface TableSummary {
  /**
   * Physical columns of the table (mapped + unmapped), never the number of fields.
   */
  column_count: number;
  /**
   * 0-based position of the file among the run's inputs.
   */
  file_index: number;
  /**
   * Fields whose `is_satisfied` is true.
   */
  mapped_field_count: number;
  /**
   * How columns were matched to the configuration's fields.
   */
  mapping: TableMapping;
  /**
   * Where the table sits in its sheet.
   */
  metadata: TableMetadata;
  /**
   * Data rows of the table.
   */
  row_count: number;
  /**
   * 0-based position of the sheet in its file.
   */
  sheet_index: number;
  /**
   * The input file's name.
   */
  source_file: string;
  /**
   * The sheet's name (for CSV, the file's stem).
   */
  source_sheet: string;
  /**
   * `tbl_<file_index>_<sheet_index>_<table_index>`, unique within the run.
   */
  table_id: string;
  /**
   * 0-based position of the table in its sheet.
   */
  table_index: number;
  /**
   * Columns that matched no field.
   */
  unmapped_column_count: number;
  /**
   * Validation counts of this table, including issues not published because of the cap.
   */
  validation: ValidationAggregate;
}
/**
 * Column mapping of a table.
 */
export interface TableMapping {
  /**
   * One entry per configured field, in configuration order.
   */
  mapped_columns: MappedColumn[];
  /**
   * Columns that matched no field, in source order.
   */
  unmapped_columns: UnmappedColumn[];
}
/**
 * How one configured field was matched.
 */
export interface MappedColumn {
  /**
   * The configured field.
   */
  field: string;
  /**
   * The source header that matched; `""` when none did.
   */
  header: string;
  /**
   * Whether the field is required.
   */
  is_required: boolean;
  /**
   * Whether a column was found for the field: the field is *mapped* iff this is true.
   */
  is_satisfied: boolean;
  /**
   * Match score in `[0, 1]`.
   */
  score: number;
  /**
   * 0-based source column; `-1` when no column matched.
   */
  source_column_index: number;
}
/**
 * A source column that matched no field.
 */
export interface UnmappedColumn {
  /**
   * The source header.
   */
  header: string;
  /**
   * Its header in the normalized output, `raw_<n>`.
   */
  output_header: string;
  /**
   * 0-based source column.
   */
  source_column_index: number;
}
/**
 * Position of a table in its sheet, as 1-based spreadsheet rows.
 */
export interface TableMetadata {
  /**
   * The first data row.
   */
  first_data_row: number;
  /**
   * The header row.
   */
  header_row: number;
  /**
   * The last data row.
   */
  last_data_row: number;
}
/**
 * Validation issue counts of a table or a whole run.
 *
 * Invariants: `issues_total` = Σ `issues_by_severity` = Σ `issues_by_code`; `max_severity` is
 * `null` iff `issues_total` is 0. Counts include issues that were not published as events because
 * of the per-run cap.
 */
export interface ValidationAggregate {
  /**
   * Issues per code.
   */
  issues_by_code: {
    [k: string]: number | undefined;
  };
  /**
   * Issues per field (issues tied to no field are counted only above).
   */
  issues_by_field: {
    [k: string]: FieldIssueCounts | undefined;
  };
  /**
   * Issues per severity.
   */
  issues_by_severity: {
    [k: string]: number | undefined;
  };
  /**
   * All issues.
   */
  issues_total: number;
  /**
   * The worst severity seen; `null` when there are no issues.
   */
  max_severity: Severity | null;
}
/**
 * Issue counts of one field.
 */
export interface FieldIssueCounts {
  /**
   * Issues per code.
   */
  issues_by_code: {
    [k: string]: number | undefined;
  };
  /**
   * Issues per severity.
   */
  issues_by_severity: {
    [k: string]: number | undefined;
  };
  /**
   * All issues of the field.
   */
  issues_total: number;
}
export interface RunValidationIssueEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunValidationIssuePayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.validation.issue";
  workspace_id: WorkspaceId;
}
/**
 * `run.validation.issue`: one problem with one value.
 */
export interface ValidationIssue {
  /**
   * Machine-readable code, e.g. `invalid_email`.
   */
  code: string;
  /**
   * The source header.
   */
  column?: string;
  /**
   * The configured field.
   */
  field?: string;
  /**
   * Human-readable explanation.
   */
  message: string;
  /**
   * 1-based source row.
   */
  row?: number;
  /**
   * How bad it is.
   */
  severity: Severity;
  /**
   * The table the value is in.
   */
  table_id: string;
  /**
   * The offending value, at most 256 characters.
   */
  value?: string;
}
export interface RunValidationSummaryEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunValidationSummaryPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.validation.summary";
  workspace_id: WorkspaceId;
}
export interface RunErrorEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunErrorPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.error";
  workspace_id: WorkspaceId;
}
/**
 * `run.error`: something failed.
 */
export interface RunError {
  /**
   * Machine-readable code, e.g. `input_error`.
   */
  code: string;
  /**
   * Anything else that helps.
   */
  details?: {
    [k: string]: unknown | undefined;
  };
  /**
   * Human-readable explanation.
   */
  message: string;
  /**
   * The phase it happened in.
   */
  phase?: string;
  /**
   * Build or run.
   */
  stage: Stage;
}
export interface RunCompletedEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: RunCompletedPayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "run.completed";
  workspace_id: WorkspaceId;
}
/**
 * `run.completed`: the run ended. Exactly one per run, always last.
 */
export interface RunCompleted {
  /**
   * What the run produced.
   */
  artifacts: Artifacts;
  /**
   * This event's own sequence: a client holding that many events has the whole log.
   */
  event_count: number;
  /**
   * When and how the engine ran.
   */
  execution: Execution;
  /**
   * Why it failed; `null` on success.
   */
  failure: Failure | null;
  /**
   * How the run ended.
   */
  status: RunOutcome;
  /**
   * The run summary, folded from the log.
   */
  summary: RunSummary;
}
/**
 * Files a run produced, relative to the run's directory.
 */
export interface Artifacts {
  /**
   * The run's event log.
   */
  events_path: string;
  /**
   * Output files (empty for `dry_run` and `validate_only`).
   */
  output_paths: string[];
}
/**
 * When and how the engine ran.
 */
export interface Execution {
  /**
   * When the run ended.
   */
  completed_at: Timestamp;
  /**
   * From `started_at` (or creation, when the engine never started) to `completed_at`.
   */
  duration_ms: number;
  /**
   * The engine's exit code (`null` for in-process engines or when it never started).
   */
  exit_code: number | null;
  /**
   * When the engine started (`null` when it never did).
   */
  started_at: Timestamp | null;
}
/**
 * Why a run failed. Standard codes are the constants of [`failure_code`].
 */
export interface Failure {
  /**
   * Machine-readable reason, e.g. `engine_exit_nonzero`.
   */
  code: string;
  /**
   * Human-readable explanation.
   */
  message: string;
  /**
   * Build or run.
   */
  stage: Stage;
}
/**
 * What a run did, folded from its event log.
 */
export interface RunSummary {
  /**
   * Totals per file and per field.
   */
  breakdowns: SummaryBreakdowns;
  /**
   * Totals over the whole run.
   */
  core: SummaryCore;
  /**
   * The run's identity, outcome and timing.
   */
  run: SummaryRun;
  /**
   * Always `ade.run_summary/v1`.
   */
  schema: string;
  /**
   * What was left out or shortened to keep the summary within its bounds (`summary::bounds`),
   * so that `run.completed` always fits in one event; absent when nothing was.
   */
  truncated?: SummaryTruncation;
  /**
   * The version of the summary's shape, `1.0.0`.
   */
  version: string;
}
/**
 * Totals per file and per field.
 */
export interface SummaryBreakdowns {
  /**
   * One entry per configured field, in configuration order.
   */
  by_field: FieldBreakdown[];
  /**
   * One entry per source file, sorted by `source_file`.
   */
  by_file: FileBreakdown[];
}
/**
 * Totals of one configured field.
 */
export interface FieldBreakdown {
  /**
   * The field's name.
   */
  field: string;
  /**
   * Issues per code.
   */
  issue_counts_by_code: {
    [k: string]: number | undefined;
  };
  /**
   * Issues per severity.
   */
  issue_counts_by_severity: {
    [k: string]: number | undefined;
  };
  /**
   * The field's label (its name when the configuration gives none).
   */
  label: string;
  /**
   * Whether it was satisfied in some table.
   */
  mapped: boolean;
  /**
   * The highest score where it was satisfied; `null` when it never was.
   */
  max_score: number | null;
  /**
   * Whether the field is required.
   */
  required: boolean;
  /**
   * Its validation issues.
   */
  validation_issue_count_total: number;
}
/**
 * Totals of one source file.
 */
export interface FileBreakdown {
  /**
   * Issues per code.
   */
  issue_counts_by_code: {
    [k: string]: number | undefined;
  };
  /**
   * Issues per severity.
   */
  issue_counts_by_severity: {
    [k: string]: number | undefined;
  };
  /**
   * Σ rows of its tables.
   */
  row_count: number;
  /**
   * The file.
   */
  source_file: string;
  /**
   * Its tables.
   */
  table_count: number;
  /**
   * Its validation issues.
   */
  validation_issue_count_total: number;
}
/**
 * Totals over the whole run.
 */
export interface SummaryCore {
  /**
   * Fields of the configuration.
   */
  canonical_field_count: number;
  /**
   * Distinct `source_file`s.
   */
  input_file_count: number;
  /**
   * Distinct `(source_file, source_sheet)`s.
   */
  input_sheet_count: number;
  /**
   * Issues per code.
   */
  issue_counts_by_code: {
    [k: string]: number | undefined;
  };
  /**
   * Issues per severity.
   */
  issue_counts_by_severity: {
    [k: string]: number | undefined;
  };
  /**
   * Fields satisfied in some table.
   */
  mapped_field_count: number;
  /**
   * Required fields of the configuration.
   */
  required_field_count: number;
  /**
   * Σ rows of the tables.
   */
  row_count: number;
  /**
   * Tables (by `table_id`).
   */
  table_count: number;
  /**
   * Σ unmapped columns of the tables.
   */
  unmapped_column_count: number;
  /**
   * All validation issues.
   */
  validation_issue_count_total: number;
}
/**
 * The run part of a [`RunSummary`]. Fields without a value are `null`.
 */
export interface SummaryRun {
  /**
   * When the run ended.
   */
  completed_at: Timestamp | null;
  /**
   * From `run.started`: the configuration's own version.
   */
  config_version: string | null;
  /**
   * Its configuration.
   */
  configuration_id: ConfigurationId;
  /**
   * Content hash of the configuration (`sha256:…`).
   */
  configuration_version: string | null;
  /**
   * From `started_at` to `completed_at`.
   */
  duration_seconds: number | null;
  /**
   * From `run.started`.
   */
  engine_version: string | null;
  /**
   * From `build.completed` / `build.created`.
   */
  env_reason: BuildReason | null;
  /**
   * From `build.completed` / `build.created`.
   */
  env_reused: boolean | null;
  /**
   * The failure's code, when it failed.
   */
  failure_code: string | null;
  /**
   * The failure's message, when it failed.
   */
  failure_message: string | null;
  /**
   * The failure's stage, when it failed.
   */
  failure_stage: Stage | null;
  /**
   * The run.
   */
  id: RunId;
  /**
   * `created_at` of `run.started`.
   */
  started_at: Timestamp | null;
  /**
   * The run's status when the summary was made.
   */
  status: RunStatus;
  /**
   * Its workspace.
   */
  workspace_id: WorkspaceId;
}
/**
 * Which parts of a run summary were cut to keep it within its bounds, by place
 * (`core.issue_counts_by_code`, `breakdowns.by_field`, `breakdowns.by_field[].label`, …; `[]`
 * sums over the list's entries).
 */
export interface SummaryTruncation {
  /**
   * Entries left out of a list or a map, by place: how many.
   */
  omitted?: {
    [k: string]: number | undefined;
  };
  /**
   * Texts cut short (and marked `…[truncated N bytes]`), by place: how many.
   */
  shortened?: {
    [k: string]: number | undefined;
  };
}
export interface ExtensionEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  /**
   * Any object; extension events pass through untouched.
   */
  payload: {
    [k: string]: unknown | undefined;
  };
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: `x.${string}`;
  workspace_id: WorkspaceId;
}
