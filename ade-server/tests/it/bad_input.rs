//! SPEC §9 bad input, table-driven: every row is a request and the status of the problem+json it
//! must get; the server keeps serving after each.

use reqwest::{Method, StatusCode};

use crate::support::{TestServer, id_of, problem, test_tokens};

/// One bad request.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: StatusCode,
    /// Text the problem's `detail` must contain.
    detail: &'static str,
}

fn case(name: &'static str, method: Method, path: impl Into<String>, status: StatusCode) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        token: Some("admin-secret"),
        headers: Vec::new(),
        body: None,
        status,
        detail: "",
    }
}

impl Case {
    fn json(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.headers.push(("content-type", "application/json".to_owned()));
        self.body = Some(body.into());
        self
    }
    fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers.push(("content-type", content_type.to_owned()));
        self.body = Some(body.into());
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn token(mut self, token: Option<&'static str>) -> Self {
        self.token = token;
        self
    }
    fn detail(mut self, text: &'static str) -> Self {
        self.detail = text;
        self
    }
}

#[tokio::test]
async fn bad_input_gets_a_problem_naming_what_is_wrong() {
    let config =
        ade_server::ServerConfig::new().with_tokens(test_tokens()).with_max_json_body(4096).with_max_upload(4096);
    let server = TestServer::start_with(config).await;
    let admin = server.with_token("admin-secret");
    // A finished run in `acme`, and a run and a document in `beta` (another workspace for `acme`).
    let acme_run = admin.create_run("acme", "quick", &[]).await;
    let acme_id = id_of(&acme_run);
    admin.follow(&acme_id).await;
    let beta_run = admin.create_run("beta", "quick", &[]).await;
    let beta_id = id_of(&beta_run);
    let beta_doc = admin.upload("beta", "b.csv", b"a\n1\n").await;
    let beta_doc = beta_doc["id"].as_str().expect("id").to_owned();
    let unknown_run = "run_01M8C4DS2PH0887ZPTJ9T85312";
    let run_body = |extra: &str| format!(r#"{{"configuration_id":"quick","document_ids":[]{extra}}}"#);
    let big = format!(
        r#"{{"configuration_id":"quick","document_ids":[],"options":{{"metadata":{{"x":"{}"}}}}}}"#,
        "y".repeat(5000)
    );
    use Method as M;
    use StatusCode as S;
    let cases = vec![
        case("malformed JSON", M::POST, "/runs", S::BAD_REQUEST)
            .json("{\"configuration_id\":")
            .detail("malformed JSON"),
        case("JSON that is not an object", M::POST, "/runs", S::UNPROCESSABLE_ENTITY).json("[1,2]"),
        case("empty body", M::POST, "/runs", S::BAD_REQUEST).json("").detail("empty"),
        case("no content type", M::POST, "/runs", S::UNSUPPORTED_MEDIA_TYPE)
            .body("", run_body(""))
            .detail("application/json"),
        case("wrong content type", M::POST, "/runs", S::UNSUPPORTED_MEDIA_TYPE).body("text/plain", run_body("")),
        case("form content type", M::POST, "/runs", S::UNSUPPORTED_MEDIA_TYPE)
            .body("application/x-www-form-urlencoded", "configuration_id=quick"),
        case("unknown field", M::POST, "/runs", S::UNPROCESSABLE_ENTITY)
            .json(run_body(r#","priority":1"#))
            .detail("priority"),
        case("unknown option", M::POST, "/runs", S::UNPROCESSABLE_ENTITY)
            .json(run_body(r#","options":{"speed":1}"#))
            .detail("speed"),
        case("wrong type", M::POST, "/runs", S::UNPROCESSABLE_ENTITY)
            .json(r#"{"configuration_id":7,"document_ids":[]}"#),
        case("huge JSON body", M::POST, "/runs", S::PAYLOAD_TOO_LARGE).json(big.clone()).detail("4096 bytes"),
        case("huge configuration body", M::PUT, "/configurations/big", S::PAYLOAD_TOO_LARGE)
            .json(big)
            .detail("4096 bytes"),
        case("huge upload", M::POST, "/documents?filename=big.csv", S::PAYLOAD_TOO_LARGE)
            .body("text/csv", vec![b'x'; 5000])
            .detail("upload limit of 4096 bytes"),
        case("upload without a name", M::POST, "/documents", S::BAD_REQUEST).body("text/csv", "a\n").detail("filename"),
        case("unknown configuration", M::POST, "/runs", S::UNPROCESSABLE_ENTITY)
            .json(r#"{"configuration_id":"nope","document_ids":[]}"#)
            .detail("nope"),
        case("negative cursor", M::GET, format!("/runs/{acme_id}/events?after_sequence=-3"), S::BAD_REQUEST)
            .detail("after_sequence"),
        case("garbage cursor", M::GET, format!("/runs/{acme_id}/events?after_sequence=ten"), S::BAD_REQUEST),
        case("signed cursor", M::GET, format!("/runs/{acme_id}/events?after_sequence=%2B5"), S::BAD_REQUEST)
            .detail("after_sequence"),
        case("signed Last-Event-ID", M::GET, format!("/runs/{acme_id}/events"), S::BAD_REQUEST)
            .header("accept", "text/event-stream")
            .header("last-event-id", "+2")
            .detail("Last-Event-ID"),
        case("signed page limit", M::GET, format!("/runs/{acme_id}/events?limit=%2B5"), S::BAD_REQUEST).detail("limit"),
        case("garbage Last-Event-ID", M::GET, format!("/runs/{acme_id}/events"), S::BAD_REQUEST)
            .header("accept", "text/event-stream")
            .header("last-event-id", "abc")
            .detail("Last-Event-ID"),
        case("negative Last-Event-ID", M::GET, format!("/runs/{acme_id}/events"), S::BAD_REQUEST)
            .header("last-event-id", "-1"),
        case("page limit too big", M::GET, format!("/runs/{acme_id}/events?limit=10001"), S::BAD_REQUEST)
            .detail("10000"),
        case("runs limit too big", M::GET, "/runs?limit=500", S::BAD_REQUEST).detail("200"),
        case("signed runs limit", M::GET, "/runs?limit=%2B5", S::BAD_REQUEST).detail("limit"),
        case("bad runs cursor", M::GET, "/runs?cursor=%7B%7D", S::BAD_REQUEST).detail("cursor"),
        case("bad Accept", M::GET, format!("/runs/{acme_id}/events"), S::NOT_ACCEPTABLE).header("accept", "image/png"),
        case(
            "traversal in output name",
            M::GET,
            format!("/runs/{acme_id}/outputs/..%2F..%2F..%2Fade.sqlite"),
            S::NOT_FOUND,
        ),
        case("traversal in run id", M::GET, "/runs/..%2F..%2Fade.sqlite", S::NOT_FOUND),
        case("traversal in configuration id", M::GET, "/configurations/..%2Fhello", S::NOT_FOUND),
        case("unknown run", M::GET, format!("/runs/{unknown_run}"), S::NOT_FOUND),
        case("malformed run id", M::GET, "/runs/42", S::NOT_FOUND),
        case("run id that is not UTF-8", M::GET, "/runs/%FF%FE", S::NOT_FOUND),
        case("output name that is not UTF-8", M::GET, format!("/runs/{acme_id}/outputs/%C0%AF"), S::NOT_FOUND),
        case("document id that is not UTF-8", M::GET, "/documents/%FF", S::NOT_FOUND),
        case("unknown run's events", M::GET, format!("/runs/{unknown_run}/events"), S::NOT_FOUND),
        case("unknown document", M::GET, "/documents/doc_01M8C4DRW0GXC5F6SXXKYK4GZ6", S::NOT_FOUND),
        case("another workspace's run", M::GET, format!("/runs/{beta_id}"), S::NOT_FOUND).token(Some("acme-secret")),
        case("another workspace's events", M::GET, format!("/runs/{beta_id}/events"), S::NOT_FOUND)
            .token(Some("acme-secret")),
        case("another workspace's outputs", M::GET, format!("/runs/{beta_id}/outputs"), S::NOT_FOUND)
            .token(Some("acme-secret")),
        case("another workspace's cancel", M::POST, format!("/runs/{beta_id}/cancel"), S::NOT_FOUND)
            .token(Some("acme-secret")),
        case("another workspace's document", M::GET, format!("/documents/{beta_doc}"), S::NOT_FOUND)
            .token(Some("acme-secret")),
        case("another workspace's document in a run", M::POST, "/runs", S::UNPROCESSABLE_ENTITY)
            .token(Some("acme-secret"))
            .json(format!(r#"{{"workspace_id":"acme","configuration_id":"quick","document_ids":["{beta_doc}"]}}"#)),
        case("no route", M::GET, "/nowhere", S::NOT_FOUND),
        case("wrong method", M::DELETE, format!("/runs/{acme_id}"), S::METHOD_NOT_ALLOWED).detail("DELETE"),
        case("wrong method on a collection", M::PATCH, "/runs", S::METHOD_NOT_ALLOWED),
        case("cancel of a finished run", M::POST, format!("/runs/{acme_id}/cancel"), S::CONFLICT),
        case("missing token", M::GET, "/runs", S::UNAUTHORIZED).token(None),
    ];
    for case in cases {
        let mut request = admin.request(case.method.clone(), &case.path);
        // `admin.request` sends the admin token; rebuild for other tokens.
        if case.token != Some("admin-secret") {
            let url = format!("{}{}", server.base, case.path);
            request = server.http.request(case.method.clone(), url);
            if let Some(token) = case.token {
                request = request.bearer_auth(token);
            }
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = case.body.clone() {
            request = request.body(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let status = response.status();
        assert_eq!(status, case.status, "{}", case.name);
        let detail = problem(response, case.status).await;
        assert!(detail.contains(case.detail), "{}: detail {detail:?} should mention {:?}", case.name, case.detail);
    }
    // Nothing stored changed, and the server still serves.
    let after = admin.get_json(&format!("/runs/{acme_id}")).await;
    assert_eq!(after["status"], "succeeded");
    let runs = admin.get_json("/runs?limit=200").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "no bad request created a run");
    assert!(admin.get_json("/configurations").await["configurations"].as_array().is_some_and(|c| c.len() == 4));
    server.stop().await;
}
