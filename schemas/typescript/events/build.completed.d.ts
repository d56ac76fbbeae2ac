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
export type BuildCompletedPayload = BuildCompleted;
/**
 * Why a build happens, or does not.
 */
export type BuildReason = "cache_miss" | "cache_hit" | "force_rebuild";
/**
 * Result of a build.
 */
export type BuildStatus = "succeeded" | "failed" | "reused" | "skipped";
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
 * `build.completed`: the build ended (or a cached one was reused).
 */
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
