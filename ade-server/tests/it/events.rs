//! `GET /runs/{id}/events`: JSON pages, NDJSON, SSE (replay, live, resume, keepalive, 204).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Client, Frame, SseReader, TestServer, datas, event_type, header, id_of, problem, sequence};

/// A finished run of `quick` with a few events; its id and stored log.
async fn finished_run(client: &Client<'_>) -> (String, Vec<String>) {
    let run = client.create_run("default", "quick", &[]).await;
    let id = id_of(&run);
    client.follow(&id).await;
    let log = client.log(&id).await;
    assert!(log.len() >= 6, "{log:?}");
    (id, log)
}

async fn ndjson(client: &Client<'_>, path: &str) -> reqwest::Response {
    client.request(Method::GET, path).header("accept", "application/x-ndjson").send().await.expect("events")
}

async fn sse(client: &Client<'_>, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = client.request(Method::GET, path).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("events")
}

#[tokio::test]
async fn json_pages_walk_the_log_with_next_after_sequence() {
    let server = TestServer::start().await;
    let client = server.client();
    let (id, log) = finished_run(&client).await;
    for accept in [None, Some("*/*"), Some("application/json")] {
        let mut request = client.request(Method::GET, &format!("/runs/{id}/events"));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.expect("events");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), "application/json");
        let page: Value = response.json().await.expect("json");
        assert_eq!(page["events"].as_array().map(Vec::len), Some(log.len()));
        assert_eq!(page["next_after_sequence"], Value::Null, "nothing more exists");
    }
    let mut collected = Vec::new();
    let mut after = 0;
    loop {
        let page = client.get_json(&format!("/runs/{id}/events?after_sequence={after}&limit=2")).await;
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= 2);
        collected.extend(events.iter().map(|e| e.to_string()));
        match page["next_after_sequence"].as_u64() {
            Some(next) => {
                assert_eq!(Some(next), events.last().and_then(|e| e["sequence"].as_u64()));
                after = next;
            }
            None => break,
        }
    }
    let parsed: Vec<String> =
        log.iter().map(|line| serde_json::from_str::<Value>(line).expect("json").to_string()).collect();
    assert_eq!(collected, parsed);
    for bad in ["limit=0", "limit=10001", "limit=x", "after_sequence=-1", "after_sequence=abc", "after_sequence=1.5"] {
        problem(client.get(&format!("/runs/{id}/events?{bad}")).await, StatusCode::BAD_REQUEST).await;
    }
    let page = client.get_json(&format!("/runs/{id}/events?after_sequence=9999")).await;
    assert_eq!(page["events"], serde_json::json!([]));
    server.stop().await;
}

#[tokio::test]
async fn ndjson_resumes_after_the_cursor() {
    let server = TestServer::start().await;
    let client = server.client();
    let (id, log) = finished_run(&client).await;
    for cut in 0..=log.len() {
        let response = ndjson(&client, &format!("/runs/{id}/events?after_sequence={cut}")).await;
        let text = response.text().await.expect("body");
        let lines: Vec<_> = text.lines().map(str::to_owned).collect();
        assert_eq!(lines, log[cut..].to_vec(), "after {cut}");
    }
    server.stop().await;
}

#[tokio::test]
async fn sse_resume_at_every_cut_point_gives_the_stored_log() {
    let server = TestServer::start().await;
    let client = server.client();
    let (id, log) = finished_run(&client).await;
    let path = format!("/runs/{id}/events");
    let n = log.len();
    for cut in 0..n {
        // Cursor in the query, in the header, and in both (the larger wins either way).
        let lower = cut.saturating_sub(2).to_string();
        let variants = [
            (format!("{path}?after_sequence={cut}"), None),
            (path.clone(), Some(cut.to_string())),
            (format!("{path}?after_sequence={cut}"), Some(lower.clone())),
            (format!("{path}?after_sequence={lower}"), Some(cut.to_string())),
        ];
        for (url, last_event_id) in variants {
            let response = sse(&client, &url, last_event_id.as_deref()).await;
            assert_eq!(response.status(), StatusCode::OK, "{url} {last_event_id:?}");
            let frames = SseReader::new(response).rest().await;
            assert_eq!(frames.first(), Some(&Frame::Retry(2000)));
            let mut whole = log[..cut].to_vec();
            whole.extend(datas(&frames));
            assert_eq!(whole, log, "resume after {cut} ({url}, Last-Event-ID {last_event_id:?})");
        }
    }
    // Terminal and nothing after the cursor: 204, whichever way the cursor comes.
    for (url, last_event_id) in [
        (format!("{path}?after_sequence={n}"), None),
        (path.clone(), Some(n.to_string())),
        (format!("{path}?after_sequence=1"), Some((n + 5).to_string())),
    ] {
        let response = sse(&client, &url, last_event_id.as_deref()).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{url} {last_event_id:?}");
        assert_eq!(response.text().await.expect("body"), "");
    }
    for bad in ["-1", "x", "1e3", "18446744073709551616"] {
        problem(sse(&client, &path, Some(bad)).await, StatusCode::BAD_REQUEST).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn sse_replays_then_follows_live_and_closes_after_run_completed() {
    let server = TestServer::start().await;
    let client = server.client();
    let run = client.create_run("default", "gated", &[]).await;
    let id = id_of(&run);
    let response = sse(&client, &format!("/runs/{id}/events"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    assert_eq!(header(&response, "cache-control"), "no-cache");
    assert_eq!(header(&response, "x-accel-buffering"), "no");
    let mut reader = SseReader::new(response);
    assert_eq!(reader.next().await, Some(Frame::Retry(2000)), "retry comes first");
    let mut seen = Vec::new();
    while !seen.last().is_some_and(|d: &String| d.contains("before 1")) {
        if let Some(data) = reader.next().await.expect("live").data() {
            seen.push(data.to_owned());
        }
    }
    // A second reader joins mid-run, resuming from the middle with Last-Event-ID.
    let middle = seen.len() / 2;
    let second = SseReader::new(sse(&client, &format!("/runs/{id}/events"), Some(&middle.to_string())).await);
    server.gate.add_permits(1);
    seen.extend(datas(&reader.rest().await));
    let log = client.log(&id).await;
    assert_eq!(seen, log);
    assert_eq!(event_type(seen.last().expect("events")), "run.completed");
    let second = datas(&second.rest().await);
    assert_eq!(second, log[middle..].to_vec());
    server.stop().await;
}

#[tokio::test]
async fn a_quiet_stream_gets_keepalive_comments() {
    let config = ade_server::ServerConfig::new().with_keepalive(Duration::from_millis(50));
    let server = TestServer::start_with(config).await;
    let client = server.client();
    let run = client.create_run("default", "gated", &[]).await;
    let id = id_of(&run);
    let mut reader = SseReader::new(sse(&client, &format!("/runs/{id}/events"), None).await);
    // Up to the engine's last line before its gate (keepalives may come in between) …
    let last_sequence = loop {
        match reader.next().await.expect("the stream goes on") {
            Frame::Event { data, .. } => {
                if data.contains("before 1") {
                    break sequence(&data);
                }
            }
            Frame::Comment(text) => assert_eq!(text, "keepalive"),
            Frame::Retry(_) => {}
        }
    };
    // … then the engine waits, nothing is written, and only keepalives can come.
    for _ in 0..2 {
        assert_eq!(reader.next().await, Some(Frame::Comment("keepalive".to_owned())));
    }
    server.gate.add_permits(1);
    let rest: Vec<_> = reader.rest().await;
    let data = datas(&rest);
    assert_eq!(sequence(&data[0]), last_sequence + 1, "no gap after keepalives");
    assert_eq!(event_type(data.last().expect("events")), "run.completed");
    server.stop().await;
}

#[tokio::test]
async fn accept_is_negotiated_and_406_when_nothing_fits() {
    let server = TestServer::start().await;
    let client = server.client();
    let (id, log) = finished_run(&client).await;
    let path = format!("/runs/{id}/events");
    let get = |accept: &'static str| client.request(Method::GET, &path).header("accept", accept).send();
    let response = get("application/json;q=0.1, application/x-ndjson;q=0.9").await.expect("events");
    assert_eq!(header(&response, "content-type"), "application/x-ndjson");
    assert_eq!(response.text().await.expect("body").lines().count(), log.len());
    let response = get("text/event-stream;q=0.8, application/json;q=0.5").await.expect("events");
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    let response = get("application/*").await.expect("events");
    assert_eq!(header(&response, "content-type"), "application/json");
    for accept in ["text/html", "application/xml, text/plain", "application/json;q=0", "*/*;q=0"] {
        problem(get(accept).await.expect("events"), StatusCode::NOT_ACCEPTABLE).await;
    }
    problem(client.get("/runs/run_01M8C4DS2PH0887ZPTJ9T85312/events").await, StatusCode::NOT_FOUND).await;
    server.stop().await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_does_not_delay_others_and_later_gets_everything() {
    let server = TestServer::start().await;
    let client = server.client();
    // Enough events (several MiB of SSE) to fill the stalled reader's socket buffers and the
    // run's live ring many times over.
    let configuration = serde_json::json!({
        "id": "busy", "version": "1", "engine": "gated", "before": 0, "gated": 1, "after": 30000,
    });
    let configuration: ade_core::config::Configuration = serde_json::from_value(configuration).expect("valid");
    server.runtime.put_configuration(configuration).expect("registered");
    let run = client.create_run("default", "busy", &[]).await;
    let id = id_of(&run);
    let path = format!("/runs/{id}/events");
    let mut stalled = SseReader::new(sse(&client, &path, None).await);
    assert_eq!(stalled.next().await, Some(Frame::Retry(2000)), "the stalled reader is subscribed");
    let prompt = sse(&client, &path, None).await;
    server.gate.add_permits(1);
    // The prompt reader gets the whole run while the other one reads nothing.
    let prompt = datas(&SseReader::new(prompt).rest().await);
    assert_eq!(event_type(prompt.last().expect("events")), "run.completed");
    assert!(prompt.len() > 30000);
    // The stalled reader, reading at last, gets every event once, in order.
    let mut late = Vec::new();
    while let Some(frame) = stalled.next().await {
        if let Some(data) = frame.data() {
            late.push(data.to_owned());
        }
    }
    assert_eq!(stalled.leftover, 0);
    assert_eq!(late, prompt);
    assert_eq!(late, client.log(&id).await);
    server.stop().await;
}

/// A stream that breaks at a corrupt line is cut short, NDJSON and SSE alike: what comes before is
/// sent, then the connection ends without HTTP's last chunk, so a client sees an error, not an end.
#[tokio::test]
async fn a_corrupt_log_breaks_the_stream_instead_of_ending_it() {
    use futures::StreamExt;
    let server = TestServer::start().await;
    let client = server.client();
    let (id, log) = finished_run(&client).await;
    let path = server.dir.path().join(format!("workspaces/default/runs/{id}/logs/events.ndjson"));
    let text = std::fs::read_to_string(&path).expect("the run's log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), log.len());
    // Line 4 becomes garbage of the same length: the lines around it keep their offsets.
    let garbage = "#".repeat(lines[3].len());
    let scribbled: String =
        lines.iter().enumerate().map(|(i, l)| format!("{}\n", if i == 3 { garbage.as_str() } else { l })).collect();
    std::fs::write(&path, scribbled).expect("scribble");

    // The body's bytes until it ends, and whether it ended with an error.
    async fn body_of(response: reqwest::Response) -> (String, bool) {
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.bytes_stream();
        let mut text = Vec::new();
        while let Some(chunk) = tokio::time::timeout(crate::support::PATIENCE, body.next()).await.expect("no hang") {
            match chunk {
                Ok(chunk) => text.extend_from_slice(&chunk),
                Err(_) => return (String::from_utf8(text).expect("utf-8"), true),
            }
        }
        (String::from_utf8(text).expect("utf-8"), false)
    }

    let (text, broke) = body_of(ndjson(&client, &format!("/runs/{id}/events")).await).await;
    assert!(broke, "NDJSON ended cleanly on a corrupt log: {text:?}");
    let sent: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(sent, log[..3], "the lines before the corrupt one");

    let (text, broke) = body_of(sse(&client, &format!("/runs/{id}/events"), None).await).await;
    assert!(broke, "SSE ended cleanly on a corrupt log: {text:?}");
    let sent: Vec<String> = text.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect();
    assert_eq!(sent, log[..3], "the frames before the corrupt line");
    server.stop().await;
}
