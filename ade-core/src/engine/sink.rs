//! [`EventSink`]: how engines and builders emit events (SPEC §8.1). It stamps nothing itself: it
//! checks what an engine may emit, applies the per-run limits of SPEC §9, and hands the rest to
//! the run's writer with `source: engine`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dispatch::RunWriter;
use crate::event::{
    BuildPhaseCompleted, ConsoleLevel, ConsoleLine, ConsoleScope, ConsoleStream, EventPayload, EventSource,
    PhaseStarted, PhaseStatus, RunError, RunPhaseCompleted, TableSummary, ValidationAggregate, ValidationIssue,
};
use crate::run::{Extra, Stage};

/// Longest `console.line` message by default; longer ones are cut and marked
/// `…[truncated N bytes]` (see [`SinkLimits::max_console_message`]).
pub const MAX_CONSOLE_MESSAGE: usize = 16 * 1024;
/// `run.validation.issue` events published per run by default; further issues are counted, not
/// published (see [`SinkLimits::max_published_issues`]).
pub const MAX_PUBLISHED_ISSUES: u64 = 10_000;
/// The smallest console message limit: room for `…[truncated N bytes]` with any N, so that a
/// subprocess line cut to the limit is not cut again.
pub const MIN_CONSOLE_MESSAGE: usize = 64;
/// Longest `run.validation.issue.value`, in characters.
const MAX_ISSUE_VALUE_CHARS: usize = 256;

/// The per-run limits of SPEC §9 that the sink applies to what engines emit. Every limit has a
/// default (the constants above) and a setting ([`RuntimeBuilder::sink_limits`](crate::RuntimeBuilder::sink_limits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkLimits {
    /// Longest `console.line` message, in bytes (default [`MAX_CONSOLE_MESSAGE`]); a longer one is
    /// cut on a character boundary and marked `…[truncated N bytes]`.
    pub max_console_message: usize,
    /// `run.validation.issue` events published per run (default [`MAX_PUBLISHED_ISSUES`]); the
    /// rest are counted and reported by one warning when the engine returns.
    pub max_published_issues: u64,
}

impl Default for SinkLimits {
    fn default() -> Self {
        Self { max_console_message: MAX_CONSOLE_MESSAGE, max_published_issues: MAX_PUBLISHED_ISSUES }
    }
}

impl SinkLimits {
    /// Sets [`max_console_message`](Self::max_console_message) (at least
    /// [`MIN_CONSOLE_MESSAGE`] bytes, so that a cut line's marker fits).
    #[must_use]
    pub fn with_max_console_message(mut self, bytes: usize) -> Self {
        self.max_console_message = bytes.max(MIN_CONSOLE_MESSAGE);
        self
    }

    /// Sets [`max_published_issues`](Self::max_published_issues) (0 publishes none, counts all).
    #[must_use]
    pub fn with_max_published_issues(mut self, issues: u64) -> Self {
        self.max_published_issues = issues;
        self
    }
}

/// Why the sink refused an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Only the orchestrator emits this type.
    #[error("{0} is emitted by ade itself, not by engines")]
    Forbidden(String),
    /// The run's writer refused it (the run is complete, the event is too large, the store failed).
    #[error(transparent)]
    Writer(#[from] crate::Error),
}

/// Where an engine or builder sends its events. Cheap to clone; clones share the run's limits.
#[derive(Debug, Clone)]
pub struct EventSink {
    writer: Arc<RunWriter>,
    scope: ConsoleScope,
    phase: Option<Arc<str>>,
    issues: Arc<AtomicU64>,
    limits: SinkLimits,
}

impl EventSink {
    /// A sink writing to `writer` for the build or the run (`scope`), with the default limits.
    pub fn new(writer: Arc<RunWriter>, scope: ConsoleScope) -> Self {
        Self { writer, scope, phase: None, issues: Arc::new(AtomicU64::new(0)), limits: SinkLimits::default() }
    }

    /// With `limits` instead of the defaults; set it before cloning, since clones copy the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: SinkLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits this sink applies.
    pub fn limits(&self) -> SinkLimits {
        self.limits
    }

    /// A sink for another scope of the same run, sharing its limits (the validation issue cap).
    pub fn for_scope(&self, scope: ConsoleScope) -> Self {
        Self { writer: self.writer.clone(), scope, phase: None, issues: self.issues.clone(), limits: self.limits }
    }

    /// Whether this sink belongs to the build or the run.
    pub fn scope(&self) -> ConsoleScope {
        self.scope
    }

    /// Emits any event an engine may emit: catalog types other than the orchestrator's, and `x.*`.
    ///
    /// # Errors
    /// [`SinkError::Forbidden`] for `run.queued`, `run.started`, `build.created`, `build.started`,
    /// `build.completed` and `run.completed`; [`SinkError::Writer`] when the writer refuses it.
    pub async fn emit(&self, payload: impl Into<EventPayload>) -> Result<u64, SinkError> {
        let payload = payload.into();
        if payload.is_orchestrator_only() {
            return Err(SinkError::Forbidden(payload.event_type().to_owned()));
        }
        let payload = match payload {
            EventPayload::ConsoleLine(mut line) => {
                truncate_message(&mut line.message, self.limits.max_console_message);
                EventPayload::ConsoleLine(line)
            }
            EventPayload::RunValidationIssue(mut issue) => {
                if self.issues.fetch_add(1, Ordering::Relaxed) >= self.limits.max_published_issues {
                    return Ok(0); // counted, not published; see `unpublished_issues`
                }
                if let Some(value) = &mut issue.value
                    && let Some((cut, _)) = value.char_indices().nth(MAX_ISSUE_VALUE_CHARS)
                {
                    value.truncate(cut);
                }
                EventPayload::RunValidationIssue(issue)
            }
            other => other,
        };
        Ok(self.writer.emit(EventSource::Engine, payload).await?)
    }

    /// `build.phase.started` or `run.phase.started`, by scope; later console lines carry the phase.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn phase_started(&mut self, phase: &str, message: Option<&str>) -> Result<u64, SinkError> {
        self.phase = Some(phase.into());
        let payload =
            PhaseStarted { phase: phase.to_owned(), message: message.map(str::to_owned), extra: Extra::new() };
        match self.scope {
            ConsoleScope::Build => self.emit(EventPayload::BuildPhaseStarted(payload)).await,
            _ => self.emit(EventPayload::RunPhaseStarted(payload)).await,
        }
    }

    /// `build.phase.completed` or `run.phase.completed`, by scope (`metrics` only on run phases).
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn phase_completed(
        &mut self,
        phase: &str,
        status: PhaseStatus,
        duration_ms: u64,
        metrics: Option<std::collections::BTreeMap<String, serde_json::Number>>,
    ) -> Result<u64, SinkError> {
        self.phase = None;
        let (phase, extra) = (phase.to_owned(), Extra::new());
        match self.scope {
            ConsoleScope::Build => {
                self.emit(BuildPhaseCompleted { phase, status, duration_ms, message: None, extra }).await
            }
            _ => self.emit(RunPhaseCompleted { phase, status, duration_ms, message: None, metrics, extra }).await,
        }
    }

    /// One `console.line` (cut to [`SinkLimits::max_console_message`]), tagged with the current phase.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn console(
        &self,
        level: ConsoleLevel,
        stream: ConsoleStream,
        message: impl Into<String>,
    ) -> Result<u64, SinkError> {
        self.emit(ConsoleLine {
            scope: self.scope,
            stream,
            level,
            message: message.into(),
            phase: self.phase.as_deref().map(str::to_owned),
            logger: None,
            engine_timestamp: None,
            extra: Extra::new(),
        })
        .await
    }

    /// One `run.table.summary`.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn table_summary(&self, table: TableSummary) -> Result<u64, SinkError> {
        self.emit(table).await
    }

    /// One `run.validation.issue`, published while the run is under the cap, counted always.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn issue(&self, issue: ValidationIssue) -> Result<u64, SinkError> {
        self.emit(issue).await
    }

    /// `run.validation.summary` for the whole run.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn validation_summary(&self, summary: ValidationAggregate) -> Result<u64, SinkError> {
        self.emit(summary).await
    }

    /// `run.error` in this sink's stage.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn error(&self, code: &str, message: impl Into<String>) -> Result<u64, SinkError> {
        let stage = match self.scope {
            ConsoleScope::Build => Stage::Build,
            _ => Stage::Run,
        };
        self.emit(RunError {
            stage,
            code: code.to_owned(),
            message: message.into(),
            phase: self.phase.as_deref().map(str::to_owned),
            details: None,
            extra: Extra::new(),
        })
        .await
    }

    /// Validation issues counted beyond [`SinkLimits::max_published_issues`] and so not published.
    pub fn unpublished_issues(&self) -> u64 {
        self.issues.load(Ordering::Relaxed).saturating_sub(self.limits.max_published_issues)
    }
}

/// Cuts a console message to `max` bytes (on a character boundary) and says so.
pub(crate) fn truncate_message(message: &mut String, max: usize) {
    if message.len() <= max {
        return;
    }
    let mut cut = max;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = message.len() - cut;
    message.truncate(cut);
    message.push_str(&format!("…[truncated {dropped} bytes]"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary_and_marked() {
        let mut short = "fine".to_owned();
        truncate_message(&mut short, MAX_CONSOLE_MESSAGE);
        assert_eq!(short, "fine");
        let mut long = "é".repeat(MAX_CONSOLE_MESSAGE); // 2 bytes each
        truncate_message(&mut long, MAX_CONSOLE_MESSAGE);
        assert!(long.ends_with(&format!("…[truncated {MAX_CONSOLE_MESSAGE} bytes]")));
        assert!(long.len() < MAX_CONSOLE_MESSAGE + 40);
        let mut small = "aéb".to_owned(); // the cut at 2 falls inside `é`
        truncate_message(&mut small, 2);
        assert_eq!(small, "a…[truncated 3 bytes]");
    }
}
