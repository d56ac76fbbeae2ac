//! The event model: the [`Envelope`], the typed catalog ([`EventPayload`]), ids and timestamps.

mod catalog;
mod envelope;
mod ids;
mod stored;
#[cfg(test)]
mod strategies;
mod table;
mod time;
mod validation;

pub(crate) use catalog::catalog_schemas;
pub use catalog::{
    Artifacts, BuildCompleted, BuildCreated, BuildEnv, BuildPhaseCompleted, BuildReason, BuildStarted, BuildStatus,
    BuildingStatus, ConsoleLevel, ConsoleLine, ConsoleScope, ConsoleStream, ErrorInfo, EventPayload, Execution,
    InProgressStatus, PhaseStarted, PhaseStatus, QueuedBy, QueuedStatus, RunCompleted, RunError, RunPhaseCompleted,
    RunQueued, RunStarted, ValidationIssue,
};
pub use envelope::{Envelope, EventSource};
pub use ids::{BuildId, ConfigurationId, DocumentId, EventId, RunId, WorkspaceId};
pub use stored::{SSE_EVENT_NAME, StoredEvent};
pub use table::{MappedColumn, TableMapping, TableMetadata, TableSummary, UnmappedColumn};
pub use time::Timestamp;
pub use validation::{FieldIssueCounts, Severity, ValidationAggregate};
