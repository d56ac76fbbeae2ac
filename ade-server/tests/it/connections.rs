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

/// A response read from a raw socket to its end (the server closes the connection).
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }

    /// Asserts a problem+json answer with `status` whose length matches its body; the problem.
    fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.head);
        assert_eq!(self.header("content-type").as_deref(), Some("application/problem+json"), "{}", self.head);
        assert_eq!(self.header("content-length"), Some(self.body.len().to_string()), "{}", self.head);
        let problem: serde_json::Value = serde_json::from_slice(&self.body).expect("a JSON body");
        assert_eq!(problem["status"], status, "{problem}");
        for field in ["type", "title", "detail"] {
            assert!(problem[field].as_str().is_some_and(|t| !t.is_empty()), "{field} in {problem}");
        }
        problem
    }
}

/// Reads responses from `tcp` until the server closes it; the last one (earlier ones, on a
/// kept-alive connection, must have a `content-length`).
async fn read_until_closed(tcp: &mut tokio::net::TcpStream) -> Vec<RawResponse> {
    let mut bytes = Vec::new();
    let read =
        tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut bytes)).await.expect("the server closes the connection");
    assert!(read.is_ok() || !bytes.is_empty(), "{read:?}");
    let mut responses = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        let head = String::from_utf8(rest[..end - 4].to_vec()).expect("a text head");
        let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("a status line");
        let mut response = RawResponse { status, head, body: Vec::new() };
        let length = response.header("content-length").map_or(rest.len() - end, |l| l.parse().expect("a length"));
        response.body = rest[end..end + length].to_vec();
        rest = &rest[end + length..];
        responses.push(response);
    }
    responses
}

async fn exchange(server: &TestServer, request: &[u8]) -> Vec<RawResponse> {
    let mut tcp = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://")).await.expect("connect");
    tcp.write_all(request).await.expect("send the request");
    read_until_closed(&mut tcp).await
}

#[tokio::test]
async fn requests_hyper_cannot_parse_are_answered_with_problems() {
    let server = TestServer::start().await;
    // A header field larger than the head limit; too many header fields.
    let big = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(20_000));
    let [answer] = &exchange(&server, big.as_bytes()).await[..] else { panic!("one answer") };
    let problem = answer.problem(431);
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("16384 bytes")), "{problem}");
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let [answer] = &exchange(&server, format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes()).await[..]
    else {
        panic!("one answer")
    };
    assert!(answer.problem(431)["detail"].as_str().is_some_and(|d| d.contains("100 header fields")));
    // Not HTTP; a malformed header line.
    for garbage in [&b"HELLO THERE\r\n\r\n"[..], b"GET /healthz HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n"] {
        let [answer] = &exchange(&server, garbage).await[..] else { panic!("one answer") };
        answer.problem(400);
    }
    // A request target over the limit (but within the head limit): 414 before routing.
    let long = format!("GET /runs?cursor={} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", "c".repeat(9_000));
    let [answer] = &exchange(&server, long.as_bytes()).await[..] else { panic!("one answer") };
    assert!(answer.problem(414)["detail"].as_str().is_some_and(|d| d.contains("8192 bytes")));
    // After a good request on the same connection, a bad one is still answered with a problem.
    let [good, bad] = &exchange(&server, format!("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n{big}").as_bytes()).await[..]
    else {
        panic!("two answers")
    };
    assert_eq!(good.status, 200, "{}", good.head);
    bad.problem(431);
    server.stop().await;
}

/// A body sent a few bytes at a time (or not at all) after its head.
async fn slow_upload(address: String, head: String, per_write: usize, pause: Duration) -> (RawResponse, Duration) {
    let started = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let (mut reader, mut writer) = tcp.into_split();
    writer.write_all(head.as_bytes()).await.expect("head");
    let trickle = tokio::spawn(async move {
        if per_write == 0 {
            return std::future::pending().await;
        }
        // Until the server closes the connection.
        while writer.write_all(&b"a,b\n1,2\n".repeat(per_write)[..per_write]).await.is_ok() {
            tokio::time::sleep(pause).await;
        }
    });
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut bytes)).await.expect("an answer, then the end");
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(read.is_ok() || !bytes.is_empty(), "{read:?}");
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8(bytes[..end - 4].to_vec()).expect("text");
    let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("a status");
    (RawResponse { status, head, body: bytes[end..].to_vec() }, elapsed)
}

#[tokio::test]
async fn bodies_that_trickle_or_stall_are_cut_with_408_and_nothing_is_stored() {
    let timeout = Duration::from_millis(500);
    let server = TestServer::start_with(config().with_body_read_timeout(timeout)).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let raw = "POST /documents?filename=slow.csv HTTP/1.1\r\nhost: x\r\ncontent-type: text/csv\r\ncontent-length: 100000\r\n\r\n";
    // The multipart body starts its `file` part at once, then trickles the file.
    let multipart = "POST /documents HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=XyZ\r\n\
                     content-length: 100000\r\n\r\n--XyZ\r\n\
                     content-disposition: form-data; name=\"file\"; filename=\"slow.csv\"\r\n\r\n";
    let json = "POST /runs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n";
    let mut clients = Vec::new();
    for i in 0..60 {
        let head = match i % 3 {
            0 => raw.to_owned(),
            1 => multipart.to_owned(),
            _ => json.to_owned(),
        };
        // A byte every 10 ms (100 bytes/s, under the 1 KiB/s minimum, never quiet for 500 ms), or
        // nothing at all after the head.
        let per_write = if i % 4 == 3 { 0 } else { 1 };
        clients.push(tokio::spawn(slow_upload(address.clone(), head, per_write, Duration::from_millis(10))));
    }
    // Meanwhile the server takes new connections and answers them.
    let healthz = server.client().get("/healthz").await;
    assert_eq!(healthz.status(), reqwest::StatusCode::OK);
    for client in clients {
        let (answer, elapsed) = client.await.expect("client");
        let problem = answer.problem(408);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("body read timeout")), "{problem}");
        assert_eq!(answer.header("connection").as_deref(), Some("close"), "{}", answer.head);
        assert!(elapsed < timeout * 20, "408 after {elapsed:?}");
    }
    // Nothing of the cut uploads was kept.
    let mut stack = vec![server.dir.path().join("workspaces")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            assert!(path.is_dir(), "a file of a cut upload was kept: {}", path.display());
            stack.push(path);
        }
    }
    // A body that arrives at once is stored as ever.
    let document = server.client().upload("default", "fast.csv", b"a,b\n1,2\n").await;
    assert_eq!(document["byte_size"], 8);
    server.stop().await;
}
