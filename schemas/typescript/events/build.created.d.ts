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
export type BuildCreatedPayload = BuildCreated;
/**
 * Why a build happens, or does not.
 */
export type BuildReason = "cache_miss" | "cache_hit" | "force_rebuild";
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
 * `build.created`: the build cache was consulted.
 */
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
