//! Helpers for the crate's own tests: run keys and events of every kind.

use std::sync::Arc;

use crate::event::*;
use crate::run::RunOutcome;
use crate::store::RunKey;
use crate::summary::{RunSummary, RunSummaryBuilder};

pub(crate) fn run_key(workspace: &str) -> RunKey {
    RunKey::new(WorkspaceId::new(workspace).expect("valid workspace"), RunId::new())
}

pub(crate) fn console(message: &str) -> EventPayload {
    EventPayload::ConsoleLine(ConsoleLine {
        scope: ConsoleScope::Run,
        stream: ConsoleStream::Stdout,
        level: ConsoleLevel::Info,
        message: message.to_owned(),
        phase: None,
        logger: None,
        engine_timestamp: None,
        extra: Default::default(),
    })
}

pub(crate) fn summary(run: &RunKey) -> RunSummary {
    let configuration = ConfigurationId::new("members").expect("valid");
    RunSummaryBuilder::new(run.run_id, run.workspace_id.clone(), configuration, Vec::new()).summary(None)
}

pub(crate) fn completed(run: &RunKey, event_count: u64) -> EventPayload {
    EventPayload::RunCompleted(Box::new(RunCompleted {
        status: RunOutcome::Succeeded,
        failure: None,
        execution: Execution { exit_code: Some(0), started_at: None, completed_at: Timestamp::now(), duration_ms: 0 },
        artifacts: Artifacts { output_paths: Vec::new(), events_path: "logs/events.ndjson".to_owned() },
        summary: summary(run),
        event_count,
        extra: Default::default(),
    }))
}

/// A stamped event, as the dispatcher would make it.
pub(crate) fn stored(run: &RunKey, sequence: u64, payload: EventPayload) -> Arc<StoredEvent> {
    Arc::new(
        StoredEvent::new(Envelope {
            event_id: EventId::new(),
            created_at: Timestamp::now(),
            sequence,
            source: EventSource::Api,
            workspace_id: run.workspace_id.clone(),
            configuration_id: ConfigurationId::new("members").expect("valid"),
            run_id: run.run_id,
            build_id: None,
            payload,
        })
        .expect("serializable"),
    )
}

/// Events `first..=last` of a run, console lines only.
pub(crate) fn lines(run: &RunKey, first: u64, last: u64) -> Vec<Arc<StoredEvent>> {
    (first..=last).map(|seq| stored(run, seq, console(&format!("line {seq}")))).collect()
}
