//! The subject and message mapping, without a server.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use ade_core::event::RunId;
use proptest::prelude::*;

use super::*;

/// A console line of `run` at `sequence`.
fn event(run: &RunKey, sequence: u64, message: &str) -> std::sync::Arc<StoredEvent> {
    ade_core::test_util::stored(run, sequence, ade_core::test_util::console(message))
}

proptest! {
    /// Every workspace id makes a subject of the shape `<prefix>.<one token>.runs.<run>.events`
    /// (what the stream's wildcard subject matches), and distinct workspaces make distinct subjects.
    #[test]
    fn subjects_match_the_streams_wildcard_and_keep_workspaces_apart(
        a in "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        b in "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    ) {
        let run_id = RunId::new();
        let key = |w: &str| RunKey::new(WorkspaceId::new(w).expect("valid"), run_id);
        let subject_a = subject("ade.test", &key(&a));
        let tokens: Vec<&str> = subject_a.split('.').collect();
        prop_assert_eq!(tokens.len(), 6, "{}", subject_a);
        prop_assert_eq!(&tokens[..2], &["ade", "test"]);
        prop_assert_eq!(tokens[3], "runs");
        prop_assert_eq!(tokens[4], run_id.to_string());
        prop_assert_eq!(tokens[5], "events");
        prop_assert!(tokens.iter().all(|t| !t.is_empty() && !t.contains(['*', '>', ' '])));
        prop_assert_eq!(tokens[2].replace('~', "."), a.clone());
        prop_assert_eq!(subject_a == subject("ade.test", &key(&b)), a == b);
    }
}

#[test]
fn a_message_is_the_stored_json_with_the_event_id_as_msg_id() {
    let run = RunKey::new(WorkspaceId::new("acme.eu").expect("valid"), RunId::new());
    assert_eq!(subject("ade", &run), format!("ade.acme~eu.runs.{}.events", run.run_id));
    let event = event(&run, 7, "hello");
    let (headers, payload) = message(&event, 1024 * 1024).expect("message");
    assert_eq!(&payload, event.json());
    let id = event.envelope().expect("typed").event_id.to_string();
    assert_eq!(headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str()), Some(id.as_str()));
    assert!(headers.get(OMITTED_HEADER).is_none());
}

#[test]
fn an_event_too_large_for_max_payload_becomes_a_stand_in_naming_it() {
    let run = RunKey::new(WorkspaceId::default(), RunId::new());
    let event = event(&run, 3, &"x".repeat(4000));
    let size = event.json().len();
    // Fits exactly with the header room; one byte less does not.
    let (_, payload) = message(&event, size + HEADER_ROOM).expect("message");
    assert_eq!(&payload, event.json());
    let (headers, payload) = message(&event, size + HEADER_ROOM - 1).expect("message");
    assert_eq!(headers.get(OMITTED_HEADER).map(|v| v.as_str().to_owned()), Some(size.to_string()));
    let id = event.envelope().expect("typed").event_id.to_string();
    assert_eq!(headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str()), Some(id.as_str()));
    let stub: serde_json::Value = serde_json::from_slice(&payload).expect("json");
    assert_eq!(stub["event_id"], id.as_str());
    assert_eq!(stub["sequence"], 3);
    assert_eq!(stub["type"], "console.line");
    assert_eq!(stub["run_id"], run.run_id.to_string());
    assert_eq!(stub["omitted_bytes"], size);
    assert!(payload.len() + HEADER_ROOM < 1024, "a stand-in is small");
}

#[test]
fn prefixes_are_nats_tokens() {
    for good in ["ade", "ade.test", "a-b_c.d1"] {
        assert!(valid_prefix(good), "{good}");
    }
    for bad in ["", ".", "ade.", ".ade", "a..b", "a*", "a.>", "a b"] {
        assert!(!valid_prefix(bad), "{bad}");
    }
}
