//! The typed operations and their typed errors.

use ade_client::{Error, ListRuns, NewRun};
use ade_core::Created;
use ade_core::event::{ConfigurationId, RunId};
use ade_core::run::RunStatus;

use crate::client::support::{TestServer, Transport};

fn configuration(id: &str) -> ConfigurationId {
    ConfigurationId::new(id).expect("configuration id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_configurations_runs_and_pages_over_http() {
    documents_configurations_runs_and_pages(Transport::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_configurations_runs_and_pages_in_process() {
    documents_configurations_runs_and_pages(Transport::Local).await;
}

async fn documents_configurations_runs_and_pages(transport: Transport) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestServer::start(dir.path()).await;
    let client = server.over(transport);

    let document = client.upload_document("members.csv", b"id,name\n1,Ada\n".to_vec(), None).await.expect("upload");
    assert_eq!(document.filename, "members.csv");
    assert_eq!(document.byte_size, 14);
    assert_eq!(client.get_document(document.id).await.expect("get document"), document);

    let configurations = client.list_configurations().await.expect("configurations");
    let ids: Vec<_> = configurations.iter().map(|c| c.id.as_str().to_owned()).collect();
    assert!(ids.contains(&"quick".to_owned()) && ids.contains(&"gated".to_owned()), "{ids:?}");
    assert_eq!(client.get_configuration(&configuration("quick")).await.expect("get configuration").version, "1");

    // Idempotency: the same key and body give back the same run.
    let request = NewRun::new(configuration("quick")).document(document.id).idempotency_key("k-1");
    let Created::New(first) = client.create_run(&request).await.expect("create") else { panic!("a new run") };
    let Created::Existing(again) = client.create_run(&request).await.expect("create again") else {
        panic!("the existing run")
    };
    assert_eq!(again.id, first.id);

    let done = client.wait(first.id).await.expect("wait");
    assert_eq!(done.status, RunStatus::Succeeded);
    assert!(done.summary.is_some(), "a finished run carries its summary");
    assert!(done.last_sequence >= 3);

    // Pages of events.
    let page = client.events_page(first.id, 0, Some(2)).await.expect("page");
    assert_eq!(page.events.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(page.next_after_sequence, Some(2));
    let rest = client.events_page(first.id, 2, None).await.expect("rest");
    assert_eq!(rest.events.first().map(|e| e.sequence), Some(3));
    assert_eq!(rest.next_after_sequence, None);
    assert_eq!(rest.events.last().map(|e| e.sequence), Some(done.last_sequence));

    // Cancel a gated run; it ends cancelled.
    let Created::New(gated) = client.create_run(&NewRun::new(configuration("gated"))).await.expect("create gated")
    else {
        panic!("a new run")
    };
    client.cancel(gated.id).await.expect("cancel");
    let cancelled = client.wait(gated.id).await.expect("wait for the cancelled run");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    // `get_run` reads the log (terminal as soon as run.completed is persisted), `list_runs` and
    // `cancel` read the run row, which the runtime updates a moment later: wait for the row.
    tokio::time::timeout(crate::client::support::PATIENCE, async {
        loop {
            let page = client.list_runs(&ListRuns::default().status(RunStatus::Cancelled)).await.expect("list");
            if page.runs.iter().any(|r| r.id == gated.id) {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the run row says cancelled");
    let again = client.cancel(gated.id).await.expect_err("a finished run cannot be cancelled");
    assert_eq!(again.status(), Some(409), "{again}");

    // Listing: filters and the cursor.
    let all = client.list_runs(&ListRuns::default()).await.expect("list");
    assert_eq!(all.runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![gated.id, first.id], "newest first");
    let one = client.list_runs(&ListRuns::default().limit(1)).await.expect("first page");
    assert_eq!(one.runs.len(), 1);
    let cursor = one.next_cursor.expect("a next page");
    let two = client.list_runs(&ListRuns::default().limit(1).cursor(cursor)).await.expect("second page");
    assert_eq!(two.runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![first.id]);
    assert_eq!(two.next_cursor, None);
    let quick = client.list_runs(&ListRuns::default().configuration(configuration("quick"))).await.expect("filter");
    assert_eq!(quick.runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![first.id]);
    let cancelled = client.list_runs(&ListRuns::default().status(RunStatus::Cancelled)).await.expect("by status");
    assert_eq!(cancelled.runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![gated.id]);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_surface_as_typed_errors_over_http() {
    problems_surface_as_typed_errors(Transport::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_surface_as_typed_errors_in_process() {
    problems_surface_as_typed_errors(Transport::Local).await;
}

async fn problems_surface_as_typed_errors(transport: Transport) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestServer::start(dir.path()).await;
    let client = server.over(transport);

    let unknown = RunId::new();
    let error = client.get_run(unknown).await.expect_err("an unknown run");
    let Error::Api(problem) = &error else { panic!("a problem, not {error:?}") };
    assert_eq!(problem.status, 404);
    assert!(problem.type_.starts_with("urn:ade:problem:"), "{problem:?}");
    assert!(!problem.title.is_empty() && !problem.detail.is_empty(), "{problem:?}");

    let error = client.create_run(&NewRun::new(configuration("nope"))).await.expect_err("an unknown configuration");
    assert_eq!(error.status(), Some(422), "{error}");
    assert!(error.problem().is_some_and(|p| p.detail.contains("nope")), "{error:?}");

    let error = client.get_configuration(&configuration("nope")).await.expect_err("unknown configuration");
    assert_eq!(error.status(), Some(404));

    // The stream of an unknown run ends at once with the 404, without retrying.
    use futures::StreamExt as _;
    let items: Vec<_> = client.events(unknown, 0).collect().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(&items[0], Err(e) if e.status() == Some(404)), "{items:?}");

    // A bad base URL is refused up front.
    assert!(matches!(ade_client::Client::new("ftp://x"), Err(Error::Invalid(_))));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_sent_on_every_request_and_stream() {
    use futures::StreamExt as _;
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestServer::start_with_token(dir.path()).await;
    let anonymous = server.client();
    let error = anonymous.list_runs(&ListRuns::default()).await.expect_err("no token");
    assert_eq!(error.status(), Some(401), "{error}");
    let wrong = server.client().with_token("wrong");
    assert_eq!(wrong.list_configurations().await.expect_err("a wrong token").status(), Some(401));

    let client = server.client().with_token("secret");
    let Created::New(run) = client.create_run(&NewRun::new(configuration("quick"))).await.expect("create") else {
        panic!("a new run")
    };
    let events: Vec<_> = client.events(run.id, 0).collect().await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert!(events.last().is_some_and(|e| e.as_ref().is_ok_and(|e| e.is_terminal())));
    // A stream refused for its token ends at once with the 401 (no retrying).
    let refused: Vec<_> = anonymous.events(run.id, 0).collect().await;
    assert_eq!(refused.len(), 1);
    assert!(matches!(&refused[0], Err(e) if e.status() == Some(401)), "{refused:?}");
    server.stop().await;
}
