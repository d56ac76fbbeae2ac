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
export type RunValidationSummaryPayload = ValidationAggregate;
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
 * Validation issue counts of a table or a whole run.
 *
 * Invariants: `issues_total` = Σ `issues_by_severity` = Σ `issues_by_code`; `max_severity` is
 * `null` iff `issues_total` is 0. Counts include issues that were not published as events because
 * of the per-run cap.
 */
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
