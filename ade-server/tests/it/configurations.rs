//! `GET /configurations`, `GET/PUT /configurations/{id}`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Frame, TestServer, problem};

#[tokio::test]
async fn configurations_are_listed_and_read() {
    let server = TestServer::start().await;
    let client = server.client();
    let list = client.get_json("/configurations").await;
    let ids: Vec<_> = list["configurations"].as_array().expect("list").iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, vec![json!("gated"), json!("hello"), json!("members"), json!("quick")]);
    let members = client.get_json("/configurations/members").await;
    assert_eq!(members["engine"], "extract");
    assert_eq!(members["fields"][0]["name"], "member_id");
    problem(client.get("/configurations/nope").await, StatusCode::NOT_FOUND).await;
    problem(client.get("/configurations/..%2F..").await, StatusCode::NOT_FOUND).await;
    server.stop().await;
}

fn extract_body() -> serde_json::Value {
    json!({ "version": "2", "engine": "extract", "fields": [ { "name": "email", "type": "email", "required": true } ] })
}

#[tokio::test]
async fn put_creates_and_replaces_extract_configurations_and_keeps_them() {
    let server = TestServer::start().await;
    let client = server.client();
    let put = |body: serde_json::Value| client.request(Method::PUT, "/configurations/contacts").json(&body).send();
    let response = put(extract_body()).await.expect("put");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: serde_json::Value = response.json().await.expect("json");
    assert_eq!(created["id"], "contacts");
    let mut changed = extract_body();
    changed["version"] = json!("3");
    let response = put(changed).await.expect("put");
    assert_eq!(response.status(), StatusCode::OK, "a replacement is 200");
    assert_eq!(client.get_json("/configurations/contacts").await["version"], "3");
    let stored = server.dir.path().join("configurations/contacts.json");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(stored).expect("stored")).expect("json");
    assert_eq!(kept["version"], "3");
    // A run of it works.
    let run = client.create_run("default", "contacts", &[]).await;
    assert_eq!(run["configuration_id"], "contacts");
    server.stop().await;
}

#[tokio::test]
async fn put_refuses_process_configurations_mismatched_ids_and_bad_shapes() {
    let server = TestServer::start().await;
    let client = server.client();
    let put = |path: &str, body: serde_json::Value| client.request(Method::PUT, path).json(&body).send();
    let process = json!({ "version": "1", "engine": "process", "command": ["sh", "-c", "true"] });
    let detail =
        problem(put("/configurations/mine", process).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(detail.contains("extract"), "{detail}");
    let detail = problem(put("/configurations/hello", extract_body()).await.expect("put"), StatusCode::CONFLICT).await;
    assert!(detail.contains("configuration directory"), "{detail}");
    let mut other = extract_body();
    other["id"] = json!("else");
    problem(put("/configurations/mine", other).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut typo = extract_body();
    typo["feilds"] = json!([]);
    problem(put("/configurations/mine", typo).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(put("/configurations/mine", json!([1, 2])).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(put("/configurations/bad%20id", extract_body()).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    problem(client.get("/configurations/mine").await, StatusCode::NOT_FOUND).await;
    server.stop().await;
}

#[tokio::test]
async fn put_refuses_to_replace_a_configuration_of_the_configuration_directory() {
    let server = TestServer::start().await;
    let client = server.client();
    let before = client.get_json("/configurations/members").await;
    let response = client.request(Method::PUT, "/configurations/members").json(&extract_body()).send().await;
    let detail = problem(response.expect("put"), StatusCode::CONFLICT).await;
    assert!(detail.contains("configuration directory") && detail.contains("change it there"), "{detail}");
    assert_eq!(client.get_json("/configurations/members").await, before, "unchanged");
    assert!(!server.dir.path().join("configurations/members.json").exists(), "nothing stored");
    server.stop().await;
}

#[tokio::test]
async fn put_refuses_extract_fields_the_engine_could_not_compile_naming_the_field() {
    let server = TestServer::start().await;
    let client = server.client();
    let put = |body: serde_json::Value| client.request(Method::PUT, "/configurations/broken").json(&body).send();
    let cases = [
        (json!({ "name": "code", "pattern": "([a-z" }), "pattern"),
        (json!({ "name": "age", "type": "integer", "min": 10, "max": 1 }), "min"),
        (json!({ "name": "kind", "allowed_values": [] }), "allowed_values"),
    ];
    for (field, what) in cases {
        let body = json!({ "version": "1", "engine": "extract", "fields": [field] });
        let detail = problem(put(body).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY).await;
        let name = field["name"].as_str().expect("name");
        assert!(detail.contains(&format!("'{name}'")) && detail.contains(what), "{detail}");
    }
    let no_fields = json!({ "version": "1", "engine": "extract", "fields": [] });
    problem(put(no_fields).await.expect("put"), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(client.get("/configurations/broken").await, StatusCode::NOT_FOUND).await;
    assert!(!server.dir.path().join("configurations/broken.json").exists(), "nothing stored");
    server.stop().await;
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
