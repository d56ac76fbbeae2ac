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
    for name in SPEC_NAMES {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} is not exported:\n{text}");
    }
    // The ones without labels have a series (at zero until something happens).
    for series in ["ade_event_store_errors_total ", "ade_subscriber_catchups_total ", "ade_event_append_seconds_count "]
    {
        assert!(text.lines().any(|line| line.starts_with(series)), "no {series}series in\n{text}");
    }
    server.stop().await;
}

/// Every name of SPEC §11, as the spec writes them.
pub(crate) const SPEC_NAMES: [&str; 12] = [
    "ade_events_total",
    "ade_event_append_seconds",
    "ade_event_store_errors_total",
    "ade_subscribers",
    "ade_subscriber_catchups_total",
    "ade_runs_total",
    "ade_runs_active",
    "ade_run_duration_seconds",
    "ade_builds_total",
    "ade_engine_rejected_events_total",
    "ade_http_requests_total",
    "ade_http_request_seconds",
];

#[tokio::test]
async fn metrics_are_404_when_the_host_installed_no_recorder() {
    let server = TestServer::start().await;
    problem(server.client().get("/metrics").await, StatusCode::NOT_FOUND).await;
    server.stop().await;
}
