//! Helpers for tests against a real NATS server with JetStream (cargo feature `test-util`): the
//! server `ADE_TEST_NATS_URL` names (the tests skip without it, and fail under
//! `ADE_REQUIRE_NATS=1`), options with a stream and subject prefix of the test's own, and the
//! stream read back.
#![allow(clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use async_nats::jetstream;
use bytes::Bytes;

use crate::{JetStreamOptions, Oversize};

/// The test server's URL; `None` (after saying so) when the tests should skip.
///
/// # Panics
/// When `ADE_TEST_NATS_URL` is unset but `ADE_REQUIRE_NATS=1` says the tests must run.
pub fn url() -> Option<String> {
    match std::env::var("ADE_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ADE_REQUIRE_NATS").as_deref() != Ok("1"),
                "ADE_REQUIRE_NATS=1 but ADE_TEST_NATS_URL is not set: the NATS tests cannot run"
            );
            // Written to stderr directly, past libtest's capture, so `cargo test` shows the skip.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: a NATS test (set ADE_TEST_NATS_URL=nats://127.0.0.1:4222 to run it)\n",
            );
            None
        }
    }
}

/// Options with a stream and a subject prefix no other test uses (stand-ins on, as the test
/// server may have the default `max_payload` of 1 MiB).
pub fn unique_options() -> JetStreamOptions {
    let id = ulid::Ulid::generate().to_string();
    JetStreamOptions::default()
        .with_stream(format!("ADE_TEST_{id}"))
        .with_subject_prefix(format!("adetest.{}", id.to_lowercase()))
        .with_oversize(Oversize::Stub)
}

/// One stored message: its `Nats-Msg-Id` and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub msg_id: String,
    pub payload: Bytes,
}

/// Every message of `stream`, per subject, in stream order.
pub async fn read_stream(url: &str, stream: &str) -> BTreeMap<String, Vec<Stored>> {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let context = jetstream::new(client);
    let mut handle = context.get_stream(stream).await.expect("stream");
    let state = handle.info().await.expect("stream info").state.clone();
    let mut subjects: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    if state.messages == 0 {
        return subjects;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = handle.get_raw_message(sequence).await.expect("stored message");
        let msg_id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned())
            .expect("Nats-Msg-Id");
        subjects.entry(message.subject.to_string()).or_default().push(Stored { msg_id, payload: message.payload });
    }
    subjects
}

/// Deletes a test's stream (best effort: a leftover stream only costs the server disk).
pub async fn delete_stream(url: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(url).await {
        let _ = jetstream::new(client).delete_stream(stream).await;
    }
}

/// How many messages `stream` holds (0 when it cannot be read yet).
pub async fn message_count(url: &str, stream: &str) -> u64 {
    let Ok(client) = async_nats::connect(url).await else { return 0 };
    let Ok(mut handle) = jetstream::new(client).get_stream(stream).await else { return 0 };
    handle.info().await.map_or(0, |info| info.state.messages)
}
