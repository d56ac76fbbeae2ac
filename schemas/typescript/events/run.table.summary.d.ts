/* eslint-disable */
/**
 * Generated from ade's schemas/ by json-schema-to-typescript (tests/typescript/generate.mjs).
 * Do not edit: run `UPDATE_SCHEMAS=1 cargo test --test it typescript` instead.
 */

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
export type RunTableSummaryPayload = TableSummary;
/**
 * How bad a validation issue is. Ordered: `info < warning < error`.
 */
export type Severity = "info" | "warning" | "error";
/**
 * `run_` followed by a ULID (26 Crockford base32 characters).
 */
export type RunId = string;
/**
 * Who emitted an event.
 */
export type EventSource = "api" | "engine" | "worker";
export type WorkspaceId = string;

/**
 * One table of an input document.
 */
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
