//! Connections: a client that never finishes its request head is dropped; a long event stream is
//! not.

use std::time::Duration;

use ade_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Frame, PATIENCE, SseReader, TestServer, id_of};

fn config() -> ServerConfig {
    ServerConfig::new().with_header_read_timeout(Duration::from_millis(300)).with_keepalive(Duration::from_millis(50))
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let server = TestServer::start_with(config()).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.expect("half a request head");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut answer)).await.expect("the server closes it");
    // Closed, with nothing or a 408 before it; never a 200 for half a request.
    assert!(read.is_ok() || answer.is_empty(), "{read:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn an_event_stream_outlives_the_request_head_timeout() {
    let server = TestServer::start_with(config()).await;
    let client = server.client();
    let run = client.create_run("default", "gated", &[]).await;
    let id = id_of(&run);
    let mut reader = SseReader::new(client.sse(&id).await);
    // Keepalives every 50 ms: 20 of them span more than three request-head timeouts.
    let mut keepalives = 0;
    while keepalives < 20 {
        match reader.next().await {
            Some(Frame::Comment(_)) => keepalives += 1,
            Some(_) => {}
            None => panic!("the stream ended after {keepalives} keepalives"),
        }
    }
    server.gate.add_permits(1);
    let rest = reader.rest().await;
    assert!(rest.iter().filter_map(Frame::data).any(|d| d.contains("\"run.completed\"")), "ends with run.completed");
    server.stop().await;
}
