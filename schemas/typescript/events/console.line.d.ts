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
export type ConsoleLinePayload = ConsoleLine;
/**
 * Console severity.
 */
export type ConsoleLevel = "debug" | "info" | "warn" | "error";
/**
 * Whether a console line belongs to the build or the run.
 */
export type ConsoleScope = "build" | "run";
/**
 * Which output stream a console line came from.
 */
export type ConsoleStream = "stdout" | "stderr";
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
 * `console.line`: one line of output.
 */
export interface ConsoleLineEvent {
  build_id?: BuildId;
  configuration_id: ConfigurationId;
  created_at: Timestamp;
  event_id: EventId;
  payload: ConsoleLinePayload;
  run_id: RunId;
  /**
   * Per-run position: starts at 1, +1 per event, no gaps.
   */
  sequence: number;
  source: EventSource;
  type: "console.line";
  workspace_id: WorkspaceId;
}
/**
 * `console.line`: one line of output.
 */
export interface ConsoleLine {
  /**
   * The engine's own clock, as it wrote it.
   */
  engine_timestamp?: string;
  /**
   * Severity.
   */
  level: ConsoleLevel;
  /**
   * The logger that printed it.
   */
  logger?: string;
  /**
   * One line, no trailing newline (at most 16 KiB; longer is cut and marked).
   */
  message: string;
  /**
   * The phase that printed it.
   */
  phase?: string;
  /**
   * Build or run.
   */
  scope: ConsoleScope;
  /**
   * Stdout or stderr.
   */
  stream: ConsoleStream;
}
