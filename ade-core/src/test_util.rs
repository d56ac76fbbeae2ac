//! Helpers for the tests of ade-core and of crates built on it (cargo feature `test-util`):
//! [`GatedEngine`], an engine a test holds at a gate; [`scripted`], an engine its configuration
//! scripts; [`export`], an exporter that records what it is given. Stores that fail on purpose are
//! [`crate::store::faults`]; the stores' conformance suites are [`crate::store::conformance`] and
//! [`crate::store::run_conformance`].

pub mod export;
pub mod scripted;

use std::sync::Arc;

pub use crate::testing::{
    assert_well_formed, completion, console, follow, id, lines, run_key, run_to_end, stored, types,
};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::config::{Configuration, EngineSpec};
use crate::engine::{Engine, EngineContext, EngineFailure, EngineOutcome, EventSink};
use crate::event::{ConsoleLevel, ConsoleStream};

/// An engine for tests, configured by its configuration's settings: `before` console lines, then
/// (when `gated`) it waits for a permit of the server's gate, then `after` lines and an output.
#[derive(Debug)]
pub struct GatedEngine {
    /// Each gated run takes (and forgets) one permit before it goes on.
    pub gate: Arc<Semaphore>,
}

/// A numeric setting of a custom configuration (0 when absent).
fn number(configuration: &Configuration, name: &str) -> u64 {
    match &configuration.engine {
        EngineSpec::Custom { settings, .. } => settings.get(name).and_then(Value::as_u64).unwrap_or(0),
        _ => 0,
    }
}

#[async_trait]
impl Engine for GatedEngine {
    fn version(&self) -> &str {
        "gated-1"
    }

    async fn run(&self, context: EngineContext, sink: EventSink) -> EngineOutcome {
        let configuration = context.configuration.clone();
        for i in 0..number(&configuration, "before") {
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("before {i}")).await;
        }
        if number(&configuration, "gated") == 1 {
            tokio::select! {
                permit = self.gate.acquire() => match permit {
                    Ok(permit) => permit.forget(),
                    Err(_) => return EngineOutcome::failed(EngineFailure::new("engine_error", "gate closed")),
                },
                () = context.cancel.cancelled() => {
                    return EngineOutcome::failed(EngineFailure::new("cancelled", "stopped at the gate"));
                }
            }
        }
        for i in 0..number(&configuration, "after") {
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("after {i}")).await;
        }
        let _ = tokio::fs::create_dir_all(&context.output_dir).await;
        let _ = tokio::fs::write(context.output_dir.join("result.txt"), b"done\n").await;
        EngineOutcome::succeeded(vec!["outputs/result.txt".to_owned()])
    }
}

/// A configuration of the gated engine.
pub fn gated_configuration(id: &str, before: u64, gated: bool, after: u64) -> Configuration {
    serde_json::from_value(json!({
        "id": id, "version": "1", "engine": "gated",
        "before": before, "gated": u64::from(gated), "after": after,
    }))
    .expect("a valid configuration")
}
