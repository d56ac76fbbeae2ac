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
export type RunValidationIssuePayload = ValidationIssue;
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
 * `run.validation.issue`: one problem with one value.
 */
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
