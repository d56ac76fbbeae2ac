/* eslint-disable */
/**
 * Generated from ade's schemas/ by json-schema-to-typescript (tests/typescript/generate.mjs).
 * Do not edit: run `UPDATE_SCHEMAS=1 cargo test --test it typescript` instead.
 */

/**
 * RFC 3339 UTC with microseconds, e.g. 2026-11-26T18:52:57.802612Z.
 */
export type Timestamp = string;
export type ConfigurationId = string;
/**
 * Why a build happens, or does not.
 */
export type BuildReason = "cache_miss" | "cache_hit" | "force_rebuild";
/**
 * Which half of a run something happened in.
 */
export type Stage = "build" | "run";
/**
 * `run_` followed by a ULID (26 Crockford base32 characters).
 */
export type RunId = string;
/**
 * Where a run is in its life. `queued → building → running → succeeded | failed | cancelled`;
 * `queued | building → failed | cancelled` is allowed too; terminal states are final.
 */
export type RunStatus = "queued" | "building" | "running" | "succeeded" | "failed" | "cancelled";
export type WorkspaceId = string;

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
