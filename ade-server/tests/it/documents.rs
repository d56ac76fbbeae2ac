//! `POST /documents` and `GET /documents/{id}`.

use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::support::{TestServer, header, problem};

const MEMBERS: &[u8] = include_bytes!("../../../examples/data/members.csv");

fn multipart(boundary: &str, field: &str, filename: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn multipart_upload_is_stored_with_its_size_and_sha256() {
    let server = TestServer::start().await;
    let client = server.client();
    let response = client
        .request(Method::POST, "/documents")
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(multipart("XyZ", "file", "members.csv", MEMBERS))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location");
    let document: serde_json::Value = response.json().await.expect("json");
    let id = document["id"].as_str().expect("id");
    assert!(id.starts_with("doc_") && id.len() == 30, "{id}");
    assert_eq!(location, format!("/documents/{id}"));
    assert_eq!(document["filename"], "members.csv");
    assert_eq!(document["byte_size"], MEMBERS.len());
    assert_eq!(document["sha256"], format!("{:x}", Sha256::digest(MEMBERS)));
    assert_eq!(document["content_type"], "text/csv", "octet-stream says nothing: the extension decides");
    assert!(document["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(client.get_json(&location).await, document);
    server.stop().await;
}

#[tokio::test]
async fn raw_upload_takes_its_name_from_the_query_and_cannot_escape() {
    let server = TestServer::start().await;
    let client = server.client();
    let document = client.upload("default", "..%2F..%2Fescape.csv", b"a,b\n1,2\n").await;
    assert_eq!(document["filename"], "escape.csv");
    assert_eq!(document["byte_size"], 8);
    // Nothing was written outside the data directory's documents tree.
    assert!(!server.dir.path().join("escape.csv").exists());
    assert!(!server.dir.path().parent().expect("parent").join("escape.csv").exists());
    let stored = server
        .dir
        .path()
        .join("workspaces/default/documents")
        .join(document["id"].as_str().expect("id"))
        .join("escape.csv");
    assert_eq!(std::fs::read(stored).expect("stored file"), b"a,b\n1,2\n");
    server.stop().await;
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_and_nothing_is_kept() {
    let config = ade_server::ServerConfig::new().with_max_upload(1024);
    let server = TestServer::start_with(config).await;
    let client = server.client();
    // Declared too large: refused before reading.
    let response = client
        .request(Method::POST, "/documents?filename=big.csv")
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("upload");
    let detail = problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(detail.contains("upload limit of 1024 bytes"), "{detail}");
    // Streamed without a length: cut while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..4).map(|_| Ok(vec![b'y'; 512])).collect();
    let response = client
        .request(Method::POST, "/documents?filename=big.csv")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("upload");
    let detail = problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(detail.contains("upload limit of 1024 bytes"), "{detail}");
    // Multipart over the limit.
    let response = client
        .request(Method::POST, "/documents")
        .header("content-type", "multipart/form-data; boundary=b1")
        .body(multipart("b1", "file", "big.csv", &[b'z'; 2048]))
        .send()
        .await
        .expect("upload");
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    let documents = server.dir.path().join("workspaces/default/documents");
    let kept = std::fs::read_dir(&documents).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(kept, 0, "no partial document is kept");
    // Exactly at the limit is fine.
    let document = client.upload("default", "exact.csv", &[b'e'; 1024]).await;
    assert_eq!(document["byte_size"], 1024);
    server.stop().await;
}

#[tokio::test]
async fn malformed_uploads_are_client_errors() {
    let server = TestServer::start().await;
    let client = server.client();
    let response = client.request(Method::POST, "/documents").body("a,b\n").send().await.expect("upload");
    let detail = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("filename"), "{detail}");
    let response = client
        .request(Method::POST, "/documents")
        .header("content-type", "multipart/form-data; boundary=q")
        .body(multipart("q", "other", "x.csv", b"1"))
        .send()
        .await
        .expect("upload");
    let detail = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("`file`"), "{detail}");
    let response = client
        .request(Method::POST, "/documents")
        .header("content-type", "multipart/form-data")
        .body("no boundary")
        .send()
        .await
        .expect("upload");
    problem(response, StatusCode::BAD_REQUEST).await;
    let response = client
        .request(Method::POST, "/documents")
        .header("content-type", "multipart/form-data; boundary=q")
        .body("--q\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n\r\ntruncated")
        .send()
        .await
        .expect("upload");
    problem(response, StatusCode::BAD_REQUEST).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_document_ids_are_404() {
    let server = crate::support::InProcess::start().await;
    for path in ["/documents/doc_01M8C4DRW0GXC5F6SXXKYK4GZ6", "/documents/not-an-id"] {
        crate::support::problem_in(&server.get(path).await, StatusCode::NOT_FOUND);
    }
    server.runtime.shutdown().await;
}
