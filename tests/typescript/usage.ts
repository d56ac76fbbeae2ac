// What a TypeScript client of schemas/ writes, compiled by `tsc --strict` against the declarations
// generate.mjs makes from schemas/ (tests/it/typescript.rs runs it). It must compile as it is, and
// each `@ts-expect-error` line must fail to: a misspelt field is an error, not `unknown`.
import type {Configuration, ProcessConfiguration} from "./generated/configuration";
import type {
  Envelope,
  ExtensionEvent,
  RunCompletedEvent,
  RunCompletedPayload,
  RunPhaseStartedPayload,
  RunValidationIssuePayload
} from "./generated/envelope";
import type {RunCompletedEvent as RunCompletedFile} from "./generated/events/run.completed";
import type {Run} from "./generated/run";
import type {RunSummary} from "./generated/run_summary";

type CatalogEvent = Exclude<Envelope, ExtensionEvent>;

// Exhaustive: adding a catalog type to the schemas without a case here fails to compile.
function describe(e: CatalogEvent): string {
  switch (e.type) {
    case "run.queued":
      return `queued to ${e.payload.mode}`;
    case "build.created":
      return `build ${e.payload.fingerprint}: ${e.payload.should_build ? "builds" : "reuses"}`;
    case "build.started":
      return `building (${e.payload.reason})`;
    case "build.phase.started":
      return `build phase ${e.payload.phase}`;
    case "build.phase.completed":
      return `build phase ${e.payload.phase} ${e.payload.status} in ${e.payload.duration_ms} ms`;
    case "build.completed":
      return `build ${e.payload.status}${e.payload.error ? `: ${e.payload.error.message}` : ""}`;
    case "console.line":
      return `[${e.payload.level}] ${e.payload.message}`;
    case "run.started":
      return `started ${e.payload.status}, engine ${e.payload.engine_version ?? "?"}`;
    case "run.phase.started":
      return `phase ${e.payload.phase}`;
    case "run.phase.completed":
      return `phase ${e.payload.phase} ${e.payload.status}`;
    case "run.table.summary":
      return `table ${e.payload.table_id}: ${e.payload.row_count} rows`;
    case "run.validation.issue":
      return `${e.payload.severity} ${e.payload.code} at row ${e.payload.row ?? "?"}`;
    case "run.validation.summary":
      return `${e.payload.issues_total} issues`;
    case "run.error":
      return `${e.payload.stage} error ${e.payload.code}: ${e.payload.message}`;
    case "run.completed": {
      const status: "succeeded" | "failed" | "cancelled" = e.payload.status;
      // @ts-expect-error: a misspelt payload field does not compile (no index signature).
      const typo = e.payload.stauts;
      return `${status} after ${e.payload.event_count} events, ${e.payload.summary.core.validation_issue_count_total} issues ${typo}`;
    }
    default: {
      const _never: never = e;
      return _never;
    }
  }
}

// Extensions narrow by their `x.` prefix; their payload is an open object.
function handle(e: Envelope): string {
  if (e.type.startsWith("x.")) {
    return "extension";
  }
  switch (e.type) {
    case "run.completed":
      return e.payload.status;
    case "console.line":
      return e.payload.message;
    default:
      return e.type;
  }
}

function extension(e: ExtensionEvent): unknown {
  const type: `x.${string}` = e.type;
  return [type, e.payload["anything"]];
}

// @ts-expect-error: an extension type must start with `x.`.
const notAnExtension: ExtensionEvent["type"] = "run.exploded";

// Payload types have stable names, shared by envelope.d.ts and events/<type>.d.ts.
function payloads(done: RunCompletedEvent, file: RunCompletedFile, phase: RunPhaseStartedPayload): number {
  const payload: RunCompletedPayload = done.payload;
  const same: RunCompletedPayload = file.payload;
  const issue: RunValidationIssuePayload | undefined = undefined;
  return payload.event_count + same.event_count + phase.phase.length + (issue === undefined ? 0 : 1);
}

// Payloads are closed: an object literal with an unknown field is refused.
const started: RunPhaseStartedPayload = {
  phase: "mapping",
  // @ts-expect-error: not a field of the payload.
  mesage: "typo"
};

// A custom engine's `engine` is any string, so narrowing a configuration takes a guard.
function isProcess(c: Configuration): c is ProcessConfiguration {
  return c.engine === "process";
}

function configurations(c: Configuration): string {
  return isProcess(c) ? c.command.join(" ") : c.id;
}

function runs(run: Run, summary: RunSummary): string {
  return `${run.id} ${run.status} ${summary.core.validation_issue_count_total}`;
}

export {configurations, describe, extension, handle, notAnExtension, payloads, runs, started};
