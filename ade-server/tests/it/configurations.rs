//! `GET /configurations`, `GET/PUT /configurations/{id}`: statuses and bodies, from the router
//! in-process (a run followed to its end needs a real server).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Frame, InProcess, TestServer, problem, problem_in};

#[tokio::test]
async fn configurations_are_listed_and_read() {
    let server = InProcess::start().await;
    let client = &server;
    let list = client.get_json("/configurations").await;
    let ids: Vec<_> = list["configurations"].as_array().expect("list").iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, vec![json!("gated"), json!("hello"), json!("members"), json!("quick")]);
    let members = client.get_json("/configurations/members").await;
    assert_eq!(members["engine"], "extract");
    assert_eq!(members["fields"][0]["name"], "member_id");
    problem_in(&client.get("/configurations/nope").await, StatusCode::NOT_FOUND);
    problem_in(&client.get("/configurations/..%2F..").await, StatusCode::NOT_FOUND);
    server.runtime.shutdown().await;
}

fn extract_body() -> serde_json::Value {
    json!({ "version": "2", "engine": "extract", "fields": [ { "name": "email", "type": "email", "required": true } ] })
}

#[tokio::test]
async fn put_creates_and_replaces_extract_configurations_and_keeps_them() {
    let server = InProcess::start().await;
    let client = &server;
    let put = |body: serde_json::Value| async move { client.put_json("/configurations/contacts", &body).await };
    let response = put(extract_body()).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let created = response.json();
    assert_eq!(created["id"], "contacts");
    let mut changed = extract_body();
    changed["version"] = json!("3");
    let response = put(changed).await;
    assert_eq!(response.status, StatusCode::OK, "a replacement is 200");
    assert_eq!(client.get_json("/configurations/contacts").await["version"], "3");
    let stored = server.dir.path().join("configurations/contacts.json");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(stored).expect("stored")).expect("json");
    assert_eq!(kept["version"], "3");
    // A run of it works.
    let run = client.create_run("default", "contacts").await;
    assert_eq!(run["configuration_id"], "contacts");
    server.runtime.shutdown().await;
}

#[tokio::test]
async fn put_refuses_process_configurations_mismatched_ids_and_bad_shapes() {
    let server = InProcess::start().await;
    let client = &server;
    let put = |path: &'static str, body: serde_json::Value| async move { client.put_json(path, &body).await };
    let process = json!({ "version": "1", "engine": "process", "command": ["sh", "-c", "true"] });
    let detail = problem_in(&put("/configurations/mine", process).await, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("extract"), "{detail}");
    let detail = problem_in(&put("/configurations/hello", extract_body()).await, StatusCode::CONFLICT);
    assert!(detail.contains("configuration directory"), "{detail}");
    let mut other = extract_body();
    other["id"] = json!("else");
    problem_in(&put("/configurations/mine", other).await, StatusCode::UNPROCESSABLE_ENTITY);
    let mut typo = extract_body();
    typo["feilds"] = json!([]);
    problem_in(&put("/configurations/mine", typo).await, StatusCode::UNPROCESSABLE_ENTITY);
    problem_in(&put("/configurations/mine", json!([1, 2])).await, StatusCode::UNPROCESSABLE_ENTITY);
    problem_in(&put("/configurations/bad%20id", extract_body()).await, StatusCode::UNPROCESSABLE_ENTITY);
    problem_in(&client.get("/configurations/mine").await, StatusCode::NOT_FOUND);
    server.runtime.shutdown().await;
}

#[tokio::test]
async fn put_refuses_to_replace_a_configuration_of_the_configuration_directory() {
    let server = InProcess::start().await;
    let client = &server;
    let before = client.get_json("/configurations/members").await;
    let response = client.put_json("/configurations/members", &extract_body()).await;
    let detail = problem_in(&response, StatusCode::CONFLICT);
    assert!(detail.contains("configuration directory") && detail.contains("change it there"), "{detail}");
    assert_eq!(client.get_json("/configurations/members").await, before, "unchanged");
    assert!(!server.dir.path().join("configurations/members.json").exists(), "nothing stored");
    server.runtime.shutdown().await;
}

#[tokio::test]
async fn put_refuses_extract_fields_the_engine_could_not_compile_naming_the_field() {
    let server = InProcess::start().await;
    let client = &server;
    let put = |body: serde_json::Value| async move { client.put_json("/configurations/broken", &body).await };
    let cases = [
        (json!({ "name": "code", "pattern": "([a-z" }), "pattern"),
        (json!({ "name": "age", "type": "integer", "min": 10, "max": 1 }), "min"),
        (json!({ "name": "kind", "allowed_values": [] }), "allowed_values"),
    ];
    for (field, what) in cases {
        let body = json!({ "version": "1", "engine": "extract", "fields": [field] });
        let detail = problem_in(&put(body).await, StatusCode::UNPROCESSABLE_ENTITY);
        let name = field["name"].as_str().expect("name");
        assert!(detail.contains(&format!("'{name}'")) && detail.contains(what), "{detail}");
    }
    let no_fields = json!({ "version": "1", "engine": "extract", "fields": [] });
    problem_in(&put(no_fields).await, StatusCode::UNPROCESSABLE_ENTITY);
    problem_in(&client.get("/configurations/broken").await, StatusCode::NOT_FOUND);
    assert!(!server.dir.path().join("configurations/broken.json").exists(), "nothing stored");
    server.runtime.shutdown().await;
}

#[tokio::test]
async fn put_refuses_a_configuration_with_more_fields_than_the_limit_naming_it() {
    let server = TestServer::start().await;
    let client = server.client();
    let put = |body: serde_json::Value| client.request(Method::PUT, "/configurations/wide").json(&body).send();
    let wide = |n: usize| {
        let fields: Vec<_> = (0..n).map(|i| json!({ "name": format!("field_{i:05}") })).collect();
        json!({ "version": "1", "engine": "extract", "fields": fields })
    };
    // 10,000 fields once made run.completed 1.7 MB, over the 1 MiB event limit, and wedged every run.
    let detail = problem(put(wide(10_000)).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(detail.contains("10000 fields") && detail.contains("limit of 1000 fields"), "{detail}");
    assert!(detail.contains("--max-configuration-fields"), "names the setting: {detail}");
    problem(client.get("/configurations/wide").await, StatusCode::NOT_FOUND).await;
    assert!(!server.dir.path().join("configurations/wide.json").exists(), "nothing stored");
    // At the limit it is taken, and its runs end.
    let response = put(wide(1_000)).await.expect("put");
    assert_eq!(response.status(), StatusCode::CREATED);
    let run = client.create_run("default", "wide", &[]).await;
    let id = run["id"].as_str().expect("id").to_owned();
    let frames = client.follow(&id).await;
    let last = frames.iter().rev().find_map(Frame::data).expect("run.completed");
    let completed: serde_json::Value = serde_json::from_str(last).expect("json");
    assert_eq!(completed["type"], "run.completed");
    let by_field = &completed["payload"]["summary"]["breakdowns"]["by_field"];
    assert_eq!(by_field.as_array().map(Vec::len), Some(1_000), "listed whole");
    server.stop().await;
}
