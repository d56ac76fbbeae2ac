//! Shutdown during an open stream: the stream ends between two events, the server stops.

use reqwest::StatusCode;

use crate::support::{Frame, PATIENCE, SseReader, TestServer, id_of, problem};

#[tokio::test]
async fn shutdown_ends_open_streams_cleanly_and_stops_the_server() {
    let mut server = TestServer::start().await;
    let client = server.client();
    assert_eq!(client.get("/readyz").await.status(), StatusCode::OK);
    let run = client.create_run("default", "gated", &[]).await;
    let id = id_of(&run);
    let mut reader = SseReader::new(client.sse(&id).await);
    let mut delivered = Vec::new();
    while !delivered.last().is_some_and(|d: &String| d.contains("before 1")) {
        if let Some(Frame::Event { data, .. }) = reader.next().await {
            delivered.push(data);
        }
    }
    server.shutdown.shutdown();
    // The stream ends (no error), and not inside a frame.
    assert_eq!(reader.next().await, None);
    assert_eq!(reader.leftover, 0, "no half-written event");
    // The engine may now finish; the server's task then completes.
    server.gate.add_permits(1);
    let task = server.task.take().expect("task");
    let served = tokio::time::timeout(PATIENCE, task).await.expect("the server stops").expect("task");
    assert!(served.is_ok(), "{served:?}");
    // New connections are refused.
    assert!(server.http.get(format!("{}/healthz", server.base)).send().await.is_err());
    // What was delivered is a prefix of the stored log.
    let log: Vec<String> = {
        use futures::TryStreamExt;
        let key = ade_core::store::RunKey::new("default".parse().expect("ws"), id.parse().expect("id"));
        let stream = server.runtime.dispatcher().store().read_after(&key, 0).await.expect("read");
        let events: Vec<_> = stream.try_collect().await.expect("events");
        events.iter().map(|e| String::from_utf8(e.json().to_vec()).expect("utf-8")).collect()
    };
    assert_eq!(delivered, log[..delivered.len()].to_vec());
}

#[tokio::test]
async fn readyz_is_503_once_shutdown_has_begun() {
    let server = TestServer::start().await;
    assert_eq!(server.client().get("/readyz").await.status(), StatusCode::OK);
    // The same router over a state whose shutdown has begun, served without draining.
    let state = ade_server::AppState::new(server.runtime.clone(), ade_server::ServerConfig::new());
    state.shutdown_token().cancel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let serving = tokio::spawn(async move { axum::serve(listener, ade_server::router(state)).await });
    let response = server.http.get(format!("http://{addr}/readyz")).send().await.expect("readyz");
    let detail = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(detail.contains("shutting down"), "{detail}");
    let health = server.http.get(format!("http://{addr}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK, "alive while draining");
    serving.abort();
    server.stop().await;
}
