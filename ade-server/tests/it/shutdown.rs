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

#[tokio::test]
async fn shutdown_closes_a_stream_whose_reader_stopped_reading_after_the_drain_period() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let drain = std::time::Duration::from_millis(300);
    let mut server = TestServer::start_with(ade_server::ServerConfig::new().with_shutdown_drain(drain)).await;
    let client = server.client();
    // Several MiB of SSE: far more than the stalled reader's socket buffers hold, so the server's
    // write blocks and hyper stops polling the body (it never sees the shutdown token).
    let configuration = serde_json::json!({
        "id": "busy", "version": "1", "engine": "gated", "before": 0, "gated": 1, "after": 40000,
    });
    server.runtime.put_configuration(serde_json::from_value(configuration).expect("valid")).expect("registered");
    let id = id_of(&client.create_run("default", "busy", &[]).await);
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut stalled =
        socket.connect(server.base.trim_start_matches("http://").parse().expect("address")).await.expect("connect");
    let request = format!("GET /runs/{id}/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n");
    stalled.write_all(request.as_bytes()).await.expect("request");
    // Read up to the stream's first frame (the subscription exists), then stop reading.
    let mut head = Vec::new();
    while !head.windows(11).any(|w| w == b"retry: 2000") {
        let mut chunk = [0; 512];
        let read = tokio::time::timeout(PATIENCE, stalled.read(&mut chunk)).await.expect("the head").expect("read");
        assert!(read > 0, "the server closed the stream: {}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&chunk[..read]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    // The whole run happens while the stalled reader reads nothing.
    server.gate.add_permits(1);
    let frames = client.follow(&id).await;
    assert!(frames.len() > 40000);
    server.shutdown.shutdown();
    let task = server.task.take().expect("serving");
    let stopped = tokio::time::timeout(drain + PATIENCE, task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "the server stops after the drain period: {stopped:?}");
    // The stalled connection was closed: what was sent can still be read, then the end.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(PATIENCE, stalled.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the stalled connection is closed");
}
