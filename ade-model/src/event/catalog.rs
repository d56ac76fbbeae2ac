//! The event catalog (SPEC §2): one payload struct per event type, and [`EventPayload`], the
//! closed set of known types plus extension (`x.*`) and unknown types.
//!
//! Every payload struct keeps fields it does not know in `extra`, so an event written by a newer
//! version survives a round trip through an older reader unchanged.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::event::validation::Severity;
use crate::event::{TableSummary, ValidationAggregate};
use crate::run::{Extra, Failure, RunMode, RunOptions, RunOutcome, Stage};
use crate::summary::RunSummary;

macro_rules! marker_status {
    ($(#[$doc:meta])* $name:ident = $text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        #[non_exhaustive]
        pub enum $name {
            #[doc = concat!("`", $text, "`")]
            #[default]
            #[serde(rename = $text)]
            Value,
        }
    };
}

marker_status!(
    /// The constant `status` of `run.queued` and `build.created`: `"queued"`.
    QueuedStatus = "queued"
);
marker_status!(
    /// The constant `status` of `build.started`: `"building"`.
    BuildingStatus = "building"
);
marker_status!(
    /// The constant `status` of `run.started`: `"in_progress"`.
    InProgressStatus = "in_progress"
);

/// Why a build happens, or does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BuildReason {
    /// No cached build has this fingerprint.
    CacheMiss,
    /// A cached build with this fingerprint is reused.
    CacheHit,
    /// The run asked for a new build.
    ForceRebuild,
}

/// Result of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PhaseStatus {
    /// The phase did its work.
    Succeeded,
    /// The phase failed.
    Failed,
    /// The phase was not needed.
    Skipped,
}

/// Result of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BuildStatus {
    /// A new build was made.
    Succeeded,
    /// The build failed.
    Failed,
    /// A cached build was reused.
    Reused,
    /// The configuration needs no build.
    Skipped,
}

/// Console severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsoleLevel {
    /// Detail.
    Debug,
    /// Progress.
    Info,
    /// Something the reader should look at.
    Warn,
    /// Something failed.
    Error,
}

/// Which output stream a console line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsoleStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl ConsoleStream {
    /// The spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Who made a build environment, and whether it was reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BuildEnv {
    /// Why the build was made or reused.
    pub reason: BuildReason,
    /// Whether a cached build was reused.
    pub reused: bool,
}

/// Who queued a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueuedBy {
    /// Name of the API token that created the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
}

/// A structured error inside a payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Anything else that helps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Extra>,
}

/// `run.queued`: the run was accepted. Always the first event, sequence 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunQueued {
    /// Always `queued`.
    pub status: QueuedStatus,
    /// What the engine is asked to do.
    pub mode: RunMode,
    /// Options as requested.
    pub options: RunOptions,
    /// Who queued the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_by: Option<QueuedBy>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `build.created`: the build cache was consulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuildCreated {
    /// Always `queued`.
    pub status: QueuedStatus,
    /// Cache miss, hit, or forced rebuild.
    pub reason: BuildReason,
    /// Whether a build will run (false on a cache hit).
    pub should_build: bool,
    /// The build cache key.
    pub fingerprint: String,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `build.started`: the builder started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuildStarted {
    /// Always `building`.
    pub status: BuildingStatus,
    /// Why the build runs.
    pub reason: BuildReason,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `build.phase.started` / `run.phase.started`: a phase began.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseStarted {
    /// The phase's name, e.g. `mapping`.
    pub phase: String,
    /// What the phase does, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `build.phase.completed`: a build phase ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuildPhaseCompleted {
    /// The phase's name.
    pub phase: String,
    /// How it ended.
    pub status: PhaseStatus,
    /// How long it took.
    pub duration_ms: u64,
    /// A word for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `run.phase.completed`: an engine phase ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunPhaseCompleted {
    /// The phase's name.
    pub phase: String,
    /// How it ended.
    pub status: PhaseStatus,
    /// How long it took.
    pub duration_ms: u64,
    /// A word for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Numbers the phase measured, e.g. `{"tables": 2, "rows": 1323}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `Number`, not `f64`, so that an integer stays an integer in a round trip.
    pub metrics: Option<BTreeMap<String, serde_json::Number>>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `build.completed`: the build ended (or a cached one was reused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuildCompleted {
    /// How the build ended.
    pub status: BuildStatus,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Exit code of a subprocess build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A word for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why the build environment was made or reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BuildEnv>,
    /// Why the build failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Whether a console line belongs to the build or the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsoleScope {
    /// Printed while building.
    Build,
    /// Printed while running.
    Run,
}

/// `console.line`: one line of output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsoleLine {
    /// Build or run.
    pub scope: ConsoleScope,
    /// Stdout or stderr.
    pub stream: ConsoleStream,
    /// Severity.
    pub level: ConsoleLevel,
    /// One line, no trailing newline (at most 16 KiB; longer is cut and marked).
    pub message: String,
    /// The phase that printed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The logger that printed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// The engine's own clock, as it wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_timestamp: Option<String>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `run.started`: the engine started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunStarted {
    /// Always `in_progress`.
    pub status: InProgressStatus,
    /// What the engine is asked to do.
    pub mode: RunMode,
    /// The engine's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// The configuration's own `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    /// Why the build environment was made or reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BuildEnv>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `run.validation.issue`: one problem with one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationIssue {
    /// The table the value is in.
    pub table_id: String,
    /// How bad it is.
    pub severity: Severity,
    /// Machine-readable code, e.g. `invalid_email`.
    pub code: String,
    /// The configured field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based source row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The source header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The offending value, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Human-readable explanation.
    pub message: String,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `run.error`: something failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunError {
    /// Build or run.
    pub stage: Stage,
    /// Machine-readable code, e.g. `input_error`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The phase it happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Anything else that helps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Extra>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// When and how the engine ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Execution {
    /// The engine's exit code (`null` for in-process engines or when it never started).
    pub exit_code: Option<i32>,
    /// When the engine started (`null` when it never did).
    pub started_at: Option<crate::event::Timestamp>,
    /// When the run ended.
    pub completed_at: crate::event::Timestamp,
    /// From `started_at` (or creation, when the engine never started) to `completed_at`.
    pub duration_ms: u64,
}

/// Files a run produced, relative to the run's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Artifacts {
    /// Output files (empty for `dry_run` and `validate_only`).
    pub output_paths: Vec<String>,
    /// The run's event log.
    pub events_path: String,
}

/// `run.completed`: the run ended. Exactly one per run, always last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunCompleted {
    /// How the run ended.
    pub status: RunOutcome,
    /// Why it failed; `null` on success.
    pub failure: Option<Failure>,
    /// When and how the engine ran.
    pub execution: Execution,
    /// What the run produced.
    pub artifacts: Artifacts,
    /// The run summary, folded from the log.
    pub summary: RunSummary,
    /// This event's own sequence: a client holding that many events has the whole log.
    pub event_count: u64,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

macro_rules! catalog {
    ($( $(#[$doc:meta])* $variant:ident($payload:ty) = $type:literal, orchestrator_only: $orch:literal; )*) => {
        /// What happened: the event's `type` and its typed payload.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum EventPayload {
            $( $(#[$doc])* $variant($payload), )*
            /// An extension event, `x.<name>`: passed through untouched.
            Extension {
                /// The full type, starting with `x.`.
                event_type: String,
                /// The payload, as written.
                payload: Extra,
            },
            /// A type this version does not know, kept with its raw payload.
            Unknown {
                /// The type, as written.
                event_type: String,
                /// The payload, as written.
                payload: Value,
            },
        }

        impl EventPayload {
            /// Every catalog type, in SPEC order.
            pub const CATALOG_TYPES: &'static [&'static str] = &[$($type),*];

            /// The event's `type`.
            pub fn event_type(&self) -> &str {
                match self {
                    $( Self::$variant(_) => $type, )*
                    Self::Extension { event_type, .. } | Self::Unknown { event_type, .. } => event_type,
                }
            }

            /// Whether only the orchestrator may emit this type; engines' attempts are refused.
            pub fn is_orchestrator_only(&self) -> bool {
                match self {
                    $( Self::$variant(_) => $orch, )*
                    Self::Extension { .. } | Self::Unknown { .. } => false,
                }
            }

            /// Builds a payload from a `type` and a JSON payload.
            ///
            /// Catalog types are checked against their schema; `x.*` types with an object payload
            /// become [`EventPayload::Extension`]; anything else is kept as [`EventPayload::Unknown`].
            ///
            /// # Errors
            /// When the payload does not match the catalog type's shape.
            pub fn from_parts(event_type: &str, payload: Value) -> Result<Self, serde_json::Error> {
                Self::deserialize_payload(event_type, payload)
            }

            /// Deserializes a payload of type `event_type` (see [`from_parts`](Self::from_parts)).
            ///
            /// # Errors
            /// When the payload does not match the catalog type's shape; the message names the type.
            pub fn deserialize_payload<'de, D: serde::Deserializer<'de>>(event_type: &str, deserializer: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let named = |e: D::Error| D::Error::custom(format_args!("payload of {event_type:?}: {e}"));
                Ok(match event_type {
                    $( $type => Self::$variant(Deserialize::deserialize(deserializer).map_err(named)?), )*
                    other => match Value::deserialize(deserializer)? {
                        Value::Object(payload) if other.starts_with("x.") => {
                            Self::Extension { event_type: other.to_owned(), payload }
                        }
                        payload => Self::Unknown { event_type: other.to_owned(), payload },
                    },
                })
            }

            /// Serializes the payload alone (without the type).
            pub fn serialize_payload<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Self::$variant(payload) => payload.serialize(serializer), )*
                    Self::Extension { payload, .. } => payload.serialize(serializer),
                    Self::Unknown { payload, .. } => payload.serialize(serializer),
                }
            }
        }

        /// The JSON Schema of every catalog type's payload, with its type and description.
        pub(crate) fn catalog_schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
            vec![$( ($type, generator.subschema_for::<$payload>()), )*]
        }
    };
}

catalog! {
    /// `run.queued`: the run was accepted.
    RunQueued(RunQueued) = "run.queued", orchestrator_only: true;
    /// `build.created`: the build cache was consulted.
    BuildCreated(BuildCreated) = "build.created", orchestrator_only: true;
    /// `build.started`: the builder started.
    BuildStarted(BuildStarted) = "build.started", orchestrator_only: true;
    /// `build.phase.started`: a build phase began.
    BuildPhaseStarted(PhaseStarted) = "build.phase.started", orchestrator_only: false;
    /// `build.phase.completed`: a build phase ended.
    BuildPhaseCompleted(BuildPhaseCompleted) = "build.phase.completed", orchestrator_only: false;
    /// `build.completed`: the build ended.
    BuildCompleted(BuildCompleted) = "build.completed", orchestrator_only: true;
    /// `console.line`: one line of output.
    ConsoleLine(ConsoleLine) = "console.line", orchestrator_only: false;
    /// `run.started`: the engine started.
    RunStarted(RunStarted) = "run.started", orchestrator_only: true;
    /// `run.phase.started`: an engine phase began.
    RunPhaseStarted(PhaseStarted) = "run.phase.started", orchestrator_only: false;
    /// `run.phase.completed`: an engine phase ended.
    RunPhaseCompleted(RunPhaseCompleted) = "run.phase.completed", orchestrator_only: false;
    /// `run.table.summary`: one table found in an input.
    RunTableSummary(TableSummary) = "run.table.summary", orchestrator_only: false;
    /// `run.validation.issue`: one problem with one value.
    RunValidationIssue(ValidationIssue) = "run.validation.issue", orchestrator_only: false;
    /// `run.validation.summary`: validation counts of the whole run.
    RunValidationSummary(ValidationAggregate) = "run.validation.summary", orchestrator_only: false;
    /// `run.error`: something failed.
    RunError(RunError) = "run.error", orchestrator_only: false;
    /// `run.completed`: the run ended. Exactly one, always last.
    RunCompleted(Box<RunCompleted>) = "run.completed", orchestrator_only: true;
}

macro_rules! payload_into_event {
    ($($payload:ident => $variant:ident),* $(,)?) => {
        $(
            impl From<$payload> for EventPayload {
                fn from(payload: $payload) -> Self {
                    Self::$variant(payload.into())
                }
            }
        )*
    };
}

// Payloads used by exactly one type convert directly; `PhaseStarted` (build and run) does not.
payload_into_event!(
    RunQueued => RunQueued,
    BuildCreated => BuildCreated,
    BuildStarted => BuildStarted,
    BuildPhaseCompleted => BuildPhaseCompleted,
    BuildCompleted => BuildCompleted,
    ConsoleLine => ConsoleLine,
    RunStarted => RunStarted,
    RunPhaseCompleted => RunPhaseCompleted,
    TableSummary => RunTableSummary,
    ValidationIssue => RunValidationIssue,
    ValidationAggregate => RunValidationSummary,
    RunError => RunError,
    RunCompleted => RunCompleted,
);
