//! The `process` engine and builder (SPEC §8.2): any program that speaks NDJSON on stdout.

use async_trait::async_trait;

use super::{BuildContext, BuildOutcome, Builder, Engine, EngineContext, EngineOutcome, EventSink};
use crate::config::Configuration;

/// Runs a configuration's `command` as a subprocess.
#[derive(Debug, Clone, Default)]
pub struct ProcessEngine {}

/// Runs a configuration's `build` commands as subprocesses.
#[derive(Debug, Clone, Default)]
pub struct ProcessBuilder {}

#[async_trait]
impl Engine for ProcessEngine {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    async fn run(&self, _context: EngineContext, _sink: EventSink) -> EngineOutcome {
        EngineOutcome::failed(super::EngineFailure::new("engine_error", "the process engine is not built yet"))
    }
}

#[async_trait]
impl Builder for ProcessBuilder {
    fn needs_build(&self, _configuration: &Configuration) -> bool {
        false
    }

    async fn build(&self, _context: BuildContext, _sink: EventSink) -> BuildOutcome {
        BuildOutcome {
            result: Err(super::EngineFailure::new("build_failed", "the process builder is not built yet")),
            exit_code: None,
            summary: None,
        }
    }
}
