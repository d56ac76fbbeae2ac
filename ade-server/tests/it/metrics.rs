//! `GET /metrics`: Prometheus text with the SPEC §11 names.

use reqwest::StatusCode;

use crate::support::{TestServer, header, id_of, problem, prometheus};

#[tokio::test]
async fn metrics_expose_the_spec_names() {
    let server = TestServer::start_with(ade_server::ServerConfig::new().with_metrics(prometheus())).await;
    let client = server.client();
    let run = client.create_run("default", "quick", &[]).await;
    client.follow(&id_of(&run)).await;
    let response = client.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/plain"));
    let text = response.text().await.expect("body");
    for name in [
        "ade_events_total{",
        "ade_event_append_seconds",
        "ade_subscribers{transport=\"sse\"}",
        "ade_runs_total{status=\"succeeded\"}",
        "ade_runs_active{",
        "ade_run_duration_seconds",
        "ade_http_requests_total{route=\"/runs\",status=\"201\"}",
        "ade_http_request_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    assert!(!text.contains(&id_of(&run)), "ids never become label values");
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_404_when_the_host_installed_no_recorder() {
    let server = TestServer::start().await;
    problem(server.client().get("/metrics").await, StatusCode::NOT_FOUND).await;
    server.stop().await;
}
