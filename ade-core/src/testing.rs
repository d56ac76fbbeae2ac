//! Helpers for the crate's own tests: run keys and events of every kind.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;

use crate::dispatch::After;
use crate::orchestrate::{CreateRun, Runtime};
use crate::run::Run;

use crate::event::*;
use crate::run::RunOutcome;
use crate::store::RunKey;
use crate::summary::{RunSummary, RunSummaryBuilder};

/// A new run's key in `workspace`.
pub fn run_key(workspace: &str) -> RunKey {
    RunKey::new(WorkspaceId::new(workspace).expect("valid workspace"), RunId::new())
}

/// A console line with `message`.
pub fn console(message: &str) -> EventPayload {
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
pub fn stored(run: &RunKey, sequence: u64, payload: EventPayload) -> Arc<StoredEvent> {
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
pub fn lines(run: &RunKey, first: u64, last: u64) -> Vec<Arc<StoredEvent>> {
    (first..=last).map(|seq| stored(run, seq, console(&format!("line {seq}")))).collect()
}

/// A configuration id from a literal.
pub fn id(text: &str) -> ConfigurationId {
    ConfigurationId::new(text).expect("valid id")
}

/// Creates a run and follows it to its end: the run as stored, and every event.
pub async fn run_to_end(runtime: &Runtime, request: CreateRun) -> (Run, Vec<Envelope>) {
    let run = runtime.create_run(request).await.expect("create").into_run();
    let events = follow(runtime, run.id).await;
    let run = runtime.get_run(None, run.id).await.expect("get").expect("exists");
    (run, events)
}

/// Every event of a run, replayed then live, until `run.completed` (with a hang guard).
pub async fn follow(runtime: &Runtime, id: RunId) -> Vec<Envelope> {
    let stream = runtime.subscribe(None, id, After(0)).await.expect("subscribe");
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(30), stream.try_collect::<Vec<_>>())
        .await
        .expect("the run must end")
        .expect("no stream error");
    events.iter().map(|e| e.envelope().expect("typed").clone()).collect()
}

/// The events' types, in order.
pub fn types(events: &[Envelope]) -> Vec<&str> {
    events.iter().map(Envelope::event_type).collect()
}

/// The payload of the log's last event, which must be `run.completed`.
pub fn completion(events: &[Envelope]) -> &RunCompleted {
    match &events.last().expect("events").payload {
        EventPayload::RunCompleted(completed) => completed,
        other => panic!("last event is {}", other.event_type()),
    }
}

/// What every finished run's log and row must say (SPEC §5): sequences contiguous from 1, one
/// `run.completed` (the last event), counting the log, and the row agreeing with it.
pub fn assert_well_formed(run: &Run, events: &[Envelope]) {
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>(), "contiguous from 1");
    assert_eq!(types(events).iter().filter(|t| **t == "run.completed").count(), 1);
    let completed = completion(events);
    assert_eq!(completed.event_count, events.len() as u64);
    assert_eq!(run.status, crate::run::RunStatus::from(completed.status), "the row and the log agree");
    assert_eq!(run.last_sequence, events.len() as u64);
    assert_eq!(run.summary.as_ref(), Some(&completed.summary));
    assert_eq!(run.failure, completed.failure);
}
