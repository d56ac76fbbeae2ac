//! CORS (`--cors-origin`): preflights answered without a token for the configured origins, no
//! CORS headers for others, none at all by default. The browser's side is in tests/viewer.rs.

use ade_server::{CorsOrigins, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestServer, header, id_of, test_tokens};

const ALLOWED: &str = "http://localhost:5173";
const OTHER: &str = "http://evil.example";

async fn server_allowing(origins: &[&str]) -> TestServer {
    let origins = CorsOrigins::parse(origins).expect("valid origins").expect("some origins");
    TestServer::start_with(ServerConfig::new().with_tokens(test_tokens()).with_cors(origins)).await
}

/// A browser's preflight of `method path` from `origin`, asking to send `headers`.
async fn preflight(server: &TestServer, path: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    server
        .http
        .request(Method::OPTIONS, format!("{}{path}", server.base))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .expect("request")
}

fn list(response: &reqwest::Response, name: &str) -> Vec<String> {
    header(response, name).split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_without_a_token() {
    let server = server_allowing(&[ALLOWED, "https://app.example.com"]).await;
    for (path, method, headers) in [
        ("/runs", "POST", "authorization, content-type, idempotency-key"),
        ("/runs/run_01M8C4DS2PH0887ZPTJ9T85312/events", "GET", "authorization, last-event-id, accept"),
        ("/configurations/members", "PUT", "authorization, content-type"),
        ("/documents", "POST", "authorization"),
    ] {
        let response = preflight(&server, path, ALLOWED, method, headers).await;
        assert!(response.status().is_success(), "{method} {path}: {}", response.status());
        assert_eq!(header(&response, "access-control-allow-origin"), ALLOWED, "{method} {path}");
        assert!(list(&response, "access-control-allow-methods").contains(&method.to_ascii_lowercase()), "{method}");
        let allowed = list(&response, "access-control-allow-headers");
        for wanted in headers.split(", ") {
            assert!(allowed.iter().any(|h| h == wanted), "{wanted} not in {allowed:?}");
        }
        assert!(header(&response, "access-control-allow-credentials").is_empty(), "no cookies");
        assert!(list(&response, "vary").contains(&"origin".to_owned()), "caches must key on Origin");
    }
    // The second origin of the list is answered with itself, not with the first.
    let response = preflight(&server, "/runs", "https://app.example.com", "POST", "authorization").await;
    assert_eq!(header(&response, "access-control-allow-origin"), "https://app.example.com");
}

#[tokio::test]
async fn another_origin_gets_no_allow_origin_header() {
    let server = server_allowing(&[ALLOWED]).await;
    let response = preflight(&server, "/runs", OTHER, "POST", "authorization, content-type").await;
    assert!(header(&response, "access-control-allow-origin").is_empty(), "{:?}", response.headers());
    // A real request from it is served (the browser, not the server, keeps the page from reading
    // it), but it is not marked as readable.
    let response = server.with_token("admin-secret").request(Method::GET, "/configurations");
    let response = response.header("origin", OTHER).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "access-control-allow-origin").is_empty());
}

#[tokio::test]
async fn without_cors_origins_there_are_no_cors_headers() {
    let server = TestServer::start_with(ServerConfig::new().with_tokens(test_tokens())).await;
    let response = preflight(&server, "/runs", ALLOWED, "POST", "authorization").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = server.with_token("admin-secret").request(Method::GET, "/configurations");
    let response = response.header("origin", ALLOWED).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let cors: Vec<_> = response.headers().keys().filter(|name| name.as_str().starts_with("access-control-")).collect();
    assert!(cors.is_empty(), "{cors:?}");
}

#[tokio::test]
async fn real_requests_from_an_allowed_origin_are_readable_with_their_headers() {
    let server = server_allowing(&[ALLOWED]).await;
    let client = server.with_token("admin-secret");
    let body = json!({ "workspace_id": "acme", "configuration_id": "quick", "document_ids": [] });
    let response =
        client.request(Method::POST, "/runs").header("origin", ALLOWED).json(&body).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "access-control-allow-origin"), ALLOWED);
    let exposed = list(&response, "access-control-expose-headers");
    for name in ["location", "link", "retry-after", "content-disposition", "www-authenticate"] {
        assert!(exposed.iter().any(|h| h == name), "{name} not in {exposed:?}");
    }
    let run: serde_json::Value = response.json().await.expect("json");
    // The event stream, with the token in the query as an EventSource sends it.
    let response = server
        .http
        .get(format!("{}/runs/{}/events?access_token=admin-secret", server.base, id_of(&run)))
        .header("origin", ALLOWED)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "access-control-allow-origin"), ALLOWED);
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    // Refusals are readable too: the page can tell a missing token from a network failure.
    let response =
        server.http.get(format!("{}/runs", server.base)).header("origin", ALLOWED).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&response, "access-control-allow-origin"), ALLOWED);
}

#[tokio::test]
async fn any_origin_is_allowed_only_when_asked_for() {
    let server = server_allowing(&["*"]).await;
    let response = preflight(&server, "/runs", OTHER, "POST", "authorization, content-type").await;
    assert!(response.status().is_success());
    assert_eq!(header(&response, "access-control-allow-origin"), "*");
    assert!(header(&response, "access-control-allow-credentials").is_empty());
}
