//! An engine (with its builder) whose behaviour the configuration's settings choose: `block`
//! (until cancelled), `fail`, `build` (needs a build), `build_block`, `build_fail`.
#![allow(clippy::expect_used)]

use async_trait::async_trait;
use serde_json::json;

use crate::config::{Configuration, EngineSpec};
use crate::engine::{
    BuildArtifact, BuildContext, BuildOutcome, Builder, Engine, EngineContext, EngineFailure, EngineOutcome, EventSink,
};
use crate::event::{ConsoleLevel, ConsoleStream, PhaseStatus};
use crate::run::RunMode;

/// An engine whose behaviour its configuration's settings choose.
#[derive(Debug)]
pub struct ScriptedEngine;

/// Its builder.
#[derive(Debug)]
pub struct ScriptedBuilder;

/// Whether the scripted configuration sets `name` to `true`.
pub fn setting(configuration: &Configuration, name: &str) -> bool {
    match &configuration.engine {
        EngineSpec::Custom { settings, .. } => settings.get(name).and_then(serde_json::Value::as_bool).unwrap_or(false),
        _ => false,
    }
}

#[async_trait]
impl Engine for ScriptedEngine {
    fn version(&self) -> &str {
        "scripted-1"
    }

    async fn run(&self, context: EngineContext, mut sink: EventSink) -> EngineOutcome {
        let configuration = context.configuration.clone();
        if setting(&configuration, "block") {
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, "waiting to be stopped").await;
            context.cancel.cancelled().await;
            return EngineOutcome::failed(EngineFailure::new("cancelled", "stopped"));
        }
        for phase in ["extracting", "mapping"] {
            let _ = sink.phase_started(phase, None).await;
            let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, format!("{phase}…")).await;
            let _ = sink.phase_completed(phase, PhaseStatus::Succeeded, 1, None).await;
        }
        if setting(&configuration, "fail") {
            return EngineOutcome::failed(EngineFailure::new("engine_error", "the scripted engine failed"));
        }
        let mut outputs = Vec::new();
        if context.mode == RunMode::Execute {
            let _ = tokio::fs::create_dir_all(&context.output_dir).await;
            let _ = tokio::fs::write(context.output_dir.join("result.txt"), b"done").await;
            outputs.push("outputs/result.txt".to_owned());
        }
        EngineOutcome::succeeded(outputs)
    }
}

#[async_trait]
impl Builder for ScriptedBuilder {
    fn needs_build(&self, configuration: &Configuration) -> bool {
        setting(configuration, "build")
    }

    async fn build(&self, context: BuildContext, mut sink: EventSink) -> BuildOutcome {
        let configuration = context.configuration.clone();
        let _ = sink.phase_started("load_config", None).await;
        let _ = sink.phase_completed("load_config", PhaseStatus::Succeeded, 1, None).await;
        if setting(&configuration, "build_block") {
            context.cancel.cancelled().await;
        }
        if setting(&configuration, "build_fail") || context.cancel.is_cancelled() {
            let failure = EngineFailure::new("config_invalid", "field 'email': bad pattern");
            return BuildOutcome { result: Err(failure), exit_code: None, summary: None };
        }
        let artifact = BuildArtifact {
            build_id: context.build_id,
            fingerprint: context.fingerprint,
            dir: context.build_dir.clone(),
            data: json!({}),
        };
        let _ = tokio::fs::create_dir_all(&context.build_dir).await;
        BuildOutcome { result: Ok(artifact), exit_code: None, summary: Some("built".to_owned()) }
    }
}

/// A configuration of the scripted engine, with `settings` (e.g. `{"block": true}`).
pub fn configuration(id: &str, settings: serde_json::Value) -> Configuration {
    let mut value = json!({ "id": id, "version": "3", "engine": "scripted" });
    if let (Some(object), Some(extra)) = (value.as_object_mut(), settings.as_object()) {
        object.extend(extra.clone());
    }
    serde_json::from_value(value).expect("valid configuration")
}
