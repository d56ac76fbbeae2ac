//! Runs whose `run.completed` would be over the event size limit still end (issue 16).

use super::*;
use crate::event::WorkspaceId;

/// An `extract` configuration with `fields` fields `field_00000`, `field_00001`, …
fn wide_configuration(fields: usize) -> Configuration {
    let fields: Vec<_> = (0..fields)
        .map(|i| json!({ "name": format!("field_{i:05}"), "label": format!("Field number {i}") }))
        .collect();
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

#[tokio::test]
async fn a_run_of_a_ten_thousand_field_configuration_ends_with_a_completion_that_fits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime =
        Runtime::builder()
        .data_dir(dir.path())
        .max_configuration_fields(10_000)
        .configuration(wide_configuration(10_000))
        .build()
        .await
        .expect("runtime");
    let csv = b"field_00000,field_00001,field_09999\n1,2,3\n4,5,6\n";
    let document = runtime
        .upload_document(&WorkspaceId::default(), "small.csv", None, &csv[..], 1 << 20)
        .await
        .expect("upload");
    let (run, events) = run_to_end(&runtime, CreateRun::new(id("wide")).document(document.id)).await;
    assert!(run.status.is_terminal(), "the row is terminal: {:?}", run.status);
    let completed = completion(&events);
    assert_eq!(completed.status, RunOutcome::Succeeded, "{:?}", completed.failure);
    let bytes = completion_bytes(&runtime, &run).await;
    assert!(bytes < 1024 * 1024, "run.completed is {bytes} bytes");
    let summary = &completed.summary;
    assert_eq!(summary.core.canonical_field_count, 10_000, "the totals count every field");
    // The engine's own run.table.summary lists every field and is over the limit too: not published,
    // and said so.
    let warned = events.iter().any(|e| {
        matches!(&e.payload, EventPayload::ConsoleLine(line)
            if line.level == ConsoleLevel::Warn && line.message.contains("was not published"))
    });
    assert!(warned, "the lost table summary is reported");
    assert!(summary.breakdowns.by_field.len() < 10_000, "by_field is cut");
    let truncated = summary.truncated.as_ref().expect("a truncated marker");
    let left_out = truncated.omitted.get("breakdowns.by_field").copied();
    assert_eq!(left_out, Some(10_000 - summary.breakdowns.by_field.len() as u64));
    assert_eq!(summary.breakdowns.by_field[0].field, "field_00000", "kept in configuration order");
    assert_well_formed(&run, &events);
    runtime.shutdown().await;
}
