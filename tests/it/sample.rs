//! The sample shipped in `examples/` runs as documented: `members.json` over `members.csv`.

use std::path::Path;
use std::time::Duration;

use ade::dispatch::After;
use ade::event::{EventPayload, WorkspaceId};
use ade::{CreateRun, Runtime};
use futures::TryStreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_members_file_is_extracted_with_its_three_problems() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = ade::extract::register(Runtime::builder())
        .data_dir(dir.path())
        .configurations_dir(examples.join("config"))
        .build()
        .await
        .expect("runtime");
    let document =
        runtime.upload_file(&WorkspaceId::default(), &examples.join("data/members.csv")).await.expect("upload");
    let run = runtime
        .create_run(CreateRun::new("members".parse().expect("id")).document(document.id))
        .await
        .expect("create")
        .into_run();
    let stream = runtime.subscribe(None, run.id, After(0)).await.expect("subscribe");
    let events = tokio::time::timeout(Duration::from_secs(60), stream.try_collect::<Vec<_>>())
        .await
        .expect("the run ends")
        .expect("events");
    let payloads: Vec<EventPayload> = events.iter().map(|e| e.envelope().expect("typed").payload.clone()).collect();

    let tables: Vec<_> =
        payloads.iter().filter_map(|p| if let EventPayload::RunTableSummary(t) = p { Some(t) } else { None }).collect();
    assert_eq!(tables.len(), 1);
    let table = tables[0];
    assert_eq!((table.row_count, table.metadata.header_row, table.metadata.last_data_row), (6, 4, 10));
    assert_eq!(table.mapped_field_count, 5, "{:?}", table.mapping.mapped_columns);
    assert_eq!(table.mapping.unmapped_columns.len(), 1);
    assert_eq!(table.mapping.unmapped_columns[0].header, "Co.");

    let mut issues: Vec<(u64, String, String)> = payloads
        .iter()
        .filter_map(|p| match p {
            EventPayload::RunValidationIssue(i) => Some((i.row?, i.code.clone(), i.field.clone()?)),
            _ => None,
        })
        .collect();
    issues.sort();
    assert_eq!(
        issues,
        [
            (6, "invalid_email".to_owned(), "email".to_owned()),
            (7, "missing_required_value".to_owned(), "member_id".to_owned()),
            (9, "invalid_email".to_owned(), "email".to_owned()),
        ]
    );
    let Some(EventPayload::RunCompleted(done)) = payloads.last() else { panic!("the log ends with run.completed") };
    assert_eq!(done.status, ade::run::RunOutcome::Succeeded);
    assert_eq!(done.summary.core.validation_issue_count_total, 3);
    assert_eq!(done.artifacts.output_paths, ["outputs/normalized.xlsx"]);
    assert!(runtime.run_dir(&run.workspace_id, run.id).join("outputs/normalized.xlsx").is_file());
    runtime.shutdown().await;
}
