//! `GET /openapi.json`: the committed document; every route it describes exists, and every route
//! the router serves is described, with each of its methods. Statuses only: the router is called
//! in-process.

use reqwest::{Method, StatusCode};

use crate::support::InProcess;

#[tokio::test]
async fn the_served_document_is_the_generated_one_and_names_only_real_routes() {
    let server = InProcess::start().await;
    let client = &server;
    let served = client.get_json("/openapi.json").await;
    assert_eq!(served, ade_server::openapi::document());
    assert_eq!(served["openapi"], "3.1.0");

    let run = client.create_run("default", "quick").await;
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
            let response = client.send(method.clone(), &concrete, None).await;
            let status = response.status;
            let body = String::from_utf8_lossy(&response.body);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is described but not routed");
            assert!(!body.contains("no route"), "{method} {path} is described but not routed: {body}");
        }
    }
    server.runtime.shutdown().await;
}

#[tokio::test]
async fn every_routed_path_and_method_is_described() {
    let server = InProcess::start().await;
    let client = &server;
    let document = ade_server::openapi::document();
    let described = document["paths"].as_object().expect("paths");
    let routed = ade_server::routes::routed_paths();
    let mut routed_sorted = routed.clone();
    routed_sorted.sort_unstable();
    let mut described_sorted: Vec<&str> = described.keys().map(String::as_str).collect();
    described_sorted.sort_unstable();
    assert_eq!(routed_sorted, described_sorted, "the router's paths and the document's");
    // A method no route has: the 405 answer's `Allow` names the path's methods.
    let probe = Method::from_bytes(b"PROBE").expect("method");
    for path in routed {
        let concrete = path.replace("{id}", "x").replace("{name}", "x");
        let response = client.send(probe.clone(), &concrete, None).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = response.header("allow");
        let mut methods: Vec<String> =
            allow.split(',').map(|m| m.trim().to_lowercase()).filter(|m| !m.is_empty() && m != "head").collect();
        methods.sort();
        let mut documented: Vec<String> = described[path].as_object().expect("operations").keys().cloned().collect();
        documented.sort();
        assert_eq!(methods, documented, "methods of {path} (Allow: {allow})");
    }
    server.runtime.shutdown().await;
}
