//! SPEC §4.2: bearer tokens, workspaces, `?access_token=` for SSE only, loopback when open.

use reqwest::{Method, StatusCode};
use serde_json::json;

use ade_server::{ServeError, Server, ServerConfig, Tokens};

use crate::support::{SseReader, TestServer, datas, event_type, header, id_of, problem, test_tokens};

async fn server() -> TestServer {
    TestServer::start_with(ServerConfig::new().with_tokens(test_tokens())).await
}

#[tokio::test]
async fn missing_malformed_or_wrong_tokens_are_401() {
    let server = server().await;
    let anonymous = server.client();
    let response = anonymous.get("/runs").await;
    assert_eq!(header(&response, "www-authenticate"), "Bearer");
    problem(response, StatusCode::UNAUTHORIZED).await;
    problem(server.with_token("nope").get("/runs").await, StatusCode::UNAUTHORIZED).await;
    let response = anonymous.request(Method::GET, "/runs").header("authorization", "Basic YTpi").send().await;
    problem(response.expect("request"), StatusCode::UNAUTHORIZED).await;
    // Even with a bad id or an unknown route behind it, no token means 401 for the API.
    problem(anonymous.get("/runs/not-a-run").await, StatusCode::UNAUTHORIZED).await;
    // Probes need no token.
    assert_eq!(anonymous.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(anonymous.get("/readyz").await.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_token_sees_only_its_workspaces() {
    let server = server().await;
    let admin = server.with_token("admin-secret");
    let acme = server.with_token("acme-secret");
    let two = server.with_token("two-secret");
    let beta_run = admin.create_run("beta", "quick", &[]).await;
    admin.follow(&id_of(&beta_run)).await;
    // Creating in a workspace the token may not use: 403.
    let detail = problem(
        acme.post_json("/runs", &json!({"workspace_id": "beta", "configuration_id": "quick", "document_ids": []}))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(detail.contains("beta"), "{detail}");
    let response = acme
        .request(Method::POST, "/documents?workspace_id=beta&filename=x.csv")
        .body("a\n")
        .send()
        .await
        .expect("upload");
    problem(response, StatusCode::FORBIDDEN).await;
    // Its own workspace works, and the run says who queued it.
    let acme_run = acme.create_run("acme", "quick", &[]).await;
    let frames = acme.follow(&id_of(&acme_run)).await;
    let queued: serde_json::Value = serde_json::from_str(&datas(&frames)[0]).expect("json");
    assert_eq!(queued["payload"]["queued_by"], json!({"token_name": "acme-token"}));
    // Reads of the other workspace's objects: 404, as if they did not exist.
    let beta_id = id_of(&beta_run);
    for path in [format!("/runs/{beta_id}"), format!("/runs/{beta_id}/events"), format!("/runs/{beta_id}/outputs")] {
        problem(acme.get(&path).await, StatusCode::NOT_FOUND).await;
        assert_eq!(two.get(&path).await.status(), StatusCode::OK, "{path} for a token of acme and beta");
    }
    // Lists: a one-workspace token sees its workspace; naming another is 403; a token of several
    // workspaces names one.
    let listed = acme.get_json("/runs").await;
    let ids: Vec<_> = listed["runs"].as_array().expect("runs").iter().map(id_of).collect();
    assert_eq!(ids, vec![id_of(&acme_run)]);
    problem(acme.get("/runs?workspace_id=beta").await, StatusCode::FORBIDDEN).await;
    problem(two.get("/runs").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(two.get_json("/runs?workspace_id=beta").await["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(admin.get_json("/runs").await["runs"].as_array().map(Vec::len), Some(2));
    // Configurations are shared: only a `*` token may change them.
    let body = json!({"version": "1", "engine": "extract", "fields": [{"name": "a"}]});
    let response = acme.request(Method::PUT, "/configurations/shared").json(&body).send().await.expect("put");
    problem(response, StatusCode::FORBIDDEN).await;
    let response = admin.request(Method::PUT, "/configurations/shared").json(&body).send().await.expect("put");
    assert_eq!(response.status(), StatusCode::CREATED);
    server.stop().await;
}

/// A SPEC-only client with a one-workspace token names no workspace: uploads and runs go to the
/// token's workspace (not `default`, which it may not use), and `document_ids` may be left out.
#[tokio::test]
async fn a_one_workspace_token_needs_no_workspace_id() {
    let server = server().await;
    let acme = server.with_token("acme-secret");
    let response = acme
        .request(Method::POST, "/documents?filename=members.csv")
        .header("content-type", "text/csv")
        .body("id,name\n1,a\n")
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
    let document: serde_json::Value = response.json().await.expect("json");
    assert_eq!(document["workspace_id"], "acme");
    let response =
        acme.post_json("/runs", &json!({"configuration_id": "quick", "document_ids": [document["id"]]})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let run: serde_json::Value = response.json().await.expect("json");
    assert_eq!(run["workspace_id"], "acme");
    assert_eq!(run["document_ids"], json!([document["id"]]));
    // No `document_ids` at all: a run without inputs.
    let response = acme.post_json("/runs", &json!({"configuration_id": "quick"})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let bare: serde_json::Value = response.json().await.expect("json");
    assert_eq!((bare["workspace_id"].as_str(), bare["document_ids"].clone()), (Some("acme"), json!([])));
    let frames = acme.follow(&id_of(&bare)).await;
    assert_eq!(datas(&frames).last().map(|d| event_type(d)).as_deref(), Some("run.completed"));
    // A token of several workspaces, none of them `default`, may not use `default` (403) and is
    // told to name one; `*` gets `default`.
    let two = server.with_token("two-secret");
    let response = two.request(Method::POST, "/documents?filename=x.csv").body("a\n").send().await;
    let detail = problem(response.expect("upload"), StatusCode::FORBIDDEN).await;
    assert!(detail.contains("workspace_id"), "{detail}");
    let detail =
        problem(two.post_json("/runs", &json!({"configuration_id": "quick"})).await, StatusCode::FORBIDDEN).await;
    assert!(detail.contains("workspace_id"), "{detail}");
    let response = server.with_token("admin-secret").post_json("/runs", &json!({"configuration_id": "quick"})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.json::<serde_json::Value>().await.expect("json")["workspace_id"], "default");
    server.stop().await;
}

#[tokio::test]
async fn access_token_is_accepted_only_for_sse_event_streams() {
    let server = server().await;
    let admin = server.with_token("admin-secret");
    let run = admin.create_run("acme", "quick", &[]).await;
    let id = id_of(&run);
    admin.follow(&id).await;
    let anonymous = server.client();
    let response = anonymous
        .request(Method::GET, &format!("/runs/{id}/events?access_token=acme-secret"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), StatusCode::OK);
    let frames = SseReader::new(response).rest().await;
    assert_eq!(datas(&frames).last().map(|d| event_type(d)).as_deref(), Some("run.completed"));
    // Wrong token in the query: 401 like any wrong token.
    let response = anonymous
        .request(Method::GET, &format!("/runs/{id}/events?access_token=nope"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("events");
    problem(response, StatusCode::UNAUTHORIZED).await;
    // Not SSE, or not the events route: refused even with a valid token.
    for (path, accept) in [
        (format!("/runs/{id}/events?access_token=acme-secret"), "application/json"),
        (format!("/runs/{id}/events?access_token=acme-secret"), "application/x-ndjson"),
        (format!("/runs/{id}?access_token=acme-secret"), "text/event-stream"),
        ("/runs?access_token=acme-secret".to_owned(), "application/json"),
    ] {
        let response = anonymous.request(Method::GET, &path).header("accept", accept).send().await.expect("request");
        let detail = problem(response, StatusCode::UNAUTHORIZED).await;
        assert!(detail.contains("access_token"), "{detail}");
        assert!(!detail.contains("acme-secret"), "a token is never echoed");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_open_server_binds_loopback_only_unless_told() {
    let runtime =
        ade_core::Runtime::builder().in_memory().data_dir(tempfile::tempdir().expect("dir").keep()).build().await;
    let runtime = runtime.expect("runtime");
    let everywhere = "0.0.0.0:0".parse().expect("address");
    let refused = Server::bind(everywhere, runtime.clone(), ServerConfig::new()).await;
    assert!(matches!(refused, Err(ServeError::OpenNonLoopback(_))), "{refused:?}");
    let allowed = Server::bind(everywhere, runtime.clone(), ServerConfig::new().with_allow_open(true)).await;
    assert!(allowed.is_ok(), "{allowed:?}");
    let with_tokens = Server::bind(everywhere, runtime.clone(), ServerConfig::new().with_tokens(test_tokens())).await;
    assert!(with_tokens.is_ok(), "{with_tokens:?}");
    runtime.shutdown().await;
}

#[test]
fn tokens_files_are_checked_and_never_echo_secrets() {
    let bad = [
        r#"{"tokens": [{"name": "a", "token": "s3cret-value", "workspaces": []}]}"#,
        r#"{"tokens": [{"name": "a", "token": "  ", "workspaces": ["*"]}]}"#,
        r#"{"tokens": [{"name": "a", "token": "s3cret-value", "workspaces": ["../x"]}]}"#,
        r#"[{"name": "a", "token": "s3cret-value", "workspaces": ["*"]}, {"name": "b", "token": "s3cret-value", "workspaces": ["*"]}]"#,
        r#"{"tokens": [{"name": "a", "token": "s3cret-value", "workspaces": ["*"], "admin": true}]}"#,
        r#"{"tokens": "s3cret-value"}"#,
    ];
    for json in bad {
        let error = Tokens::from_json(json).expect_err(json).to_string();
        assert!(!error.contains("s3cret-value"), "{error}");
    }
    let tokens = Tokens::from_json(r#"[{"name": "a", "token": "t", "workspaces": ["acme"]}]"#).expect("valid");
    assert_eq!(tokens.authenticate("t").and_then(|c| c.name.clone()).as_deref(), Some("a"));
    assert!(tokens.authenticate("u").is_none());
    assert!(!format!("{tokens:?}").contains("\"t\""), "Debug shows names only");
}
