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

/**
 * `run.queued`: the run was accepted. Always the first event, sequence 1.
 */
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
