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
export type BuildPhaseCompletedPayload = BuildPhaseCompleted;
/**
 * Result of one phase.
 */
export type PhaseStatus = "succeeded" | "failed" | "skipped";
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
 * `build.phase.completed`: a build phase ended.
 */
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
