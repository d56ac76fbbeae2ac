//! The exporter against a real NATS server with JetStream (`ADE_TEST_NATS_URL`; skipped without
//! it, failing under `ADE_REQUIRE_NATS=1`). Each test has a stream and subject prefix of its own.
#![allow(clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ade_core::event::WorkspaceId;
use ade_core::store::RunKey;
use ade_core::test_util::export::{LinesEngine, builder, fast, lines_configuration};
use ade_core::{CreateRun, Runtime, RuntimeBuilder, dispatch::After};
use ade_nats::test_util::{self, Stored};
use ade_nats::{Error, JetStreamExporter, JetStreamOptions, MAX_EVENT_BYTES, Oversize};
use futures::TryStreamExt;

/// Runs `members` once in each of `workspaces` on a runtime from `builder` with the exporter,
/// shuts down (letting the exporter catch up), and checks that the stream holds exactly each run's
/// stored log: every event's bytes and id, in order, once.
async fn export_and_compare(url: &str, builder: RuntimeBuilder, workspaces: &[&str], min_events: usize) {
    let options = test_util::unique_options();
    let exporter = JetStreamExporter::connect(url, options.clone()).await.expect("connect");
    let runtime = builder.exporter(Arc::new(exporter)).build().await.expect("runtime");
    let mut runs = Vec::new();
    for workspace in workspaces {
        let workspace = WorkspaceId::new(*workspace).expect("valid");
        let create = CreateRun::new("members".parse().expect("id")).workspace(workspace);
        runs.push(runtime.create_run(create).await.expect("create").into_run());
    }
    for run in &runs {
        let _: Vec<_> = runtime
            .subscribe(Some(&run.workspace_id), run.id, After(0))
            .await
            .expect("subscribe")
            .try_collect()
            .await
            .expect("follow to the end");
    }
    // Lets the exporter deliver what was persisted.
    runtime.shutdown().await;

    assert_stream_holds_the_logs(url, &options, &runtime, &runs, min_events).await;
    test_util::delete_stream(url, &options.stream).await;
}

/// The stream holds exactly each run's stored log: every event's bytes and id, in order, once.
async fn assert_stream_holds_the_logs(
    url: &str,
    options: &JetStreamOptions,
    runtime: &Runtime,
    runs: &[ade_core::run::Run],
    min_events: usize,
) {
    let stream = test_util::read_stream(url, &options.stream).await;
    assert_eq!(stream.len(), runs.len(), "one subject per run: {:?}", stream.keys());
    for run in runs {
        let key = RunKey::new(run.workspace_id.clone(), run.id);
        let log: Vec<_> =
            runtime.dispatcher().store().read_after(&key, 0).await.expect("read").try_collect().await.expect("log");
        let expected: Vec<Stored> = log
            .iter()
            .map(|e| Stored { msg_id: e.envelope().expect("typed").event_id.to_string(), payload: e.json().clone() })
            .collect();
        let subject = ade_nats::subject(&options.subject_prefix, &key);
        let published = stream.get(&subject).expect("the run's subject");
        assert!(log.len() > min_events, "the run's whole log: {}", log.len());
        assert!(published == &expected, "{subject}: every stored event, bytes and id, in order, once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_holds_exactly_each_runs_stored_log_in_order() {
    let Some(url) = test_util::url() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    // Batches of 4: a run's 25+ events take several deliveries, each pipelined; a workspace id
    // with a `.` and one that differs from it only there get subjects of their own.
    export_and_compare(&url, builder(dir.path(), fast()), &["default", "acme.eu", "acme-eu"], 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_clients_acknowledgements_in_flight_is_delivered_whole() {
    let Some(url) = test_util::url() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let builder = || {
        Runtime::builder()
            .data_dir(dir.path())
            .engine("lines", Arc::new(LinesEngine { lines: 5_500 }), None)
            .configuration(lines_configuration("members"))
    };
    // The run ends before the exporter exists: the next runtime's first rescan finds its whole
    // log behind the cursor and delivers it as one batch of ~5,500 events, more than the client's
    // 5,000 acknowledgement permits.
    let runtime = builder().build().await.expect("runtime");
    let run = runtime.create_run(CreateRun::new("members".parse().expect("id"))).await.expect("create").into_run();
    let _: Vec<_> =
        runtime.subscribe(None, run.id, After(0)).await.expect("subscribe").try_collect().await.expect("end");
    runtime.shutdown().await;
    // Releases the data directory's lock for the next runtime.
    drop(runtime);

    let options = test_util::unique_options();
    let exporter = JetStreamExporter::connect(&url, options.clone()).await.expect("connect");
    let runtime = builder()
        .exporter(Arc::new(exporter))
        .export_options(fast().with_batch_size(6_000))
        .build()
        .await
        .expect("runtime");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while test_util::message_count(&url, &options.stream).await < 5_500 {
        assert!(std::time::Instant::now() < deadline, "the backlog is exported within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    runtime.shutdown().await;
    assert_stream_holds_the_logs(&url, &options, &runtime, &[run], 5_500).await;
    test_util::delete_stream(&url, &options.stream).await;
}

#[tokio::test]
async fn a_server_whose_max_payload_cannot_carry_the_largest_event_is_refused_at_start() {
    let Some(url) = test_util::url() else { return };
    let options = test_util::unique_options().with_oversize(Oversize::Refuse);
    match JetStreamExporter::connect(&url, options.clone()).await {
        Err(Error::MaxPayloadTooSmall { max_payload, needed }) => {
            assert!(max_payload < needed && needed > MAX_EVENT_BYTES, "{max_payload} < {needed}");
            let text = Error::MaxPayloadTooSmall { max_payload, needed }.to_string();
            assert!(text.contains("max_payload") && text.contains("stub"), "{text}");
        }
        // A server configured with room for the largest event (e.g. `max_payload: 2MB`).
        Ok(exporter) => {
            assert!(exporter.max_payload() >= MAX_EVENT_BYTES + ade_nats::HEADER_ROOM);
            test_util::delete_stream(&url, &options.stream).await;
        }
        Err(other) => panic!("unexpected: {other}"),
    }
}

#[tokio::test]
async fn a_stream_that_does_not_take_the_subjects_is_refused() {
    let Some(url) = test_util::url() else { return };
    let options = test_util::unique_options();
    let exporter = JetStreamExporter::connect(&url, options.clone()).await.expect("connect");
    drop(exporter);
    let other = JetStreamOptions::default()
        .with_stream(options.stream.clone())
        .with_subject_prefix(format!("{}.other", options.subject_prefix))
        .with_oversize(Oversize::Stub);
    let error = JetStreamExporter::connect(&url, other).await.expect_err("other subjects");
    assert!(matches!(error, Error::StreamSubjects { .. }), "{error}");
    test_util::delete_stream(&url, &options.stream).await;
}
