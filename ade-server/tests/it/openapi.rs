//! `GET /openapi.json`: the committed document, and every route it describes exists.

use reqwest::{Method, StatusCode};

use crate::support::TestServer;

#[tokio::test]
async fn the_served_document_is_the_generated_one_and_names_only_real_routes() {
    let server = TestServer::start().await;
    let client = server.client();
    let served = client.get_json("/openapi.json").await;
    assert_eq!(served, ade_server::openapi::document());
    assert_eq!(served["openapi"], "3.1.0");

    let run = client.create_run("default", "quick", &[]).await;
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let paths = served["paths"].as_object().expect("paths");
    for spec_path in [
        "/documents",
        "/documents/{id}",
        "/configurations",
        "/configurations/{id}",
        "/runs",
        "/runs/{id}",
        "/runs/{id}/cancel",
        "/runs/{id}/events",
        "/runs/{id}/outputs",
        "/runs/{id}/outputs/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(spec_path), "SPEC §4 route {spec_path} is not described");
    }
    for (path, operations) in paths {
        let concrete = path.replace("{id}", &run_id).replace("{name}", "normalized.xlsx");
        for method in operations.as_object().expect("operations").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = client.request(method.clone(), &concrete).send().await.expect("request");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is described but not routed");
            assert!(!body.contains("no route"), "{method} {path} is described but not routed: {body}");
        }
    }
    server.stop().await;
}
