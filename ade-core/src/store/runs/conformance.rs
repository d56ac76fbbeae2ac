//! One test suite for every [`RunStore`] backend: what the trait promises (public for stores in
//! other crates, feature `test-util`).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{
    CreateOutcome, Document, Finalization, IDEMPOTENCY_WINDOW, IdempotencyKey, RunFilter, RunStore, Transition,
};
use crate::error::Error;
use crate::event::{BuildId, ConfigurationId, DocumentId, RunId, Timestamp, WorkspaceId};
use crate::run::{Failure, Run, RunLinks, RunMode, RunOptions, RunStatus, Stage, failure_code};
use crate::store::RunKey;
use crate::testing::summary;

const HOUR: Duration = Duration::from_secs(3600);

/// A new queued run of `configuration` in `workspace`, created now.
pub fn queued_run(workspace: &str, configuration: &str) -> Run {
    let id = RunId::new();
    Run {
        id,
        workspace_id: WorkspaceId::new(workspace).expect("valid workspace"),
        configuration_id: ConfigurationId::new(configuration).expect("valid configuration"),
        configuration_version: "sha256:0123abcd".to_owned(),
        build_id: None,
        status: RunStatus::Queued,
        mode: RunMode::Execute,
        document_ids: Vec::new(),
        options: RunOptions::default(),
        created_at: Timestamp::now(),
        started_at: None,
        completed_at: None,
        exit_code: None,
        failure: None,
        last_sequence: 0,
        summary: None,
        links: RunLinks::for_run(id),
    }
}

/// `run`, created at `micros` since the epoch.
pub fn created_at(mut run: Run, micros: i64) -> Run {
    run.created_at = Timestamp::from_unix_micros(micros).expect("in range");
    run
}

/// A document of `workspace`, uploaded now.
pub fn test_document(workspace: &str) -> Document {
    Document {
        id: DocumentId::new(),
        workspace_id: WorkspaceId::new(workspace).expect("valid workspace"),
        filename: "members.xlsx".to_owned(),
        byte_size: 123_456,
        sha256: "ab".repeat(32),
        content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
        created_at: Timestamp::now(),
    }
}

fn key(key: &str, request_hash: &str) -> IdempotencyKey {
    IdempotencyKey { key: key.to_owned(), request_hash: request_hash.to_owned() }
}

fn workspace(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).expect("valid workspace")
}

pub fn finalization(run: &Run, status: RunStatus, last_sequence: u64) -> Finalization {
    let mut summary = summary(&RunKey::new(run.workspace_id.clone(), run.id));
    summary.run.status = status;
    Finalization {
        status,
        completed_at: Timestamp::now(),
        exit_code: Some(if status == RunStatus::Succeeded { 0 } else { 3 }),
        failure: (status != RunStatus::Succeeded).then(|| Failure {
            stage: Stage::Run,
            code: failure_code::ENGINE_EXIT_NONZERO.to_owned(),
            message: "exit code 3".to_owned(),
        }),
        summary,
        last_sequence,
    }
}

/// Microseconds since the epoch, a day ago: a base for runs with chosen creation times.
fn a_day_ago() -> i64 {
    Timestamp::now().unix_micros() - 24 * 3600 * 1_000_000
}

async fn create(store: &dyn RunStore, run: &Run) {
    let outcome = store.create_run(run, None).await.expect("create run");
    assert_eq!(outcome, CreateOutcome::Created(run.clone()));
}

async fn status_of(store: &dyn RunStore, id: RunId) -> RunStatus {
    store.get_run(None, id).await.expect("get").expect("stored").status
}

/// Runs every conformance test against fresh stores from `make`; `G` keeps a store's resources
/// (a temporary directory) alive while it is used. Call it on a multi-thread runtime: claimers race.
pub async fn run_all<F, Fut, G>(make: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<dyn RunStore>, G)>,
{
    let (store, _guard) = make().await;
    round_trips_every_field(&*store).await;
    let (store, _guard) = make().await;
    scopes_runs_by_workspace(&*store).await;
    let (store, _guard) = make().await;
    stores_documents(&*store).await;
    let (store, _guard) = make().await;
    refuses_a_duplicate_run_id(&*store).await;
    let (store, _guard) = make().await;
    idempotency_same_request_returns_the_run(&*store).await;
    let (store, _guard) = make().await;
    idempotency_other_request_conflicts(&*store).await;
    let (store, _guard) = make().await;
    idempotency_keys_are_per_workspace(&*store).await;
    let (store, _guard) = make().await;
    idempotency_keys_expire(&*store).await;
    let (store, _guard) = make().await;
    lists_newest_first_in_pages(&*store).await;
    let (store, _guard) = make().await;
    refuses_cursors_it_did_not_make(&*store).await;
    let (store, _guard) = make().await;
    transitions_follow_the_state_machine(&*store).await;
    let (store, _guard) = make().await;
    transitions_set_their_fields(&*store).await;
    let (store, _guard) = make().await;
    finalizes_once(&*store).await;
    let (store, _guard) = make().await;
    claims_the_oldest_queued_run(&*store).await;
    let (store, _guard) = make().await;
    leases_renew_and_expire(&*store).await;
    let (store, _guard) = make().await;
    clearing_leases_frees_every_run(&*store).await;
    let (store, _guard) = make().await;
    lists_runs_in_statuses_oldest_first(&*store).await;
    let (store, _guard) = make().await;
    tracks_export_cursors(&*store).await;
    let (store, _guard) = make().await;
    racing_claimers_never_share_a_run(store).await;
}

/// Cursors are per exporter and run, never move back, and survive in the store; the backlog is
/// every active run and every finished one whose cursor is behind its log, in id order, paged.
async fn tracks_export_cursors(store: &dyn RunStore) {
    let mut runs: Vec<Run> = (0..4).map(|_| queued_run("acme", "members")).collect();
    runs.sort_by_key(|run| run.id);
    for run in &runs {
        create(store, run).await;
    }
    let ids =
        |backlog: Vec<super::ExportBacklog>| backlog.into_iter().map(|b| (b.run.run_id, b.acked)).collect::<Vec<_>>();
    assert_eq!(store.export_cursor("hook", runs[0].id).await.expect("cursor"), 0);
    let all = store.export_backlog("hook", None, 100).await.expect("backlog");
    assert_eq!(ids(all.clone()), runs.iter().map(|r| (r.id, 0)).collect::<Vec<_>>(), "active runs are all due");
    assert_eq!(all[0].run, RunKey::new(workspace("acme"), runs[0].id));

    store.ack_export("hook", runs[0].id, 5).await.expect("ack");
    store.ack_export("hook", runs[0].id, 3).await.expect("ack less");
    assert_eq!(store.export_cursor("hook", runs[0].id).await.expect("cursor"), 5, "never moves back");
    assert_eq!(store.export_cursor("other", runs[0].id).await.expect("cursor"), 0, "per exporter");
    assert_eq!(store.export_cursor("hook", runs[1].id).await.expect("cursor"), 0, "per run");

    // Finished runs: due while the cursor is behind the log's end, done once it reaches it.
    store.finalize(runs[0].id, finalization(&runs[0], RunStatus::Succeeded, 7)).await.expect("finalize 0");
    store.finalize(runs[1].id, finalization(&runs[1], RunStatus::Failed, 4)).await.expect("finalize 1");
    store.ack_export("hook", runs[1].id, 4).await.expect("ack to the end");
    let due = ids(store.export_backlog("hook", None, 100).await.expect("backlog"));
    assert_eq!(due, vec![(runs[0].id, 5), (runs[2].id, 0), (runs[3].id, 0)]);
    let other = ids(store.export_backlog("other", None, 100).await.expect("backlog"));
    assert_eq!(other.len(), 4, "another exporter has acknowledged nothing");

    // Pages: after the last id of the previous one.
    let first = ids(store.export_backlog("hook", None, 2).await.expect("page 1"));
    assert_eq!(first, vec![(runs[0].id, 5), (runs[2].id, 0)]);
    let second = ids(store.export_backlog("hook", Some(runs[2].id), 2).await.expect("page 2"));
    assert_eq!(second, vec![(runs[3].id, 0)]);
    assert!(store.export_backlog("hook", Some(runs[3].id), 2).await.expect("page 3").is_empty());

    store.ack_export("hook", runs[0].id, 7).await.expect("ack to the end");
    let due = ids(store.export_backlog("hook", None, 100).await.expect("backlog"));
    assert_eq!(due, vec![(runs[2].id, 0), (runs[3].id, 0)]);
}

async fn round_trips_every_field(store: &dyn RunStore) {
    let mut run = queued_run("acme", "members");
    run.mode = RunMode::DryRun;
    run.build_id = Some(BuildId::new());
    run.document_ids = vec![DocumentId::new(), DocumentId::new()];
    let mut metadata = serde_json::Map::new();
    metadata.insert("ticket".to_owned(), serde_json::json!({"id": 42, "tags": ["a", "b"]}));
    let mut extra = serde_json::Map::new();
    extra.insert("future_option".to_owned(), serde_json::json!(1.5));
    run.options = RunOptions {
        input_sheet_names: Some(vec!["Sheet 1".to_owned(), "Données".to_owned()]),
        force_rebuild: Some(true),
        metadata: Some(metadata),
        extra,
    };
    create(store, &run).await;
    assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(run.clone()));

    let started = Timestamp::now();
    let running = store
        .transition(run.id, Transition::to(RunStatus::Running).started_at(started).last_sequence(7))
        .await
        .expect("to running");
    assert_eq!((running.status, running.started_at, running.last_sequence), (RunStatus::Running, Some(started), 7));
    assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(running.clone()));

    let done = finalization(&run, RunStatus::Failed, 12);
    let failed = store.finalize(run.id, done.clone()).await.expect("finalize");
    let mut want = running;
    want.status = RunStatus::Failed;
    want.completed_at = Some(done.completed_at);
    want.exit_code = done.exit_code;
    want.failure = done.failure;
    want.summary = Some(done.summary);
    want.last_sequence = 12;
    assert_eq!(failed, want);
    assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(want));
}

async fn scopes_runs_by_workspace(store: &dyn RunStore) {
    let run = queued_run("acme", "members");
    create(store, &run).await;
    assert_eq!(store.get_run(Some(&workspace("acme")), run.id).await.expect("get"), Some(run.clone()));
    assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(run.clone()));
    assert_eq!(store.get_run(Some(&workspace("other")), run.id).await.expect("get"), None);
    assert_eq!(store.get_run(None, RunId::new()).await.expect("get"), None);
    assert_eq!(store.get_run(Some(&workspace("acme")), RunId::new()).await.expect("get"), None);
}

async fn stores_documents(store: &dyn RunStore) {
    let document = test_document("acme");
    store.create_document(&document).await.expect("create");
    let other = test_document("other");
    store.create_document(&other).await.expect("create other");
    assert_eq!(store.get_document(None, document.id).await.expect("get"), Some(document.clone()));
    assert_eq!(store.get_document(Some(&workspace("acme")), document.id).await.expect("get"), Some(document.clone()));
    assert_eq!(store.get_document(Some(&workspace("other")), document.id).await.expect("get"), None);
    assert_eq!(store.get_document(Some(&workspace("other")), other.id).await.expect("get"), Some(other));
    assert_eq!(store.get_document(None, DocumentId::new()).await.expect("get"), None);

    let mut duplicate = test_document("acme");
    duplicate.id = document.id;
    duplicate.filename = "other.csv".to_owned();
    let refused = store.create_document(&duplicate).await;
    assert!(matches!(refused, Err(Error::Database(_))), "{refused:?}");
    assert_eq!(store.get_document(None, document.id).await.expect("get"), Some(document));
}

async fn refuses_a_duplicate_run_id(store: &dyn RunStore) {
    let run = queued_run("acme", "members");
    create(store, &run).await;
    let mut twin = queued_run("acme", "payroll");
    twin.id = run.id;
    let refused = store.create_run(&twin, None).await;
    assert!(matches!(refused, Err(Error::Database(_))), "{refused:?}");
    let keyed = store.create_run(&twin, Some(&key("k", "h1"))).await;
    assert!(matches!(keyed, Err(Error::Database(_))), "{keyed:?}");
    assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(run));
    // The refused create kept no key: the same key with another request is not a conflict.
    let fresh = queued_run("acme", "members");
    assert_eq!(
        store.create_run(&fresh, Some(&key("k", "h2"))).await.expect("create"),
        CreateOutcome::Created(fresh.clone())
    );
}

async fn idempotency_same_request_returns_the_run(store: &dyn RunStore) {
    let first = queued_run("acme", "members");
    let created = store.create_run(&first, Some(&key("k1", "h1"))).await.expect("create");
    assert_eq!(created, CreateOutcome::Created(first.clone()));
    let retry = queued_run("acme", "members");
    let again = store.create_run(&retry, Some(&key("k1", "h1"))).await.expect("retry");
    assert_eq!(again, CreateOutcome::Existing(first.clone()));
    assert_eq!(store.get_run(None, retry.id).await.expect("get"), None, "the retry stored nothing");

    // Existing is the run as it is now.
    let building = store.transition(first.id, Transition::to(RunStatus::Building)).await.expect("build");
    let later = store.create_run(&queued_run("acme", "members"), Some(&key("k1", "h1"))).await.expect("later");
    assert_eq!(later, CreateOutcome::Existing(building));

    // A key well inside the window still holds.
    let old = created_at(queued_run("acme", "members"), a_day_ago() + 3600 * 1_000_000);
    create_keyed(store, &old, "k-old", "h").await;
    let outcome = store.create_run(&queued_run("acme", "members"), Some(&key("k-old", "h"))).await.expect("retry");
    assert_eq!(outcome, CreateOutcome::Existing(old));

    let page = store.list_runs(&RunFilter::default(), 100, None).await.expect("list");
    assert_eq!(page.runs.len(), 2);
}

async fn create_keyed(store: &dyn RunStore, run: &Run, k: &str, hash: &str) {
    let outcome = store.create_run(run, Some(&key(k, hash))).await.expect("create");
    assert_eq!(outcome, CreateOutcome::Created(run.clone()));
}

async fn idempotency_other_request_conflicts(store: &dyn RunStore) {
    let first = queued_run("acme", "members");
    create_keyed(store, &first, "k1", "h1").await;
    let other = queued_run("acme", "payroll");
    let conflict = store.create_run(&other, Some(&key("k1", "h2"))).await.expect("conflict");
    assert_eq!(conflict, CreateOutcome::KeyConflict);
    assert_eq!(store.get_run(None, other.id).await.expect("get"), None, "a conflict stores nothing");
    // The key still points at the first run.
    let again = store.create_run(&queued_run("acme", "members"), Some(&key("k1", "h1"))).await.expect("retry");
    assert_eq!(again, CreateOutcome::Existing(first));
    // Another key, or no key, is a new run.
    create_keyed(store, &other, "k2", "h2").await;
    create(store, &queued_run("acme", "members")).await;
    let page = store.list_runs(&RunFilter::default(), 100, None).await.expect("list");
    assert_eq!(page.runs.len(), 3);
}

async fn idempotency_keys_are_per_workspace(store: &dyn RunStore) {
    let acme = queued_run("acme", "members");
    create_keyed(store, &acme, "k1", "h1").await;
    let other = queued_run("other", "members");
    create_keyed(store, &other, "k1", "h2").await;
    let same = queued_run("other", "members");
    create_keyed(store, &same, "k1-b", "h1").await;
    let retry = store.create_run(&queued_run("other", "members"), Some(&key("k1", "h2"))).await.expect("retry");
    assert_eq!(retry, CreateOutcome::Existing(other));
    let retry = store.create_run(&queued_run("acme", "members"), Some(&key("k1", "h1"))).await.expect("retry");
    assert_eq!(retry, CreateOutcome::Existing(acme));
}

async fn idempotency_keys_expire(store: &dyn RunStore) {
    let window_us = i64::try_from(IDEMPOTENCY_WINDOW.as_micros()).expect("fits");
    let expired_at = Timestamp::now().unix_micros() - window_us - 3600 * 1_000_000;
    let old = created_at(queued_run("acme", "members"), expired_at);
    create_keyed(store, &old, "k1", "h1").await;

    // Past the window the key is free again, whatever the request: the new run replaces it.
    let new = queued_run("acme", "payroll");
    create_keyed(store, &new, "k1", "h2").await;
    let retry = store.create_run(&queued_run("acme", "payroll"), Some(&key("k1", "h2"))).await.expect("retry");
    assert_eq!(retry, CreateOutcome::Existing(new));
    let conflict = store.create_run(&queued_run("acme", "members"), Some(&key("k1", "h1"))).await.expect("conflict");
    assert_eq!(conflict, CreateOutcome::KeyConflict, "the key now belongs to the new request");
    assert_eq!(store.get_run(None, old.id).await.expect("get"), Some(old), "the old run stays");

    // An expired key with the same request makes a new run too.
    let old_same = created_at(queued_run("acme", "members"), expired_at);
    create_keyed(store, &old_same, "k2", "h").await;
    let renewed = queued_run("acme", "members");
    create_keyed(store, &renewed, "k2", "h").await;
}

async fn page_through(store: &dyn RunStore, filter: &RunFilter, limit: usize) -> (Vec<RunId>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_runs(filter, limit, cursor.as_deref()).await.expect("list");
        assert!(page.runs.len() <= limit.max(1), "page of {} over limit {limit}", page.runs.len());
        sizes.push(page.runs.len());
        ids.extend(page.runs.iter().map(|r| r.id));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.runs.len(), limit.max(1), "only the last page may be short");
                cursor = Some(next);
            }
            None => break,
        }
        assert!(sizes.len() <= 100, "paging does not end");
    }
    (ids, sizes)
}

fn newest_first<'a>(runs: impl IntoIterator<Item = &'a Run>) -> Vec<RunId> {
    let mut runs: Vec<&Run> = runs.into_iter().collect();
    runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    runs.iter().map(|r| r.id).collect()
}

async fn lists_newest_first_in_pages(store: &dyn RunStore) {
    let base = a_day_ago();
    let mut runs = Vec::new();
    // Created out of order; three runs share each creation time, so the id breaks ties.
    for i in (0..25i64).map(|i| (i * 7) % 25) {
        let ws = if i % 5 == 0 { "other" } else { "acme" };
        let configuration = if i % 2 == 0 { "members" } else { "payroll" };
        let run = created_at(queued_run(ws, configuration), base + (i / 3) * 1000);
        create(store, &run).await;
        let run = if i % 4 == 0 {
            store.transition(run.id, Transition::to(RunStatus::Building)).await.expect("build")
        } else {
            run
        };
        runs.push(run);
    }

    let all = RunFilter::default();
    let (ids, sizes) = page_through(store, &all, 10).await;
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(ids, newest_first(&runs), "newest first, no gaps, no duplicates");
    let first = store.list_runs(&all, 10, None).await.expect("list");
    assert_eq!(first.runs.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..10]);
    assert_eq!(first.runs[0], runs.iter().find(|r| r.id == ids[0]).cloned().expect("listed run"), "whole runs");

    let filters = [
        (RunFilter::default().workspace(workspace("acme")), 20),
        (RunFilter::default().workspace(workspace("other")), 5),
        (RunFilter::default().status(RunStatus::Building), 7),
        (RunFilter::default().status(RunStatus::Running), 0),
        (RunFilter::default().configuration(ConfigurationId::new("payroll").expect("valid")), 12),
        (
            RunFilter::default()
                .workspace(workspace("acme"))
                .status(RunStatus::Queued)
                .configuration(ConfigurationId::new("members").expect("valid")),
            5,
        ),
        (RunFilter::default().workspace(workspace("nobody")), 0),
    ];
    for (filter, count) in filters {
        let want = newest_first(runs.iter().filter(|r| {
            filter.workspace_id.as_ref().is_none_or(|w| *w == r.workspace_id)
                && filter.status.is_none_or(|s| s == r.status)
                && filter.configuration_id.as_ref().is_none_or(|c| *c == r.configuration_id)
        }));
        assert_eq!(want.len(), count, "{filter:?}");
        for limit in [1, 3, 10, 100] {
            let (ids, sizes) = page_through(store, &filter, limit).await;
            assert_eq!(ids, want, "{filter:?} by {limit}");
            assert_eq!(sizes.len(), count.div_ceil(limit).max(1), "{filter:?} by {limit}: no empty last page");
        }
    }

    // A limit of 0 is 1.
    let one = store.list_runs(&all, 0, None).await.expect("list");
    assert_eq!(one.runs.len(), 1);
    assert!(one.next_cursor.is_some());

    // Runs created while paging do not shift the pages that follow.
    let first = store.list_runs(&all, 10, None).await.expect("list");
    create(store, &queued_run("acme", "members")).await;
    let second = store.list_runs(&all, 10, first.next_cursor.as_deref()).await.expect("list");
    assert_eq!(second.runs.iter().map(|r| r.id).collect::<Vec<_>>(), ids[10..20]);
}

async fn refuses_cursors_it_did_not_make(store: &dyn RunStore) {
    for i in 0..3 {
        create(store, &created_at(queued_run("acme", "members"), a_day_ago() + i)).await;
    }
    let page = store.list_runs(&RunFilter::default(), 1, None).await.expect("list");
    let good = page.next_cursor.expect("more pages");
    let garbage = ["", "garbage", "12", "12.", ".run_01JK3J0YRKJ7Q2M5XW8T4V6B9N", "x.run_01JK3J0YRKJ7Q2M5XW8T4V6B9N"];
    let truncated = &good[..good.len() - 1];
    let wrong_id = format!("{}.doc_01JK3J0YRKJ7Q2M5XW8T4V6B9N", good.split('.').next().expect("a part"));
    for bad in garbage.iter().copied().chain([truncated, wrong_id.as_str()]) {
        let result = store.list_runs(&RunFilter::default(), 10, Some(bad)).await;
        assert!(matches!(result, Err(Error::InvalidCursor(_))), "{bad:?}: {result:?}");
    }
    let next = store.list_runs(&RunFilter::default(), 10, Some(&good)).await.expect("good cursor");
    assert_eq!(next.runs.len(), 2);
}

/// Brings a new run to `status` through allowed transitions.
async fn run_in(store: &dyn RunStore, status: RunStatus) -> Run {
    use RunStatus::*;
    let run = queued_run("acme", "members");
    create(store, &run).await;
    let path: &[RunStatus] = match status {
        Queued => &[],
        Building => &[Building],
        Running => &[Running],
        Succeeded => &[Building, Running, Succeeded],
        Failed => &[Failed],
        Cancelled => &[Building, Cancelled],
        other => panic!("no path to {other:?} in this test"),
    };
    let mut run = run;
    for step in path {
        run = store.transition(run.id, Transition::to(*step)).await.expect("allowed step");
        assert_eq!(run.status, *step);
    }
    run
}

async fn transitions_follow_the_state_machine(store: &dyn RunStore) {
    use RunStatus::*;
    let all = [Queued, Building, Running, Succeeded, Failed, Cancelled];
    let mut allowed = 0;
    for from in all {
        for to in all {
            let run = run_in(store, from).await;
            let result = store.transition(run.id, Transition::to(to).last_sequence(99)).await;
            if from.can_transition_to(to) {
                allowed += 1;
                let moved = result.expect("allowed transition");
                assert_eq!((moved.status, moved.last_sequence), (to, 99), "{from:?} -> {to:?}");
                assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(moved));
            } else {
                match result {
                    Err(Error::InvalidTransition { run_id, from: f, to: t }) => {
                        assert_eq!((run_id, f, t), (run.id, from.as_str(), to.as_str()));
                    }
                    other => panic!("{from:?} -> {to:?} must be refused: {other:?}"),
                }
                assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(run), "refused leaves it unchanged");
            }
        }
    }
    assert_eq!(allowed, 10, "every allowed transition was exercised");
}

async fn transitions_set_their_fields(store: &dyn RunStore) {
    let run = queued_run("acme", "members");
    create(store, &run).await;
    let build = BuildId::new();
    let building = store.transition(run.id, Transition::to(RunStatus::Building).build_id(build)).await.expect("build");
    assert_eq!((building.status, building.build_id), (RunStatus::Building, Some(build)));

    // Without a status, only the fields change (even the sequence alone).
    let seq = store.transition(run.id, Transition::default().last_sequence(5)).await.expect("sequence");
    assert_eq!((seq.status, seq.build_id, seq.last_sequence), (RunStatus::Building, Some(build), 5));
    let started = Timestamp::now();
    let running = store.transition(run.id, Transition::to(RunStatus::Running).started_at(started)).await.expect("run");
    assert_eq!((running.started_at, running.last_sequence, running.build_id), (Some(started), 5, Some(build)));
    assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(running));

    let missing = RunId::new();
    let result = store.transition(missing, Transition::to(RunStatus::Building)).await;
    assert!(matches!(result, Err(Error::RunNotFound(id)) if id == missing), "{result:?}");
    let result = store.transition(missing, Transition::default().last_sequence(1)).await;
    assert!(matches!(result, Err(Error::RunNotFound(_))), "{result:?}");
}

async fn finalizes_once(store: &dyn RunStore) {
    let run = run_in(store, RunStatus::Running).await;
    let done = finalization(&run, RunStatus::Succeeded, 40);
    let succeeded = store.finalize(run.id, done.clone()).await.expect("finalize");
    assert_eq!(succeeded.status, RunStatus::Succeeded);
    assert_eq!(succeeded.completed_at, Some(done.completed_at));
    assert_eq!((succeeded.exit_code, succeeded.failure.clone()), (Some(0), None));
    assert_eq!((succeeded.summary.as_ref(), succeeded.last_sequence), (Some(&done.summary), 40));

    let twice = store.finalize(run.id, finalization(&run, RunStatus::Failed, 41)).await;
    assert!(
        matches!(twice, Err(Error::InvalidTransition { from: "succeeded", to: "failed", .. })),
        "finalize twice: {twice:?}"
    );
    let same = store.finalize(run.id, done).await;
    assert!(matches!(same, Err(Error::InvalidTransition { .. })), "{same:?}");
    assert_eq!(store.get_run(None, run.id).await.expect("get"), Some(succeeded));

    // Any active run may be finalized, even a queued one to `succeeded` (its row missed an update
    // its log did not: the log wins); a final status must be terminal.
    let stale = run_in(store, RunStatus::Queued).await;
    let result = store.finalize(stale.id, finalization(&stale, RunStatus::Succeeded, 1)).await;
    assert_eq!(result.expect("queued → succeeded").status, RunStatus::Succeeded);
    let queued = run_in(store, RunStatus::Queued).await;
    let building = run_in(store, RunStatus::Building).await;
    let result = store.finalize(building.id, finalization(&building, RunStatus::Running, 1)).await;
    assert!(matches!(result, Err(Error::InvalidTransition { from: "building", to: "running", .. })), "{result:?}");
    assert_eq!(store.get_run(None, building.id).await.expect("get"), Some(building));

    // Finalizing releases the lease.
    let claimed = store.claim_queued("w1", HOUR).await.expect("claim").expect("queued run");
    assert_eq!(claimed.id, queued.id);
    let cancelled = store.finalize(queued.id, finalization(&queued, RunStatus::Cancelled, 2)).await.expect("cancel");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(!store.renew_lease(queued.id, "w1", HOUR).await.expect("renew"), "the lease went with finalize");

    let missing = RunId::new();
    let result = store.finalize(missing, finalization(&run, RunStatus::Failed, 1)).await;
    assert!(matches!(result, Err(Error::RunNotFound(id)) if id == missing), "{result:?}");
}

async fn claims_the_oldest_queued_run(store: &dyn RunStore) {
    assert_eq!(store.claim_queued("w1", HOUR).await.expect("claim"), None, "empty store");
    let base = a_day_ago();
    // Older, but not queued.
    let building = created_at(queued_run("acme", "members"), base);
    create(store, &building).await;
    store.transition(building.id, Transition::to(RunStatus::Building)).await.expect("build");
    let newest = created_at(queued_run("acme", "members"), base + 30);
    let oldest = created_at(queued_run("other", "members"), base + 10);
    let tie_a = created_at(queued_run("acme", "payroll"), base + 20);
    let tie_b = created_at(queued_run("acme", "payroll"), base + 20);
    for run in [&newest, &tie_a, &oldest, &tie_b] {
        create(store, run).await;
    }
    let (first_tie, second_tie) = if tie_a.id < tie_b.id { (&tie_a, &tie_b) } else { (&tie_b, &tie_a) };
    for want in [&oldest, first_tie, second_tie, &newest] {
        let claimed = store.claim_queued("w1", HOUR).await.expect("claim").expect("a queued run");
        assert_eq!(claimed, *want, "claimed runs stay queued and unchanged");
        assert_eq!(status_of(store, want.id).await, RunStatus::Queued);
    }
    assert_eq!(store.claim_queued("w2", HOUR).await.expect("claim"), None, "every queued run is leased");
}

async fn leases_renew_and_expire(store: &dyn RunStore) {
    let base = a_day_ago();
    let a = created_at(queued_run("acme", "members"), base);
    let b = created_at(queued_run("acme", "members"), base + 1);
    create(store, &a).await;
    create(store, &b).await;
    assert_eq!(store.claim_queued("w1", HOUR).await.expect("claim").map(|r| r.id), Some(a.id));
    assert_eq!(store.claim_queued("w2", HOUR).await.expect("claim").map(|r| r.id), Some(b.id), "a is held");
    assert_eq!(store.claim_queued("w3", HOUR).await.expect("claim"), None);

    assert!(store.renew_lease(a.id, "w1", HOUR).await.expect("renew"));
    assert!(!store.renew_lease(a.id, "w2", HOUR).await.expect("renew"), "w2 does not hold a");
    assert!(!store.renew_lease(RunId::new(), "w1", HOUR).await.expect("renew"), "no such run");

    // A lease that ran out can be claimed by someone else; then only they can renew it.
    let c = created_at(queued_run("acme", "members"), base + 2);
    create(store, &c).await;
    assert_eq!(store.claim_queued("w1", Duration::ZERO).await.expect("claim").map(|r| r.id), Some(c.id));
    assert_eq!(store.claim_queued("w2", HOUR).await.expect("claim").map(|r| r.id), Some(c.id), "expired lease");
    assert!(!store.renew_lease(c.id, "w1", HOUR).await.expect("renew"), "w1 lost c");
    assert!(store.renew_lease(c.id, "w2", HOUR).await.expect("renew"));
    assert_eq!(store.claim_queued("w3", HOUR).await.expect("claim"), None);

    // A renewal can shorten a lease to nothing: the run is free again.
    assert!(store.renew_lease(a.id, "w1", Duration::ZERO).await.expect("renew"));
    assert_eq!(store.claim_queued("w3", HOUR).await.expect("claim").map(|r| r.id), Some(a.id));

    // A lease survives transitions: a building run is not queued, so it is not claimable at all.
    store.transition(b.id, Transition::to(RunStatus::Building)).await.expect("build");
    assert!(store.renew_lease(b.id, "w2", HOUR).await.expect("renew"));
}

async fn clearing_leases_frees_every_run(store: &dyn RunStore) {
    let base = a_day_ago();
    let a = created_at(queued_run("acme", "members"), base);
    let b = created_at(queued_run("acme", "members"), base + 1);
    create(store, &a).await;
    create(store, &b).await;
    store.claim_queued("w1", HOUR).await.expect("claim").expect("a");
    store.claim_queued("w2", HOUR).await.expect("claim").expect("b");
    assert_eq!(store.claim_queued("w3", HOUR).await.expect("claim"), None);
    store.clear_leases().await.expect("clear");
    assert!(!store.renew_lease(b.id, "w2", HOUR).await.expect("renew"), "w2's lease is gone");
    assert_eq!(store.claim_queued("w3", HOUR).await.expect("claim").map(|r| r.id), Some(a.id));
    assert_eq!(store.claim_queued("w3", HOUR).await.expect("claim").map(|r| r.id), Some(b.id));
    store.clear_leases().await.expect("clear again");
    store.clear_leases().await.expect("clear with nothing held");
}

async fn lists_runs_in_statuses_oldest_first(store: &dyn RunStore) {
    use RunStatus::*;
    assert!(store.runs_in(&[Queued, Running]).await.expect("runs_in").is_empty());
    let mut runs = Vec::new();
    for status in [Running, Queued, Building, Succeeded, Running, Failed, Building, Cancelled, Queued] {
        runs.push(run_in(store, status).await);
    }
    // Creation order is not id order within a microsecond; sort as the store does.
    runs.sort_by_key(|r| (r.created_at, r.id));
    let ids_in = |statuses: &[RunStatus]| -> Vec<RunId> {
        runs.iter().filter(|r| statuses.contains(&r.status)).map(|r| r.id).collect()
    };
    for statuses in [&[Building, Running][..], &[Queued], &[Succeeded, Failed, Cancelled], &[Running, Running], &[]] {
        let got: Vec<RunId> = store.runs_in(statuses).await.expect("runs_in").iter().map(|r| r.id).collect();
        assert_eq!(got, ids_in(statuses), "{statuses:?}");
    }
    let whole = store.runs_in(&[Failed]).await.expect("runs_in");
    assert_eq!(whole, runs.iter().filter(|r| r.status == Failed).cloned().collect::<Vec<_>>());
}

async fn racing_claimers_never_share_a_run(store: Arc<dyn RunStore>) {
    let total = 120;
    let base = a_day_ago();
    for i in 0..total {
        create(&*store, &created_at(queued_run("acme", "members"), base + i)).await;
    }
    let claimers: Vec<_> = (0..4)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let owner = format!("worker-{n}");
                let mut claimed = Vec::new();
                while let Some(run) = store.claim_queued(&owner, HOUR).await.expect("claim") {
                    claimed.push(run.id);
                }
                claimed
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.expect("claimer task"));
    }
    let unique: HashSet<RunId> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a run was claimed twice");
    assert_eq!(unique.len(), usize::try_from(total).expect("small"), "every run was claimed");
}
