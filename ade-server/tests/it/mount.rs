//! The API mounted under a prefix (`Router::new().nest("/ade", ade_server::router(state))`) and
//! behind a public URL: every link and `Location` it returns leads back to it.

use std::sync::Arc;

use ade_core::Runtime;
use ade_core::test_util::{GatedEngine, gated_configuration};
use ade_server::{AppState, PublicUrl, ServerConfig};
use axum::Router;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::support::{header, id_of};

#[derive(Debug, Clone, Copy)]
enum Nesting {
    /// `Router::nest`: serves `/ade` and `/ade/…`, not `/ade/`.
    Nest,
    /// `Router::nest_service`: also serves `/ade/`.
    NestService,
}

/// The API nested under `/ade` in an application of its own, served by `axum::serve` on a real
/// socket, as an embedder would.
struct Mounted {
    /// `http://127.0.0.1:<port>`: the application's root, not the API's.
    origin: String,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Mounted {
    async fn start(config: ServerConfig, nesting: Nesting) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let runtime = Runtime::builder()
            .data_dir(dir.path())
            .workers(2)
            .configuration(gated_configuration("quick", 3, false, 2))
            .configuration(gated_configuration("gated", 2, true, 3))
            .engine("gated", Arc::new(GatedEngine { gate: Arc::new(Semaphore::new(0)) }), None)
            .build()
            .await
            .expect("runtime");
        let api = ade_server::router(AppState::new(runtime, config));
        let app = match nesting {
            Nesting::Nest => Router::new().nest("/ade", api),
            Nesting::NestService => Router::new().nest_service("/ade", api),
        }
        .route("/", axum::routing::get(|| async { "the embedding application" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { origin, http: reqwest::Client::new(), task, _dir: dir }
    }

    /// `method` on a path of the application (`/ade/runs`) or a link the API returned.
    async fn send(&self, method: Method, link: &str, body: Option<&Value>) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{link}", self.origin));
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }

    async fn get_json(&self, link: &str) -> Value {
        let response = self.send(Method::GET, link, None).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {link}");
        response.json().await.expect("json")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn links(run: &Value) -> [String; 3] {
    ["self", "events", "outputs"].map(|name| run["links"][name].as_str().expect("a link").to_owned())
}

#[tokio::test]
async fn every_link_and_location_leads_back_under_the_prefix() {
    for nesting in [Nesting::Nest, Nesting::NestService] {
        let app = Mounted::start(ServerConfig::new(), nesting).await;
        let response = app
            .http
            .post(format!("{}/ade/documents?filename=members.csv", app.origin))
            .body(&include_bytes!("../../../examples/data/members.csv")[..])
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED, "{nesting:?}");
        let location = header(&response, "location");
        let document: Value = response.json().await.expect("json");
        assert_eq!(location, format!("/ade/documents/{}", document["id"].as_str().expect("id")), "{nesting:?}");
        assert_eq!(app.get_json(&location).await["id"], document["id"]);

        let body = json!({ "configuration_id": "quick" });
        let response = app.send(Method::POST, "/ade/runs", Some(&body)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{nesting:?}");
        let location = header(&response, "location");
        let run: Value = response.json().await.expect("json");
        let id = id_of(&run);
        let [self_, events, outputs] = links(&run);
        assert_eq!(location, format!("/ade/runs/{id}"), "{nesting:?}");
        assert_eq!((self_.as_str(), events.as_str()), (location.as_str(), format!("/ade/runs/{id}/events").as_str()));
        assert_eq!(outputs, format!("/ade/runs/{id}/outputs"));

        // The events link streams the run to its end.
        let stream = app.http.get(format!("{}{events}", app.origin)).header("accept", "text/event-stream");
        let text = stream.send().await.expect("request").text().await.expect("body");
        assert!(text.contains("run.completed"), "{text}");
        let finished = app.get_json(&self_).await;
        assert_eq!(finished["status"], "succeeded", "{finished}");
        assert_eq!(links(&finished), links(&run), "GET keeps the links");
        let listed = app.get_json("/ade/runs").await;
        assert_eq!(links(&listed["runs"][0]), links(&run), "the list has the same links");
        let listed = app.get_json(&outputs).await;
        let files = listed["outputs"].as_array().expect("outputs");
        assert!(!files.is_empty(), "{listed}");
        for file in files {
            let href = file["href"].as_str().expect("href");
            assert!(href.starts_with(&format!("/ade/runs/{id}/outputs/")), "{href}");
            let response = app.send(Method::GET, href, None).await;
            assert_eq!(response.status(), StatusCode::OK, "GET {href}");
        }
        let response = app.send(Method::POST, &format!("{self_}/cancel"), None).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "a finished run cannot be cancelled");

        // The embedding application's own routes are its own.
        let root = app.send(Method::GET, "/", None).await.text().await.expect("body");
        assert_eq!(root, "the embedding application");
    }
}

#[tokio::test]
async fn a_cancelled_run_answers_with_links_under_the_prefix() {
    let app = Mounted::start(ServerConfig::new(), Nesting::Nest).await;
    // `gated` waits at its gate, which this test never opens: the run is active when cancelled.
    let body = json!({ "configuration_id": "gated" });
    let run: Value = app.send(Method::POST, "/ade/runs", Some(&body)).await.json().await.expect("json");
    let response = app.send(Method::POST, &format!("/ade/runs/{}/cancel", id_of(&run)), None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let cancelled: Value = response.json().await.expect("json");
    assert_eq!(links(&cancelled), ["", "/events", "/outputs"].map(|tail| format!("/ade/runs/{}{tail}", id_of(&run))));
}

#[tokio::test]
async fn the_viewer_is_served_under_the_prefix_and_asks_for_everything_there() {
    for (nesting, paths) in [(Nesting::Nest, &["/ade"][..]), (Nesting::NestService, &["/ade", "/ade/"][..])] {
        let app = Mounted::start(ServerConfig::new(), nesting).await;
        for path in paths {
            let response = app.send(Method::GET, path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{nesting:?} GET {path}");
            let page = response.text().await.expect("body");
            assert!(page.contains(r#"<meta name="ade-base" content="/ade">"#), "{page}");
            assert!(page.contains(r#"href="/ade/viewer.css""#) && page.contains(r#"src="/ade/viewer.js""#), "{page}");
        }
        for asset in ["/ade/viewer.js", "/ade/viewer.css"] {
            assert_eq!(app.send(Method::GET, asset, None).await.status(), StatusCode::OK, "{asset}");
        }
    }
}

#[tokio::test]
async fn a_public_url_overrides_the_mount_point() {
    let public = PublicUrl::parse("https://ade.example.com/api/").expect("a public URL");
    let app = Mounted::start(ServerConfig::new().with_public_url(public), Nesting::Nest).await;
    let body = json!({ "configuration_id": "quick" });
    let response = app.send(Method::POST, "/ade/runs", Some(&body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location");
    let run: Value = response.json().await.expect("json");
    let id = id_of(&run);
    assert_eq!(location, format!("https://ade.example.com/api/runs/{id}"));
    assert_eq!(
        links(&run),
        ["", "/events", "/outputs"].map(|tail| format!("https://ade.example.com/api/runs/{id}{tail}"))
    );
    // The proxy in front maps https://ade.example.com/api to this server's /ade: so do we, and
    // each link then leads to its resource.
    let local = |link: &str| link.replacen("https://ade.example.com/api", "/ade", 1);
    let stream = app.http.get(format!("{}{}", app.origin, local(&links(&run)[1])));
    let text = stream.header("accept", "text/event-stream").send().await.expect("request").text().await.expect("body");
    assert!(text.contains("run.completed"), "{text}");
    let finished = app.get_json(&local(&location)).await;
    assert_eq!(finished["id"], run["id"]);
    let listed = app.get_json(&local(&links(&run)[2])).await;
    for file in listed["outputs"].as_array().expect("outputs") {
        let href = file["href"].as_str().expect("href");
        assert!(href.starts_with("https://ade.example.com/api/runs/"), "{href}");
        assert_eq!(app.send(Method::GET, &local(href), None).await.status(), StatusCode::OK, "{href}");
    }
    // The viewer asks its own origin, under the public URL's path.
    let page = app.send(Method::GET, "/ade", None).await.text().await.expect("body");
    assert!(page.contains(r#"<meta name="ade-base" content="/api">"#), "{page}");
}

#[tokio::test]
async fn access_token_is_accepted_on_the_event_stream_under_the_prefix_and_only_there() {
    let config = ServerConfig::new().with_tokens(crate::support::test_tokens());
    for nesting in [Nesting::Nest, Nesting::NestService] {
        let app = Mounted::start(config.clone(), nesting).await;
        let body = json!({ "configuration_id": "quick" });
        let created = app.http.post(format!("{}/ade/runs", app.origin)).bearer_auth("admin-secret").json(&body);
        let run: Value = created.send().await.expect("request").json().await.expect("json");
        let events = format!("{}/ade/runs/{}/events?access_token=admin-secret", app.origin, id_of(&run));
        let response = app.http.get(&events).header("accept", "text/event-stream").send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{nesting:?}");
        assert!(response.text().await.expect("body").contains("run.completed"));
        let response = app.http.get(&events).header("accept", "application/json").send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{nesting:?}: not for a JSON page");
        let list = app.http.get(format!("{}/ade/runs?access_token=admin-secret", app.origin)).send().await;
        assert_eq!(list.expect("request").status(), StatusCode::UNAUTHORIZED, "{nesting:?}: not elsewhere");
    }
}

/// The OpenAPI document served under a mount point (or a public URL) names that base in
/// `servers`, so that tools reading it resolve its paths there; at the root it names none.
#[tokio::test]
async fn the_openapi_document_names_its_base_in_servers() {
    let app = Mounted::start(ServerConfig::new(), Nesting::Nest).await;
    let document = app.get_json("/ade/openapi.json").await;
    assert_eq!(document["servers"], json!([{ "url": "/ade" }]));
    assert!(document["paths"]["/runs"].is_object(), "paths stay relative to the server");
    let public = PublicUrl::parse("https://ade.example.com/api").expect("a public URL");
    let app = Mounted::start(ServerConfig::new().with_public_url(public), Nesting::Nest).await;
    let document = app.get_json("/ade/openapi.json").await;
    assert_eq!(document["servers"], json!([{ "url": "https://ade.example.com/api" }]));
    let root = crate::support::TestServer::start().await;
    let document: Value = root.client().get("/openapi.json").await.json().await.expect("json");
    assert!(document.get("servers").is_none(), "{}", document["servers"]);
    root.stop().await;
}
