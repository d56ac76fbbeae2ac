//! A client of a server nested under a prefix (`Router::new().nest("/ade", …)`): its base URL
//! carries the prefix, and the links the server returns resolve to the server's resources.

use std::sync::Arc;

use ade_client::{Client, NewRun};
use ade_core::event::ConfigurationId;
use ade_core::run::RunStatus;
use ade_core::test_util::{GatedEngine, gated_configuration};
use ade_core::{Created, Runtime};
use ade_server::{AppState, ServerConfig};
use futures::StreamExt as _;
use tokio::sync::Semaphore;

#[tokio::test]
async fn a_client_of_a_server_mounted_under_a_prefix_follows_its_links() {
    let dir = tempfile::tempdir().expect("dir");
    let runtime = Runtime::builder()
        .data_dir(dir.path())
        .configuration(gated_configuration("quick", 3, false, 2))
        .engine("gated", Arc::new(GatedEngine { gate: Arc::new(Semaphore::new(0)) }), None)
        .build()
        .await
        .expect("runtime");
    let app = axum::Router::new().nest("/ade", ade_server::router(AppState::new(runtime, ServerConfig::new())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let client = Client::new(format!("{origin}/ade")).expect("client");
    let configuration = ConfigurationId::new("quick").expect("id");
    let Created::New(run) = client.create_run(&NewRun::new(configuration)).await.expect("create") else {
        panic!("a new run")
    };
    assert_eq!(run.links.outputs, format!("/ade/runs/{}/outputs", run.id));
    let events: Vec<_> = client.events(run.id, 0).collect().await;
    assert!(events.last().and_then(|e| e.as_ref().ok()).is_some_and(|e| e.is_terminal()), "{events:?}");
    assert_eq!(client.wait(run.id).await.expect("wait").status, RunStatus::Succeeded);
    for link in [&run.links.self_, &run.links.events, &run.links.outputs] {
        let url = client.resolve(link);
        assert!(url.starts_with(&format!("{origin}/ade/runs/")), "{url}");
        let response = reqwest::get(&url).await.expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
    }
    server.abort();
}
