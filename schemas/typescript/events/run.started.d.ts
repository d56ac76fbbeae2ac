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
export type RunStartedPayload = RunStarted;
/**
 * Why a build happens, or does not.
 */
export type BuildReason = "cache_miss" | "cache_hit" | "force_rebuild";
/**
 * What the engine is asked to do.
 */
export type RunMode = "execute" | "validate_only" | "dry_run";
/**
 * The constant `status` of `run.started`: `"in_progress"`.
 */
export type InProgressStatus = "in_progress";
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
 * `run.started`: the engine started.
 */
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
