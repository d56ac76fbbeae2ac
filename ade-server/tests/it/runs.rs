//! `POST /runs` (plain and streaming), `GET /runs`, `GET /runs/{id}`, `POST /runs/{id}/cancel`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Frame, SseReader, TestServer, datas, event_type, header, id_of, problem, sequence};

#[tokio::test]
async fn create_answers_201_with_location_and_the_run_resource() {
    let server = TestServer::start().await;
    let client = server.client();
    let document = client.upload("default", "members.csv", include_bytes!("../../../examples/data/members.csv")).await;
    let body = json!({
        "configuration_id": "members",
        "document_ids": [document["id"]],
        "mode": "validate_only",
        "options": { "force_rebuild": true, "metadata": { "ticket": 7 } },
    });
    let response = client.post_json("/runs", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location");
    let run: Value = response.json().await.expect("json");
    let id = id_of(&run);
    assert!(id.starts_with("run_"));
    assert_eq!(location, format!("/runs/{id}"));
    assert_eq!(run["workspace_id"], "default");
    assert_eq!(run["status"], "queued");
    assert_eq!(run["mode"], "validate_only");
    assert_eq!(run["document_ids"], json!([document["id"]]));
    assert_eq!(run["options"]["metadata"]["ticket"], 7);
    assert_eq!(run["links"]["events"], format!("/runs/{id}/events"));
    let frames = client.follow(&id).await;
    assert_eq!(frames.iter().filter_map(Frame::data).map(event_type).next_back().as_deref(), Some("run.completed"));
    let finished = client.get_json(&location).await;
    assert_eq!(finished["id"], run["id"]);
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(finished["last_sequence"].as_u64(), Some(datas(&frames).len() as u64));
    assert!(finished["summary"]["core"]["row_count"].as_u64().is_some_and(|rows| rows > 0), "{finished}");
    server.stop().await;
}

#[tokio::test]
async fn create_refuses_unknown_configurations_documents_and_fields() {
    let server = TestServer::start().await;
    let client = server.client();
    let cases = [
        (json!({"configuration_id": "nope", "document_ids": []}), "unknown configuration"),
        (
            json!({"configuration_id": "members", "document_ids": ["doc_01M8C4DRW0GXC5F6SXXKYK4GZ6"]}),
            "unknown document",
        ),
        (json!({"configuration_id": "members", "document_ids": [], "colour": 1}), "unknown field"),
        (json!({"configuration_id": "members", "document_ids": [], "options": {"forse_rebuild": true}}), "options"),
        (json!({"configuration_id": "members", "document_ids": [], "mode": "fast"}), "fast"),
        (json!({"configuration_id": "members", "document_ids": ["doc_x"]}), "doc"),
        (json!({"configuration_id": "members", "document_ids": [], "workspace_id": "../etc"}), "workspace"),
    ];
    for (body, needle) in cases {
        let detail = problem(client.post_json("/runs", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    server.stop().await;
}

#[tokio::test]
async fn idempotency_keys_return_the_original_run_within_a_workspace() {
    let server = TestServer::start().await;
    let client = server.client();
    let create = |key: &'static str, body: Value| {
        client.request(Method::POST, "/runs").header("idempotency-key", key).json(&body).send()
    };
    let body = json!({"configuration_id": "quick", "document_ids": []});
    let first = create("k1", body.clone()).await.expect("create");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    // Same body, keys in another order and other whitespace: the same request.
    let again = create("k1", json!({"document_ids": [], "configuration_id": "quick"})).await.expect("create");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(header(&again, "location"), format!("/runs/{}", id_of(&first)));
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    let detail = problem(
        create("k1", json!({"configuration_id": "quick", "document_ids": [], "mode": "dry_run"}))
            .await
            .expect("create"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("Idempotency-Key"), "{detail}");
    // The key is scoped to the workspace.
    let elsewhere = create("k1", json!({"configuration_id": "quick", "document_ids": [], "workspace_id": "beta"}))
        .await
        .expect("create");
    assert_eq!(elsewhere.status(), StatusCode::CREATED);
    let elsewhere: Value = elsewhere.json().await.expect("json");
    assert_ne!(elsewhere["id"], first["id"]);
    let long = "k".repeat(256);
    let response = client.request(Method::POST, "/runs").header("idempotency-key", long).json(&body).send().await;
    problem(response.expect("create"), StatusCode::BAD_REQUEST).await;
    // Visible ASCII and inner spaces only, as the OpenAPI document's pattern says: a tab is not.
    for key in ["k\t1", "k\u{e9}1"] {
        let value = reqwest::header::HeaderValue::from_bytes(key.as_bytes()).expect("header value");
        let response = client.request(Method::POST, "/runs").header("idempotency-key", value).json(&body).send().await;
        problem(response.expect("create"), StatusCode::BAD_REQUEST).await;
    }
    let spaced = client.request(Method::POST, "/runs").header("idempotency-key", "k 2").json(&body).send().await;
    assert_eq!(spaced.expect("create").status(), StatusCode::CREATED, "a key with an inner space");
    server.stop().await;
}

#[tokio::test]
async fn list_filters_pages_newest_first_and_checks_its_query() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut created = Vec::new();
    for _ in 0..5 {
        let run = client.create_run("default", "quick", &[]).await;
        client.follow(&id_of(&run)).await;
        created.push(id_of(&run));
    }
    let other = client.create_run("beta", "quick", &[]).await;
    client.follow(&id_of(&other)).await;
    // Pages of 2 over the default workspace: 5 runs, newest first, no overlap.
    let mut seen = Vec::new();
    let mut path = "/runs?workspace_id=default&limit=2".to_owned();
    loop {
        let page = client.get_json(&path).await;
        let runs = page["runs"].as_array().expect("runs");
        assert!(runs.len() <= 2);
        seen.extend(runs.iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/runs?workspace_id=default&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created);
    let all = client.get_json("/runs?limit=200").await;
    assert_eq!(all["runs"].as_array().map(Vec::len), Some(6));
    assert_eq!(all["next_cursor"], Value::Null);
    let beta = client.get_json("/runs?workspace_id=beta&status=succeeded&configuration_id=quick").await;
    assert_eq!(beta["runs"].as_array().map(|r| r.iter().map(id_of).collect::<Vec<_>>()), Some(vec![id_of(&other)]));
    let none = client.get_json("/runs?status=failed").await;
    assert_eq!(none["runs"], json!([]));
    for bad in [
        "/runs?limit=0",
        "/runs?limit=201",
        "/runs?limit=ten",
        "/runs?status=done",
        "/runs?cursor=garbage",
        "/runs?workspace_id=..",
        "/runs?colour=red",
    ] {
        problem(client.get(bad).await, StatusCode::BAD_REQUEST).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn cancel_is_202_then_the_run_ends_cancelled_and_a_second_cancel_is_409() {
    let server = TestServer::start().await;
    let client = server.client();
    let run = client.create_run("default", "gated", &[]).await;
    let id = id_of(&run);
    // Wait until the engine is at its gate: its `before` lines are in the log.
    let mut reader = SseReader::new(client.sse(&id).await);
    loop {
        let frame = reader.next().await.expect("the run goes on");
        if frame.data().is_some_and(|d| d.contains("before 1")) {
            break;
        }
    }
    let response = client.request(Method::POST, &format!("/runs/{id}/cancel")).send().await.expect("cancel");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let resource: Value = response.json().await.expect("json");
    assert_eq!(resource["id"], run["id"]);
    let rest = reader.rest().await;
    let last = datas(&rest).last().cloned().expect("events");
    assert_eq!(event_type(&last), "run.completed");
    assert!(last.contains("\"status\":\"cancelled\""), "{last}");
    assert_eq!(client.get_json(&format!("/runs/{id}")).await["status"], "cancelled");
    let response = client.request(Method::POST, &format!("/runs/{id}/cancel")).send().await.expect("cancel");
    problem(response, StatusCode::CONFLICT).await;
    let response = client.request(Method::POST, "/runs/run_01M8C4DS2PH0887ZPTJ9T85312/cancel").send().await;
    problem(response.expect("cancel"), StatusCode::NOT_FOUND).await;
    server.stop().await;
}

/// Checks a whole SSE transcript: `retry` first, then events 1..=n in order, ending with
/// `run.completed`, equal to the stored log.
async fn check_transcript(client: &crate::support::Client<'_>, id: &str, frames: &[Frame]) {
    assert_eq!(frames.first(), Some(&Frame::Retry(2000)));
    let events: Vec<_> = frames.iter().filter(|f| matches!(f, Frame::Event { .. })).collect();
    for (i, frame) in events.iter().enumerate() {
        let Frame::Event { id: frame_id, event, data } = frame else { unreachable!() };
        assert_eq!(event, "ade.event");
        assert_eq!(frame_id, &(i + 1).to_string());
        assert_eq!(sequence(data), i as u64 + 1);
    }
    let data = datas(frames);
    assert_eq!(data.last().map(|d| event_type(d)).as_deref(), Some("run.completed"));
    assert_eq!(data, client.log(id).await, "the stream is the stored log, byte for byte");
}

#[tokio::test]
async fn create_with_stream_true_streams_the_run_from_queued_to_completed() {
    let server = TestServer::start().await;
    let client = server.client();
    let response = client
        .request(Method::POST, "/runs?stream=true")
        .json(&json!({"configuration_id": "quick", "document_ids": []}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    assert_eq!(header(&response, "cache-control"), "no-cache");
    assert_eq!(header(&response, "x-accel-buffering"), "no");
    let location = header(&response, "location");
    let id = location.strip_prefix("/runs/").expect("location").to_owned();
    let frames = SseReader::new(response).rest().await;
    assert_eq!(frames.iter().filter_map(Frame::data).map(event_type).next().as_deref(), Some("run.queued"));
    check_transcript(&client, &id, &frames).await;

    // `Accept: text/event-stream` asks for the same.
    let response = client
        .request(Method::POST, "/runs")
        .header("accept", "text/event-stream")
        .json(&json!({"configuration_id": "quick", "document_ids": []}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = header(&response, "location").trim_start_matches("/runs/").to_owned();
    let frames = SseReader::new(response).rest().await;
    check_transcript(&client, &id, &frames).await;
    let response = client
        .request(Method::POST, "/runs?stream=maybe")
        .json(&json!({"configuration_id": "quick", "document_ids": []}))
        .send()
        .await
        .expect("create");
    problem(response, StatusCode::BAD_REQUEST).await;
    server.stop().await;
}

#[tokio::test]
async fn get_of_unknown_or_malformed_run_ids_is_404() {
    let server = crate::support::InProcess::start().await;
    for path in
        ["/runs/run_01M8C4DS2PH0887ZPTJ9T85312", "/runs/run_lower", "/runs/%00", "/runs/doc_01M8C4DRW0GXC5F6SXXKYK4GZ6"]
    {
        crate::support::problem_in(&server.get(path).await, StatusCode::NOT_FOUND);
    }
    server.runtime.shutdown().await;
}

#[tokio::test]
async fn a_client_leaving_a_streamed_create_does_not_cancel_the_run() {
    let server = TestServer::start().await;
    let client = server.client();
    let response = client
        .request(Method::POST, "/runs?stream=true")
        .json(&json!({"configuration_id": "gated", "document_ids": []}))
        .send()
        .await
        .expect("create");
    let id = header(&response, "location").trim_start_matches("/runs/").to_owned();
    let mut reader = SseReader::new(response);
    assert_eq!(reader.next().await, Some(Frame::Retry(2000)));
    drop(reader);
    server.gate.add_permits(1);
    let frames = client.follow(&id).await;
    let last = datas(&frames).last().cloned().expect("events");
    assert!(last.contains("\"status\":\"succeeded\""), "{last}");
    server.stop().await;
}
