//! Runs whose `run.completed` would be over the event size limit still end (issue 16).

use super::*;
use crate::dispatch::After;
use crate::test_util::scripted::setting;

/// An `extract` configuration with `fields` fields `field_00000`, `field_00001`, …
fn wide_configuration(fields: usize) -> Configuration {
    let fields: Vec<_> =
        (0..fields).map(|i| json!({ "name": format!("field_{i:05}"), "label": format!("Field number {i}") })).collect();
    serde_json::from_value(json!({
        "id": "wide", "version": "1", "engine": "extract", "output_format": "csv", "fields": fields
    }))
    .expect("valid configuration")
}

/// The serialized size of a run's last event, as stored.
async fn completion_bytes(runtime: &Runtime, run: &Run) -> usize {
    let key = crate::store::RunKey::new(run.workspace_id.clone(), run.id);
    let mut events = runtime.dispatcher().store().read_after(&key, run.last_sequence - 1).await.expect("read");
    let last = futures::StreamExt::next(&mut events).await.expect("an event").expect("readable");
    last.json().len()
}

/// An engine that puts more into a run than one event holds, as its configuration's settings
/// say: `tables` tables of 3,000 distinct 300-byte issue codes each (each table summary fits in
/// an event, their sum does not), then `block` until cancelled, `fail_bytes` of failure message,
/// or its one output listed `outputs` times.
#[derive(Debug)]
struct BloatingEngine;

/// Distinct codes per table of [`BloatingEngine`].
const CODES_PER_TABLE: u64 = 3_000;

fn number(configuration: &Configuration, name: &str) -> u64 {
    match &configuration.engine {
        EngineSpec::Custom { settings, .. } => settings.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0),
        _ => 0,
    }
}

#[async_trait]
impl Engine for BloatingEngine {
    fn version(&self) -> &str {
        "bloating-1"
    }

    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome {
        let configuration = context.configuration.clone();
        for table in 0..number(&configuration, "tables") {
            let codes = (table * CODES_PER_TABLE..(table + 1) * CODES_PER_TABLE)
                .map(|i| (format!("{i:05}_{}", "x".repeat(294)), i + 1))
                .collect::<std::collections::BTreeMap<_, _>>();
            let validation = crate::event::ValidationAggregate {
                issues_total: codes.values().sum(),
                issues_by_code: codes,
                ..Default::default()
            };
            let summary = crate::event::TableSummary {
                table_id: format!("tbl_{table}"),
                source_file: format!("file_{table}.csv"),
                validation,
                ..Default::default()
            };
            if let Err(error) = sink.table_summary(summary).await {
                return EngineOutcome::failed(EngineFailure::new("engine_error", error.to_string()));
            }
        }
        if setting(&configuration, "block") {
            context.cancel.cancelled().await;
            return EngineOutcome::failed(EngineFailure::new("cancelled", "stopped"));
        }
        let fail_bytes = number(&configuration, "fail_bytes");
        if fail_bytes > 0 {
            let message = "m".repeat(usize::try_from(fail_bytes).expect("small"));
            return EngineOutcome::failed(EngineFailure::new("engine_error", message));
        }
        let outputs = number(&configuration, "outputs");
        if outputs > 0 {
            let _ = tokio::fs::create_dir_all(&context.output_dir).await;
            let _ = tokio::fs::write(context.output_dir.join("result.txt"), b"done").await;
            let listed = usize::try_from(outputs).expect("small");
            return EngineOutcome::succeeded(vec!["outputs/result.txt".to_owned(); listed]);
        }
        EngineOutcome::succeeded(Vec::new())
    }
}

/// Builds for [`BloatingEngine`] when `build_fail_bytes` is set, failing with that much message.
#[derive(Debug)]
struct BloatingBuilder;

#[async_trait]
impl Builder for BloatingBuilder {
    fn needs_build(&self, configuration: &Configuration) -> bool {
        number(configuration, "build_fail_bytes") > 0
    }

    async fn build(&self, context: BuildContext, _sink: EventSink) -> BuildOutcome {
        let bytes = usize::try_from(number(&context.configuration, "build_fail_bytes")).expect("small");
        let failure = EngineFailure::new("config_invalid", "b".repeat(bytes));
        BuildOutcome { result: Err(failure), exit_code: None, summary: None }
    }
}

/// A runtime of one `bloat` configuration with `settings`, on `dir`.
async fn bloating_runtime(dir: &std::path::Path, settings: serde_json::Value) -> Runtime {
    let mut configuration = json!({ "id": "bloat", "version": "1", "engine": "bloating" });
    if let (Some(object), Some(extra)) = (configuration.as_object_mut(), settings.as_object()) {
        object.extend(extra.clone());
    }
    Runtime::builder()
        .data_dir(dir)
        .cancel_grace(Duration::from_secs(5))
        .engine("bloating", Arc::new(BloatingEngine), Some(Arc::new(BloatingBuilder)))
        .configuration(serde_json::from_value(configuration).expect("configuration"))
        .build()
        .await
        .expect("runtime")
}

/// `run.completed` and the run's row are under 1 MiB (the event limit) and agree.
async fn assert_fits(runtime: &Runtime, run: &Run, events: &[Envelope]) {
    let bytes = completion_bytes(runtime, run).await;
    assert!(bytes < 1024 * 1024, "run.completed is {bytes} bytes");
    assert!(run.status.is_terminal(), "{:?}", run.status);
    assert_well_formed(run, events);
}

#[tokio::test]
async fn thousands_of_long_issue_codes_are_cut_to_the_most_frequent_and_marked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = bloating_runtime(dir.path(), json!({ "tables": 3 })).await;
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("bloat"))).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_fits(&runtime, &run, &events).await;
    let summary = &completion(&events).summary;
    let truncated = summary.truncated.as_ref().expect("a truncated marker");
    let all = 3 * CODES_PER_TABLE;
    let (max, per_file) = (crate::summary::bounds::MAX_CODES as u64, crate::summary::bounds::MAX_ENTRY_CODES as u64);
    assert_eq!(truncated.omitted.get("core.issue_counts_by_code"), Some(&(all - max)));
    assert_eq!(truncated.omitted.get("breakdowns.by_file[].issue_counts_by_code"), Some(&(all - 3 * per_file)));
    assert_eq!(truncated.shortened.get("core.issue_counts_by_code"), Some(&max), "each kept code is cut");
    assert_eq!(summary.core.issue_counts_by_code.len() as u64, max);
    // The most frequent are kept: code i was counted i + 1 times.
    let least = summary.core.issue_counts_by_code.values().min().copied();
    assert_eq!(least, Some(all - max + 1));
    assert_eq!(summary.core.validation_issue_count_total, (1..=all).sum::<u64>(), "totals count everything");
    assert_eq!(summary.breakdowns.by_file.len(), 3);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_huge_failure_message_is_cut_and_the_run_ends_failed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = bloating_runtime(dir.path(), json!({ "fail_bytes": 600_000 })).await;
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("bloat"))).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_fits(&runtime, &run, &events).await;
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!(failure.code, "engine_error");
    assert!(failure.message.len() <= crate::summary::bounds::MAX_FAILURE_MESSAGE_BYTES, "{}", failure.message.len());
    assert!(failure.message.ends_with(" bytes]"), "cut and marked");
    let error = events.iter().find_map(|e| match &e.payload {
        EventPayload::RunError(error) => Some(error.message.clone()),
        _ => None,
    });
    assert_eq!(error.as_ref(), Some(&failure.message), "run.error says the same");
    assert_eq!(completion(&events).summary.run.failure_message.as_ref(), Some(&failure.message));
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_completion_still_over_the_limit_ends_the_run_failed_with_a_small_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 100,000 output paths: 2 MB of run.completed that is not summary.
    let runtime = bloating_runtime(dir.path(), json!({ "tables": 1, "outputs": 100_000 })).await;
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("bloat"))).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_fits(&runtime, &run, &events).await;
    assert!(completion_bytes(&runtime, &run).await < 64 * 1024, "a small one");
    let completed = completion(&events);
    let failure = completed.failure.clone().expect("failure");
    assert_eq!(failure.code, crate::run::failure_code::COMPLETION_TOO_LARGE);
    assert!(failure.message.contains("the run ended succeeded"), "{}", failure.message);
    assert!(failure.message.contains("over the event size limit of 1048576 bytes"), "{}", failure.message);
    assert!(completed.artifacts.output_paths.is_empty());
    let summary = &completed.summary;
    assert_eq!(summary.run.status, RunStatus::Failed);
    assert_eq!(summary.run.failure_code.as_deref(), Some("completion_too_large"));
    assert!(summary.breakdowns.by_file.is_empty() && summary.core.issue_counts_by_code.is_empty());
    let truncated = summary.truncated.as_ref().expect("marked");
    assert_eq!(truncated.omitted.get("breakdowns.by_file"), Some(&1));
    assert_eq!(summary.core.validation_issue_count_total, (1..=CODES_PER_TABLE).sum::<u64>(), "totals stay");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_run_with_a_huge_summary_can_be_cancelled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = bloating_runtime(dir.path(), json!({ "tables": 3, "block": true })).await;
    let run = runtime.create_run(CreateRun::new(id("bloat"))).await.expect("create").into_run();
    super::wait_for_event(&runtime, run.id, "run.table.summary").await;
    runtime.cancel(None, run.id).await.expect("cancel");
    let events = follow(&runtime, run.id).await;
    let run = runtime.get_run(None, run.id).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_fits(&runtime, &run, &events).await;
    runtime.shutdown().await;
}

#[tokio::test]
async fn recovery_ends_a_run_with_a_huge_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = json!({ "tables": 3, "block": true });
    let (running, copy) = {
        let first = bloating_runtime(dir.path(), settings.clone()).await;
        let run = first.create_run(CreateRun::new(id("bloat"))).await.expect("create").into_run();
        // The third table summary is the last event before the engine blocks.
        let mut stream = first.subscribe(None, run.id, After(0)).await.expect("subscribe");
        let mut tables = 0;
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = stream.try_next().await.expect("event") {
                tables += usize::from(event.envelope().expect("typed").event_type() == "run.table.summary");
                if tables == 3 {
                    break;
                }
            }
        })
        .await
        .expect("three tables in time");
        // Pretend the process died while the run was running: copy its data away.
        let copy = tempfile::tempdir().expect("copy dir");
        super::copy_dir(dir.path(), copy.path());
        first.cancel(None, run.id).await.expect("cancel");
        follow(&first, run.id).await;
        first.shutdown().await;
        (run.id, copy)
    };
    let second = bloating_runtime(copy.path(), settings).await;
    let events = follow(&second, running).await;
    let run = second.get_run(None, running).await.expect("get").expect("run");
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!((run.status, failure.code.as_str()), (RunStatus::Failed, "orchestrator_lost"));
    assert_fits(&second, &run, &events).await;
    assert!(completion(&events).summary.truncated.is_some());
    second.shutdown().await;
}

#[tokio::test]
async fn the_runtime_refuses_configurations_over_its_field_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let refused = Runtime::builder().data_dir(dir.path()).configuration(wide_configuration(1_001)).build().await;
    let Err(Error::Config { reason, .. }) = refused else { panic!("1,001 fields are over the default limit") };
    assert!(reason.contains("over the limit of 1000 fields"), "{reason}");
    // The limit is the runtime's, whatever engine runs `extract` configurations.
    let runtime = Runtime::builder()
        .data_dir(dir.path())
        .max_configuration_fields(10)
        .engine("extract", Arc::new(BloatingEngine), None)
        .build()
        .await
        .expect("runtime");
    let refused = runtime.put_configuration(wide_configuration(11));
    assert!(
        matches!(refused, Err(Error::Config { ref reason, .. }) if reason.contains("limit of 10 fields")),
        "{refused:?}"
    );
    runtime.put_configuration(wide_configuration(10)).expect("at the limit");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_build_failure_with_a_huge_message_ends_build_failed_with_it_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = bloating_runtime(dir.path(), json!({ "build_fail_bytes": 2 << 20 })).await;
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("bloat"))).await;
    assert_fits(&runtime, &run, &events).await;
    let failure = completion(&events).failure.clone().expect("failure");
    assert_eq!((failure.stage, failure.code.as_str()), (Stage::Build, "build_failed"), "{}", failure.message);
    assert!(failure.message.len() <= crate::summary::bounds::MAX_FAILURE_MESSAGE_BYTES);
    assert_eq!(failure.message.matches("[truncated").count(), 1, "cut once");
    let built = events.iter().find_map(|e| match &e.payload {
        EventPayload::BuildCompleted(built) => built.error.clone(),
        _ => None,
    });
    let error = built.expect("build.completed carries the error");
    assert!(error.message.ends_with(" bytes]"), "cut and marked");
    runtime.shutdown().await;
}
