//! A webhook receiver for tests (feature `test-util`): an axum server on loopback that checks
//! every request's Standard Webhooks signature and answers as a plan says (accept, fail, stall,
//! drop the connection), keeping what it accepted.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ade_core::event::RunId;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;

use crate::Secret;

/// What the receiver does with its n-th request (from 0).
pub type Plan = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

/// What the receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Takes it (204), after checking its signature.
    Accept,
    /// Takes it after a pause (a slow endpoint).
    AcceptAfter(Duration),
    /// Answers 500.
    Fail,
    /// Answers after 2 s (past a client's short timeout).
    Stall,
    /// Drops the connection without an answer.
    Drop,
}

/// One request the receiver accepted: its `webhook-id`, whether its signature was valid, its body.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `webhook-id` header.
    pub id: String,
    /// Whether `webhook-signature` is valid for the secret given to [`Receiver::sign_with`].
    pub signed: bool,
    /// The body.
    pub body: Value,
}

/// The receiver: see the module documentation.
pub struct Receiver {
    /// Where it listens: `http://127.0.0.1:<port>/hook`.
    pub url: String,
    accepted: Mutex<Vec<Received>>,
    requests: AtomicUsize,
    changed: Notify,
    plan: Mutex<Plan>,
    secret: Mutex<Option<Secret>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver on a free loopback port, answering as `plan` says.
    pub async fn start(plan: Plan) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let receiver = Arc::new(Self {
            url,
            accepted: Mutex::default(),
            requests: AtomicUsize::new(0),
            changed: Notify::new(),
            plan: Mutex::new(plan),
            secret: Mutex::new(None),
        });
        let app = axum::Router::new().route("/hook", post(receive)).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// Checks signatures with `secret` (`whsec_…`) from now on.
    pub fn sign_with(&self, secret: &str) {
        *self.secret.lock().unwrap() = Some(Secret::parse(secret).expect("secret"));
    }

    /// Answers as `plan` says from now on.
    pub fn set_plan(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }

    /// Every request accepted so far, in order.
    pub fn accepted(&self) -> Vec<Received> {
        self.accepted.lock().unwrap().clone()
    }

    /// Waits (on the receiver's signal, with a hang guard) until `check` holds.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&[Received]) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if check(&self.accepted()) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}; accepted {:?}", self.accepted().len());
    }

    /// The accepted events of `run`, first arrivals only, after checking that every repeat is the
    /// same event under the same `webhook-id`.
    pub fn of_run(&self, run: RunId) -> Vec<Value> {
        let mut first: HashMap<String, Value> = HashMap::new();
        let mut order = Vec::new();
        for received in self.accepted() {
            if received.body["run_id"] != run.to_string() {
                continue;
            }
            match first.get(&received.id) {
                Some(earlier) => assert_eq!(earlier, &received.body, "a repeat carries the same event"),
                None => {
                    assert_eq!(received.body["event_id"], received.id, "webhook-id is the event id");
                    first.insert(received.id.clone(), received.body.clone());
                    order.push(received.body);
                }
            }
        }
        order
    }
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = receiver.requests.fetch_add(1, Ordering::SeqCst);
    let answer = (receiver.plan.lock().unwrap())(n);
    match answer {
        Answer::Fail => return StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Stall => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return StatusCode::OK;
        }
        Answer::Drop => panic!("dropping the connection on purpose"),
        Answer::AcceptAfter(pause) => tokio::time::sleep(pause).await,
        Answer::Accept => {}
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp").parse::<i64>().unwrap_or(0));
    let signed = receiver
        .secret
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|secret| secret.verify(&id, timestamp, &body, &header("webhook-signature")));
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.accepted.lock().unwrap().push(Received { id, signed, body });
    receiver.changed.notify_waiters();
    StatusCode::NO_CONTENT
}
