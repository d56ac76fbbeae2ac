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
export type RunErrorPayload = RunError;
/**
 * Which half of a run something happened in.
 */
export type Stage = "build" | "run";
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
 * `run.error`: something failed.
 */
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
