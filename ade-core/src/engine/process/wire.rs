//! The wire protocol of SPEC §8.2: each stdout line that is a JSON object with a string `type` is
//! an event, any other line a `console.line`; what may not be published becomes a warning.

use std::path::{Component, Path};

use serde_json::{Map, Value};
use tokio::io::AsyncRead;

use super::line_reader::LineReader;
use crate::engine::{EventSink, SinkError};
use crate::event::{ConsoleLevel, ConsoleStream, EventPayload};

/// Longest line read from an engine; the rest of a longer line is discarded (SPEC §8.2).
const MAX_LINE: usize = 1024 * 1024;
/// Counter `{reason}`: engine events that were not published.
const REJECTED_EVENTS_TOTAL: &str = "ade_engine_rejected_events_total";
/// The type an engine uses to report its outputs; consumed, never published.
const ENGINE_COMPLETED: &str = "engine.completed";
/// Catalog types only the orchestrator emits (SPEC §8.1), refused before their payload is checked
/// so the warning says why; the sink refuses them too.
const ORCHESTRATOR_ONLY: [&str; 6] =
    ["run.queued", "run.started", "build.created", "build.started", "build.completed", "run.completed"];

/// What one stream's reader keeps.
#[derive(Debug, Default)]
pub(super) struct PumpState {
    /// The last `engine.completed` report (stdout only).
    pub(super) output_paths: Option<Vec<String>>,
    /// Set when the sink's writer failed: nothing more is forwarded, the pipe is only drained.
    pub(super) log_error: Option<String>,
}

/// Why an engine event was not published: the `reason` label.
#[derive(Debug, Clone, Copy)]
enum Rejection {
    Forbidden,
    InvalidPayload,
    NotAnObject,
    TooLarge,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::InvalidPayload => "invalid_payload",
            Self::NotAnObject => "not_an_object",
            Self::TooLarge => "too_large",
        }
    }
}

/// Reads one stream to its end and forwards every line.
pub(super) async fn pump<R: AsyncRead + Unpin>(
    reader: R,
    stream: ConsoleStream,
    sink: &EventSink,
    state: &mut PumpState,
) {
    let mut lines = LineReader::new(reader, MAX_LINE);
    let mut line = Vec::new();
    loop {
        match lines.next_line(&mut line).await {
            Ok(Some(dropped)) => {
                if state.log_error.is_none() {
                    forward_line(&line, dropped, stream, sink, state).await;
                }
            }
            Ok(None) => return,
            Err(e) => {
                if state.log_error.is_none() {
                    let name = stream_name(stream);
                    let message = format!("reading the engine's {name} failed: {e}");
                    let _ = sink.console(ConsoleLevel::Warn, stream, message).await;
                }
                return;
            }
        }
    }
}

fn stream_name(stream: ConsoleStream) -> &'static str {
    stream.as_str()
}

/// One line of output: an event (stdout JSON with a string `type`) or a console line.
async fn forward_line(bytes: &[u8], dropped: usize, stream: ConsoleStream, sink: &EventSink, state: &mut PumpState) {
    let text = String::from_utf8_lossy(bytes);
    let level = if stream == ConsoleStream::Stderr { ConsoleLevel::Warn } else { ConsoleLevel::Info };
    let looks_like_json = stream == ConsoleStream::Stdout && text.trim_start().starts_with('{');
    if dropped > 0 {
        let total = bytes.len() + dropped;
        if looks_like_json {
            let message = format!(
                "rejected a line of {total} bytes that looks like an event: over the {MAX_LINE}-byte line limit"
            );
            reject(sink, state, Rejection::TooLarge, message).await;
        } else {
            let message = cut_message(&text, dropped, sink.limits().max_console_message);
            let result = sink.console(level, stream, message).await;
            note(state, result);
        }
        return;
    }
    if looks_like_json
        && let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(&text)
        && let Some(Value::String(event_type)) = object.remove("type")
    {
        forward_event(event_type, object, sink, state).await;
        return;
    }
    let result = sink.console(level, stream, text.into_owned()).await;
    note(state, result);
}

/// An event line from stdout: `type` taken out, the rest of the object (`payload`, ignored envelope
/// fields) in `object`.
async fn forward_event(event_type: String, mut object: Map<String, Value>, sink: &EventSink, state: &mut PumpState) {
    if event_type.is_empty() {
        return reject(sink, state, Rejection::InvalidPayload, "rejected event \"\": the type is empty".to_owned())
            .await;
    }
    let mut payload = match object.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(payload)) => payload,
        Some(other) => {
            let message =
                format!("rejected event {event_type:?}: `payload` must be a JSON object, not {}", kind(&other));
            return reject(sink, state, Rejection::NotAnObject, message).await;
        }
    };
    if event_type == ENGINE_COMPLETED {
        match output_paths(&payload) {
            Ok(paths) => state.output_paths = Some(paths),
            Err(why) => {
                let message = format!("rejected event {ENGINE_COMPLETED:?}: {why}");
                reject(sink, state, Rejection::InvalidPayload, message).await;
            }
        }
        return;
    }
    if ORCHESTRATOR_ONLY.contains(&event_type.as_str()) {
        let message = format!("rejected event {event_type:?}: emitted by ade itself, not by engines");
        return reject(sink, state, Rejection::Forbidden, message).await;
    }
    // The engine's own clock, when it wrote one.
    if event_type == "console.line"
        && !payload.contains_key("engine_timestamp")
        && let Some(Value::String(at)) = object.get("created_at").or_else(|| object.get("timestamp"))
    {
        payload.insert("engine_timestamp".to_owned(), Value::String(at.clone()));
    }
    let payload = match EventPayload::from_parts(&event_type, Value::Object(payload)) {
        Ok(payload) => payload,
        Err(e) => {
            let message = format!("rejected event {event_type:?}: {e}");
            return reject(sink, state, Rejection::InvalidPayload, message).await;
        }
    };
    match sink.emit(payload).await {
        Ok(_) => {}
        Err(SinkError::Forbidden(_)) => {
            let message = format!("rejected event {event_type:?}: emitted by ade itself, not by engines");
            reject(sink, state, Rejection::Forbidden, message).await;
        }
        Err(SinkError::Writer(crate::Error::EventTooLarge { size, limit })) => {
            let message = format!("rejected event {event_type:?}: {size} bytes, over the {limit}-byte event limit");
            reject(sink, state, Rejection::TooLarge, message).await;
        }
        Err(e) => state.log_error = Some(e.to_string()),
    }
}

/// `engine.completed`'s `output_paths`: relative paths without `..`; absent means none.
fn output_paths(payload: &Map<String, Value>) -> Result<Vec<String>, String> {
    let Some(value) = payload.get("output_paths") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(format!("`output_paths` must be an array of strings, not {}", kind(value)));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(path) if is_relative_inside(path) => Ok(path.clone()),
            Value::String(path) => {
                Err(format!("output path {path:?} must be relative to the run's directory, without `..`"))
            }
            other => Err(format!("`output_paths` must be an array of strings, not of {}", kind(other))),
        })
        .collect()
}

fn is_relative_inside(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Counts a rejected event and says why in a warning on stdout (where the event came from).
async fn reject(sink: &EventSink, state: &mut PumpState, reason: Rejection, message: String) {
    metrics::counter!(REJECTED_EVENTS_TOTAL, "reason" => reason.label()).increment(1);
    let result = sink.console(ConsoleLevel::Warn, ConsoleStream::Stdout, message).await;
    note(state, result);
}

/// Remembers a writer failure: from then on the stream is drained, not forwarded.
fn note(state: &mut PumpState, result: Result<u64, SinkError>) {
    if let Err(e) = result {
        state.log_error.get_or_insert_with(|| e.to_string());
    }
}

/// A console message for a line that was cut: at most `max` bytes (the sink's console limit, so
/// the sink does not cut it again), marked like the sink marks its own cuts, counting every byte
/// that was dropped.
pub(super) fn cut_message(text: &str, dropped: usize, max: usize) -> String {
    let worst = format!("…[truncated {} bytes]", text.len() + dropped);
    let mut keep = max.saturating_sub(worst.len()).min(text.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let (kept, cut) = text.split_at(keep);
    format!("{kept}…[truncated {} bytes]", cut.len() + dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{MAX_CONSOLE_MESSAGE, MIN_CONSOLE_MESSAGE};
    use crate::testing::{completed, console, run_key};

    #[test]
    fn cut_messages_fit_the_console_limit_and_count_everything_dropped() {
        let text = "é".repeat(MAX_CONSOLE_MESSAGE);
        let message = cut_message(&text, 1000, MAX_CONSOLE_MESSAGE);
        assert!(message.len() <= MAX_CONSOLE_MESSAGE);
        let kept = message.find('…').expect("marked");
        assert_eq!(message[kept..], format!("…[truncated {} bytes]", text.len() - kept + 1000));
        // The smallest limit still holds the marker and some text.
        let message = cut_message(&"z".repeat(100), 5, MIN_CONSOLE_MESSAGE);
        assert!(message.len() <= MIN_CONSOLE_MESSAGE, "{message}");
        let kept = message.find('…').expect("marked");
        assert!(kept > 0, "{message}");
        assert_eq!(message[kept..], format!("…[truncated {} bytes]", 105 - kept));
    }

    #[test]
    fn the_orchestrator_only_list_matches_the_catalog() {
        for event_type in ORCHESTRATOR_ONLY {
            assert!(EventPayload::CATALOG_TYPES.contains(&event_type), "{event_type}");
        }
        let run = run_key("acme");
        assert!(completed(&run, 1).is_orchestrator_only());
        assert!(!console("x").is_orchestrator_only());
        let count = EventPayload::CATALOG_TYPES.len();
        let engine_types = ["build.phase.started", "build.phase.completed", "console.line", "run.phase.started"];
        let more =
            ["run.phase.completed", "run.table.summary", "run.validation.issue", "run.validation.summary", "run.error"];
        assert_eq!(count, ORCHESTRATOR_ONLY.len() + engine_types.len() + more.len());
        for t in engine_types.iter().chain(&more) {
            assert!(EventPayload::CATALOG_TYPES.contains(t) && !ORCHESTRATOR_ONLY.contains(t), "{t}");
        }
    }
}
