//! The run viewer (`GET /`), end to end in a real headless Chromium driven over WebDriver.
//!
//! Each browser test starts a real server on 127.0.0.1:0 and its own chromedriver; they take
//! turns (one browser at a time). Without `/usr/bin/chromium` and `/usr/bin/chromedriver` they
//! print `skipped: chromium/chromedriver not installed` and pass, unless `ADE_REQUIRE_BROWSER=1`.

#[path = "viewer/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::Value;

use support::{
    Browser, CONSOLE_CAP, FAST_TOTAL, PATIENCE, POLL, SLOW_BEFORE_GATE, SLOW_TOTAL, TestServer, browser_available,
    console_messages, repo_path,
};

/// The run id in the page's address, once a run is open.
const OPEN_RUN: &str = "const m = /^#\\/runs\\/(run_[0-9A-Za-z]+)$/.exec(location.hash); return m && m[1];";

/// Whether the open run got its `run.completed` and rendered it.
const COMPLETE: &str =
    "return document.querySelector('#run').dataset.complete === 'true' && !document.querySelector('#final').hidden;";

fn as_u64(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("a count, not {value}"))
}

fn expected_slow_lines(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("slow line {i}")).collect()
}

/// Waits until the page shows at least `count` console lines; the lines.
async fn wait_for_lines(browser: &Browser, count: usize) -> Vec<String> {
    browser
        .wait_script(
            &format!("{count} console lines"),
            &format!("return document.querySelectorAll('#console-lines .line').length >= {count};"),
        )
        .await;
    browser.console_lines().await
}

#[tokio::test]
async fn the_page_is_public_self_contained_and_never_cached_stale() {
    let server = TestServer::start_with_tokens().await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/viewer.js", "text/javascript; charset=utf-8"),
        ("/viewer.css", "text/css; charset=utf-8"),
    ] {
        // No token: the page has no data of its own.
        let response = server.http.get(format!("{}{path}", server.base)).send().await.expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert_eq!(header("content-type"), content_type, "GET {path}");
        assert_eq!(header("cache-control"), "no-cache", "GET {path}");
        assert!(header("content-security-policy").contains("default-src 'none'"), "GET {path}");
        let body = response.text().await.expect("body");
        if path == "/viewer.js" {
            let cap = format!("const CONSOLE_CAP = {CONSOLE_CAP};");
            assert!(body.contains(&cap), "the tests assume the page's console cap: {cap}");
        }
        for external in ["http://", "https://", "src=\"//", "href=\"//", "url(", "@import"] {
            assert!(!body.contains(external), "{path} refers to something outside the page: {external}");
        }
    }
    // The API behind it still wants a token.
    let response = server.http.get(format!("{}/runs", server.base)).send().await.expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_from_the_page_shows_cards_that_match_its_completed_summary() {
    if !browser_available() {
        return;
    }
    let server = TestServer::start().await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/", server.base)).await.expect("open the page");
    browser
        .wait_script(
            "the configurations",
            "return !!document.querySelector('#configuration option[value=\"members\"]');",
        )
        .await;

    // Start a run the way a person would: pick the configuration, upload the sample, start.
    let select = browser.client.find(Locator::Css("#configuration")).await.expect("the configuration select");
    select.select_by_value("members").await.expect("pick members");
    let sample = repo_path("examples/data/members.csv");
    let files = browser.client.find(Locator::Css("#files")).await.expect("the file input");
    files.send_keys(sample.to_str().expect("a UTF-8 path")).await.expect("choose the sample");
    browser.click("#start").await;
    let run_id = browser.wait_script("the new run to open", OPEN_RUN).await;
    let run_id = run_id.as_str().expect("a run id").to_owned();
    browser.wait_script("the final summary", COMPLETE).await;
    browser.wait_script("the output links", "return document.querySelectorAll('#final a.output').length > 0;").await;

    let log = server.log(&run_id).await;
    let completed = log.last().expect("a log");
    assert_eq!(completed["type"], "run.completed");
    assert_eq!(completed["payload"]["status"], "succeeded", "{completed}");
    let summary = &completed["payload"]["summary"];
    let core = &summary["core"];
    let tables: BTreeMap<String, &Value> = log
        .iter()
        .filter(|e| e["type"] == "run.table.summary")
        .map(|e| (e["payload"]["table_id"].as_str().expect("table id").to_owned(), &e["payload"]))
        .collect();

    let cards = browser
        .eval(
            "return Array.from(document.querySelectorAll('#tables .table-card'), card => ({
                table_id: card.dataset.tableId,
                source_file: card.dataset.sourceFile,
                rows: Number(card.dataset.rows),
                shown_rows: Number(card.querySelector('.rows').textContent),
                mapped: Number(card.dataset.mapped),
                unmapped: Number(card.dataset.unmapped),
                issues: Number(card.dataset.issues),
                severities: Object.fromEntries(Array.from(card.querySelectorAll('.severities [data-severity]'),
                    s => [s.dataset.severity, Number(s.dataset.count)])),
                fields: Array.from(card.querySelectorAll('tr.mapped-field[data-satisfied=\"true\"]'), r => r.dataset.field),
            }));",
        )
        .await;
    let cards = cards.as_array().expect("cards");
    assert!(!cards.is_empty(), "no table card");
    assert_eq!(cards.len() as u64, as_u64(&core["table_count"]), "one card per table");
    assert_eq!(cards.len(), tables.len(), "one card per run.table.summary");

    let (mut rows, mut unmapped, mut issues) = (0, 0, 0);
    let mut mapped_fields = BTreeSet::new();
    let mut by_file: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for card in cards {
        let id = card["table_id"].as_str().expect("table id");
        let table = tables.get(id).unwrap_or_else(|| panic!("card {id} has no run.table.summary"));
        assert_eq!(card["rows"], table["row_count"], "rows of {id}");
        assert_eq!(card["shown_rows"], table["row_count"], "rows shown on {id}");
        assert_eq!(card["mapped"], table["mapped_field_count"], "mapped fields of {id}");
        assert_eq!(card["unmapped"], table["unmapped_column_count"], "unmapped columns of {id}");
        assert_eq!(card["issues"], table["validation"]["issues_total"], "issues of {id}");
        assert_eq!(card["severities"], table["validation"]["issues_by_severity"], "issues by severity of {id}");
        let satisfied: Vec<&Value> = table["mapping"]["mapped_columns"]
            .as_array()
            .expect("mapped columns")
            .iter()
            .filter(|m| m["is_satisfied"] == true)
            .map(|m| &m["field"])
            .collect();
        assert_eq!(card["fields"].as_array().expect("fields").iter().collect::<Vec<_>>(), satisfied, "fields of {id}");
        rows += as_u64(&card["rows"]);
        unmapped += as_u64(&card["unmapped"]);
        issues += as_u64(&card["issues"]);
        for field in card["fields"].as_array().expect("fields") {
            mapped_fields.insert(field.as_str().expect("a field").to_owned());
        }
        let file = by_file.entry(card["source_file"].as_str().expect("source file").to_owned()).or_default();
        file.0 += as_u64(&card["rows"]);
        file.1 += as_u64(&card["issues"]);
    }
    assert_eq!(rows, as_u64(&core["row_count"]), "rows: cards vs run.completed");
    assert_eq!(unmapped, as_u64(&core["unmapped_column_count"]), "unmapped columns: cards vs run.completed");
    assert_eq!(issues, as_u64(&core["validation_issue_count_total"]), "issues: cards vs run.completed");
    assert!(issues > 0, "the sample has invalid rows: the check must see some issues");
    assert_eq!(mapped_fields.len() as u64, as_u64(&core["mapped_field_count"]), "mapped fields");
    let summary_mapped: BTreeSet<String> = summary["breakdowns"]["by_field"]
        .as_array()
        .expect("by_field")
        .iter()
        .filter(|f| f["mapped"] == true)
        .map(|f| f["field"].as_str().expect("field").to_owned())
        .collect();
    assert_eq!(mapped_fields, summary_mapped, "mapped fields: cards vs run.completed");
    for file in summary["breakdowns"]["by_file"].as_array().expect("by_file") {
        let name = file["source_file"].as_str().expect("source file");
        let (file_rows, file_issues) = by_file.get(name).copied().unwrap_or_default();
        assert_eq!(file_rows, as_u64(&file["row_count"]), "rows of {name}");
        assert_eq!(file_issues, as_u64(&file["validation_issue_count_total"]), "issues of {name}");
    }

    // The final summary shows the same numbers, and links the outputs.
    let facts = browser
        .eval(
            "return Object.fromEntries(Array.from(document.querySelectorAll('#final [data-fact]'),
                f => [f.dataset.fact, Number(f.textContent)]));",
        )
        .await;
    for name in
        ["table_count", "row_count", "mapped_field_count", "unmapped_column_count", "validation_issue_count_total"]
    {
        assert_eq!(facts[name], core[name], "final summary: {name}");
    }
    assert_eq!(facts["event_count"], completed["payload"]["event_count"], "final summary: event_count");
    let outputs =
        browser.eval("return Array.from(document.querySelectorAll('#final a.output'), a => a.textContent);").await;
    let expected_outputs: Vec<Value> = completed["payload"]["artifacts"]["output_paths"]
        .as_array()
        .expect("output paths")
        .iter()
        .map(|p| Value::from(p.as_str().expect("a path").trim_start_matches("outputs/")))
        .collect();
    assert_eq!(outputs, Value::Array(expected_outputs), "output links");

    // The timeline has the engine's phases, each done, and the console has the log's lines.
    let phases = browser
        .eval(
            "return Array.from(document.querySelectorAll('[data-track=\"run\"] [data-phase]:not([data-phase=\"\"])'),
                p => p.dataset.phase + ':' + p.dataset.status);",
        )
        .await;
    let expected_phases: Vec<String> = log
        .iter()
        .filter(|e| e["type"] == "run.phase.completed")
        .map(|e| {
            format!(
                "{}:{}",
                e["payload"]["phase"].as_str().expect("phase"),
                e["payload"]["status"].as_str().expect("status")
            )
        })
        .collect();
    assert!(!expected_phases.is_empty(), "the engine reports phases");
    assert_eq!(phases, serde_json::json!(expected_phases), "phase timeline");
    assert_eq!(browser.console_lines().await, console_messages(&log), "console");

    let screenshot = browser.screenshot("finished-run.png").await;
    eprintln!("screenshot of the finished run: {}", screenshot.display());

    // Back to the list: the run is there with its status; the status filter narrows the list;
    // a click opens the run again.
    browser.click("a.back").await;
    let row = format!("#runs-body tr[data-run-id=\"{run_id}\"][data-status=\"succeeded\"]");
    browser.wait_script("the run in the list", &format!("return !!document.querySelector('{row}');")).await;
    let filter = browser.client.find(Locator::Css("#status-filter")).await.expect("the status filter");
    filter.select_by_value("failed").await.expect("filter on failed");
    browser.wait_script("the filtered list", "return document.querySelectorAll('#runs-body tr').length === 0;").await;
    filter.select_by_value("succeeded").await.expect("filter on succeeded");
    browser.wait_script("the run in the filtered list", &format!("return !!document.querySelector('{row}');")).await;
    browser.click(&row).await;
    browser.wait_script("the run to open again", COMPLETE).await;
    assert_eq!(browser.eval(OPEN_RUN).await, Value::from(run_id.as_str()));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_mid_run_neither_repeats_nor_loses_a_console_line() {
    if !browser_available() {
        return;
    }
    let server = TestServer::start().await;
    let run_id = server.create_run("slow").await;
    let browser = Browser::start().await;
    // A deep link opens the run directly.
    browser.client.goto(&format!("{}/#/runs/{run_id}", server.base)).await.expect("open the run");
    assert_eq!(wait_for_lines(&browser, SLOW_BEFORE_GATE).await, expected_slow_lines(SLOW_BEFORE_GATE));

    // Reload while the run waits at its gate: the page rebuilds the same view, once.
    browser.client.refresh().await.expect("reload");
    assert_eq!(wait_for_lines(&browser, SLOW_BEFORE_GATE).await, expected_slow_lines(SLOW_BEFORE_GATE));
    browser.wait_script("the live stream", "return document.querySelector('#run-live').textContent === 'live';").await;

    // Reload while lines stream in.
    server.open_gate("slow");
    let seen = wait_for_lines(&browser, 2 * SLOW_BEFORE_GATE).await;
    assert_eq!(seen, expected_slow_lines(seen.len()), "lines before the second reload");
    browser.client.refresh().await.expect("reload");
    browser.wait_script("the final summary", COMPLETE).await;
    // The run was still going at the reload (the lines after it take seconds): the rest of it came
    // live, past the seam between the replayed history and the stream.
    let streamed = browser.eval("return Number(document.querySelector('#run').dataset.streamed);").await;
    assert!(as_u64(&streamed) > 0, "after the reload, events came over the live stream");

    let lines = browser.console_lines().await;
    const { assert!(SLOW_TOTAL < CONSOLE_CAP, "this test needs every line on the page") };
    assert_eq!(lines, expected_slow_lines(SLOW_TOTAL), "each line exactly once, in order");
    assert_eq!(lines, console_messages(&server.log(&run_id).await), "the page shows the log's console");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_console_lines_keep_the_page_responsive_and_the_dom_capped() {
    if !browser_available() {
        return;
    }
    let server = TestServer::start().await;
    let run_id = server.create_run("fast").await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/#/runs/{run_id}", server.base)).await.expect("open the run");
    wait_for_lines(&browser, 1).await;
    browser.wait_script("the live stream", "return document.querySelector('#run-live').textContent === 'live';").await;

    // While 50,000 lines arrive, a trivial script must come back promptly (it runs on the page's
    // main thread, so it waits for whatever the page is doing), and the DOM stays capped.
    server.open_gate("fast");
    let start = Instant::now();
    let (mut probes, mut slowest) = (Vec::new(), Duration::ZERO);
    loop {
        let asked = Instant::now();
        let state = browser
            .eval(
                "return {lines: document.querySelectorAll('#console-lines .line').length,
                         done: document.querySelector('#run').dataset.complete === 'true'};",
            )
            .await;
        let took = asked.elapsed();
        slowest = slowest.max(took);
        assert!(as_u64(&state["lines"]) as usize <= CONSOLE_CAP, "the console holds more than its cap: {state}");
        if state["done"] == true {
            break;
        }
        probes.push(took);
        assert!(start.elapsed() < PATIENCE, "the run did not finish in {PATIENCE:?}");
        tokio::time::sleep(POLL).await;
    }
    eprintln!(
        "50,000 lines: done in {:.1?} on the page; {} probes while streaming took {probes:?}",
        start.elapsed(),
        probes.len()
    );
    assert!(slowest < Duration::from_secs(5), "the page stopped answering for {slowest:?}");

    let log = server.log(&run_id).await;
    let messages = console_messages(&log);
    assert_eq!(messages.len(), FAST_TOTAL + 1, "the log has every line (and the gate's)");
    assert_eq!(messages.last().map(String::as_str), Some("fast line 50000"));
    let lines = browser.console_lines().await;
    assert_eq!(lines.len(), CONSOLE_CAP, "the DOM keeps the cap");
    assert_eq!(lines, messages[messages.len() - CONSOLE_CAP..], "the DOM keeps the last lines, in order");
    let hidden = browser.eval("return Number(document.querySelector('#console-hidden').dataset.hidden);").await;
    assert_eq!(as_u64(&hidden) as usize, messages.len() - CONSOLE_CAP, "the hidden-lines notice");
    let notice =
        browser.wait_script("the download link", "return !document.querySelector('#console-hidden').hidden && document.querySelector('#console-hidden').textContent;").await;
    assert!(notice.as_str().is_some_and(|t| t.contains("download full NDJSON")), "{notice}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_page_asks_for_one_then_works_with_it() {
    if !browser_available() {
        return;
    }
    let server = TestServer::start_with_tokens().await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/", server.base)).await.expect("open the page");
    let banner = browser
        .wait_script(
            "the auth message",
            "const b = document.querySelector('#banner'); return !b.hidden && b.dataset.kind === 'auth' && b.textContent;",
        )
        .await;
    assert!(banner.as_str().is_some_and(|t| t.contains("needs a token")), "{banner}");

    browser.type_into("#token", "not-the-token").await;
    browser.click("#token-save").await;
    let banner = browser
        .wait_script(
            "the refusal",
            "const b = document.querySelector('#banner'); return !b.hidden && b.textContent.includes('refused') && b.textContent;",
        )
        .await;
    assert!(banner.as_str().is_some_and(|t| t.contains("token")), "{banner}");

    browser.type_into("#token", "admin-secret").await;
    browser.click("#token-save").await;
    browser
        .wait_script(
            "the configurations, with the token",
            "return document.querySelector('#banner').hidden && !!document.querySelector('#configuration option[value=\"slow\"]');",
        )
        .await;

    // Start a run from the page (the header on fetches) and follow it live (the token in the
    // EventSource URL): the lines after the gate can only come over the stream or its resume.
    let select = browser.client.find(Locator::Css("#configuration")).await.expect("the configuration select");
    select.select_by_value("slow").await.expect("pick slow");
    browser.click("#start").await;
    let run_id = browser.wait_script("the new run to open", OPEN_RUN).await;
    let run_id = run_id.as_str().expect("a run id").to_owned();
    assert_eq!(wait_for_lines(&browser, SLOW_BEFORE_GATE).await, expected_slow_lines(SLOW_BEFORE_GATE));
    browser.wait_script("the live stream", "return document.querySelector('#run-live').textContent === 'live';").await;
    server.open_gate("slow");
    browser.wait_script("the final summary", COMPLETE).await;
    assert_eq!(browser.console_lines().await, expected_slow_lines(SLOW_TOTAL));
    let streamed = browser.eval("return Number(document.querySelector('#run').dataset.streamed);").await;
    assert!(as_u64(&streamed) > 0, "events came over the authenticated EventSource");
    assert!(browser.eval("return document.querySelector('#banner').hidden;").await == true, "no problem shown");
    let run = server.get_json(&format!("/runs/{run_id}")).await;
    assert_eq!(run["status"], "succeeded");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_shows_a_clear_message() {
    if !browser_available() {
        return;
    }
    let mut server = TestServer::start().await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/", server.base)).await.expect("open the page");
    browser
        .wait_script(
            "the page to load its data",
            "return !!document.querySelector('#configuration option[value=\"members\"]') && document.querySelector('#banner').hidden;",
        )
        .await;
    server.stop().await;
    let banner = browser
        .wait_script(
            "the unreachable message",
            "const b = document.querySelector('#banner'); return !b.hidden && b.dataset.kind === 'offline' && b.textContent;",
        )
        .await;
    assert!(banner.as_str().is_some_and(|t| t.contains("unreachable")), "{banner}");
    browser.screenshot("server-unreachable.png").await;
    browser.close().await;
}

/// The viewer of a server nested under `/ade` in another application: its assets, API calls,
/// event streams (with the token in the query) and output links all go under `/ade`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_mounted_under_a_prefix_works_there() {
    if !browser_available() {
        return;
    }
    let server = TestServer::start_mounted("/ade").await;
    assert!(server.base.ends_with("/ade"));
    let browser = Browser::start().await;
    // `Router::nest("/ade", …)` serves the page at `/ade` (not `/ade/`).
    browser.client.goto(&server.base).await.expect("open the page");
    browser.type_into("#token", "admin-secret").await;
    browser.click("#token-save").await;
    browser
        .wait_script(
            "the configurations, under /ade",
            "return document.querySelector('#banner').hidden && !!document.querySelector('#configuration option[value=\"slow\"]');",
        )
        .await;
    let base = browser.eval("return document.querySelector('meta[name=\"ade-base\"]').content;").await;
    assert_eq!(base, "/ade");

    // Live: the lines after the gate come over the EventSource under /ade.
    let select = browser.client.find(Locator::Css("#configuration")).await.expect("the configuration select");
    select.select_by_value("slow").await.expect("pick slow");
    browser.click("#start").await;
    browser.wait_script("the new run to open", OPEN_RUN).await;
    assert_eq!(wait_for_lines(&browser, SLOW_BEFORE_GATE).await, expected_slow_lines(SLOW_BEFORE_GATE));
    browser.wait_script("the live stream", "return document.querySelector('#run-live').textContent === 'live';").await;
    server.open_gate("slow");
    browser.wait_script("the final summary", COMPLETE).await;
    assert_eq!(browser.console_lines().await, expected_slow_lines(SLOW_TOTAL));
    let streamed = browser.eval("return Number(document.querySelector('#run').dataset.streamed);").await;
    assert!(as_u64(&streamed) > 0, "events came over the EventSource");

    // A run with an output: its link is under /ade, and downloading it from the page works.
    browser.client.goto(&format!("{}#/", server.base)).await.expect("home");
    browser
        .wait_script("the configurations", "return !!document.querySelector('#configuration option[value=\"hello\"]');")
        .await;
    let select = browser.client.find(Locator::Css("#configuration")).await.expect("the configuration select");
    select.select_by_value("hello").await.expect("pick hello");
    browser.click("#start").await;
    browser.wait_script("the final summary", COMPLETE).await;
    let href = browser
        .wait_script(
            "the output link",
            "const a = document.querySelector('#final a.output'); return a && a.getAttribute('href');",
        )
        .await;
    let href = href.as_str().expect("an href").to_owned();
    assert!(href.starts_with("/ade/runs/") && href.ends_with("/outputs/count.txt"), "{href}");
    let origin = server.base.trim_end_matches("/ade");
    let response = server.http.get(format!("{origin}{href}")).bearer_auth("admin-secret").send().await.expect("get");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {href}");
    assert!(browser.eval("return document.querySelector('#banner').hidden;").await == true, "no problem shown");
    browser.close().await;
}

/// A page of another origin (a frontend on its dev server): `fetch` with a bearer token, reading
/// the `Location` header, and an `EventSource` with `?access_token=` on a run's events.
const FOREIGN_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title></head>
<body><pre id="result"></pre>
<script>
(async () => {
  const query = new URLSearchParams(location.search);
  const api = query.get('api');
  const result = {};
  try {
    const response = await fetch(api + '/runs', {
      method: 'POST',
      headers: { 'Authorization': 'Bearer admin-secret', 'Content-Type': 'application/json' },
      body: JSON.stringify({ configuration_id: 'hello' }),
    });
    result.status = response.status;
    result.location = response.headers.get('Location');
    result.created = (await response.json()).id;
  } catch (error) {
    result.fetch_error = String(error);
  }
  result.events = await new Promise((resolve) => {
    const types = [];
    const source = new EventSource(api + '/runs/' + query.get('run') + '/events?access_token=admin-secret');
    source.addEventListener('ade.event', (event) => {
      const type = JSON.parse(event.data).type;
      types.push(type);
      if (type === 'run.completed') { source.close(); resolve(types); }
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) resolve({ error: 'closed', received: types });
    };
  });
  document.getElementById('result').textContent = JSON.stringify(result);
  document.body.dataset.done = 'true';
})();
</script></body></html>"#;

/// Serves [`FOREIGN_PAGE`] at `/` on `listener`.
fn serve_foreign_page(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { axum::response::Html(FOREIGN_PAGE) }));
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve the page");
    })
}

/// Opens the foreign page against `server` (following the run `run_id`); what the page saw.
async fn foreign_page_result(browser: &Browser, page: &str, server: &TestServer, run_id: &str) -> Value {
    browser.client.goto(&format!("{page}/?api={}&run={run_id}", server.base)).await.expect("open the page");
    browser.wait_script("the page's requests", "return document.body.dataset.done === 'true';").await;
    let text = browser.eval("return document.getElementById('result').textContent;").await;
    serde_json::from_str(text.as_str().expect("text")).expect("the page's JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_origin_uses_the_api_and_its_events_only_with_cors() {
    if !browser_available() {
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the page's server");
    let page = format!("http://{}", listener.local_addr().expect("address"));
    let _page_server = serve_foreign_page(listener);
    let origins = ade_server::CorsOrigins::parse([page.as_str()]).expect("an origin").expect("some");
    let allowed = TestServer::start_with_token(ade_server::ServerConfig::new().with_cors(origins)).await;
    let closed = TestServer::start_with_tokens().await;
    let browser = Browser::start().await;

    let run_id = allowed.create_run("hello").await;
    let result = foreign_page_result(&browser, &page, &allowed, &run_id).await;
    assert_eq!(result["status"], 201, "{result}");
    let created = result["created"].as_str().expect("a created run");
    assert_eq!(result["location"], format!("/runs/{created}"), "Location is exposed: {result}");
    let events = result["events"].as_array().unwrap_or_else(|| panic!("the events of {run_id}: {result}"));
    assert_eq!(events.first(), Some(&Value::from("run.queued")), "{result}");
    assert_eq!(events.last(), Some(&Value::from("run.completed")), "{result}");
    let log: Vec<Value> = allowed.log(&run_id).await.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(events, &log, "the page saw the whole log over the EventSource");

    // The same page against a server without CORS: the browser lets it read nothing.
    let run_id = closed.create_run("hello").await;
    let result = foreign_page_result(&browser, &page, &closed, &run_id).await;
    assert!(result["fetch_error"].as_str().is_some_and(|e| !e.is_empty()), "{result}");
    assert!(result.get("status").is_none() && result.get("created").is_none(), "{result}");
    assert_eq!(result["events"]["error"], "closed", "{result}");
    assert_eq!(result["events"]["received"], serde_json::json!([]), "{result}");
    browser.close().await;
}
