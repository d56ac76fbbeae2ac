//! The committed JSON Schemas: fresh, and true to what ade writes and reads.
//!
//! `UPDATE_SCHEMAS=1 cargo test --test it schemas` rewrites `schemas/` from the Rust types.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ade::event::{Envelope, EventPayload};
use serde_json::Value;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Files under `dir`, relative to it, with `/` separators.
fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            files_under(&entry.path(), &format!("{name}/"), out);
        } else {
            out.insert(name);
        }
    }
}

/// Every file of `schemas/`: the core's JSON Schemas and the server's OpenAPI document.
fn generated_files() -> Vec<(String, String)> {
    let mut files = ade::schema::generate();
    let openapi = serde_json::to_string_pretty(&ade::server::openapi::document()).expect("a JSON value serializes");
    files.push(("openapi.json".to_owned(), openapi + "\n"));
    files
}

#[test]
fn committed_schemas_are_fresh() {
    let dir = schemas_dir();
    let generated = generated_files();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        for (path, text) in &generated {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("schema files live in a folder")).expect("create folder");
            std::fs::write(&path, text).expect("write schema");
        }
    }
    let mut stale = Vec::new();
    for (path, text) in &generated {
        let committed = std::fs::read_to_string(dir.join(path)).unwrap_or_default();
        if &committed != text {
            stale.push(path.clone());
        }
    }
    let mut on_disk = BTreeSet::new();
    files_under(&dir, "", &mut on_disk);
    let expected: BTreeSet<String> = generated.iter().map(|(p, _)| p.clone()).collect();
    let extra: Vec<_> = on_disk.iter().filter(|p| !expected.contains(*p)).collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/ is stale (changed: {stale:?}, no longer generated: {extra:?}); \
         run `UPDATE_SCHEMAS=1 cargo test --test it schemas` and commit the result"
    );
}

/// A validator for one component of the OpenAPI document, resolving its references
/// (`#/components/schemas/…`) within the document, as fuzzers and validators do.
fn component_validator(document: &Value, name: &str) -> jsonschema::Validator {
    let schema = serde_json::json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": document["components"],
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|error| panic!("component {name} does not compile: {error}"))
}

#[test]
fn the_openapi_components_validate_what_the_server_sends() {
    let document = ade::server::openapi::document();
    let components = document["components"]["schemas"].as_object().expect("components");
    // Every component compiles, its references resolving within the document.
    for name in components.keys() {
        component_validator(&document, name);
    }
    let envelope = component_validator(&document, "Envelope");
    for event in read_log("happy_path.ndjson") {
        assert_valid(&envelope, &event, "a happy-path event against the OpenAPI Envelope");
    }
    let mut broken = read_log("happy_path.ndjson").remove(0);
    broken["sequence"] = 0.into();
    assert!(!envelope.is_valid(&broken), "the OpenAPI Envelope accepted sequence 0");
}

/// Request bodies say what the server reads: serde takes `null` for an optional field, so their
/// schemas do too (what ade writes omits it instead, SPEC §1).
#[test]
fn the_openapi_request_bodies_take_null_for_optional_fields() {
    let document = ade::server::openapi::document();
    let create_run = component_validator(&document, "CreateRunRequest");
    let request = serde_json::json!({ "configuration_id": "hello", "workspace_id": null, "options": null });
    assert_valid(&create_run, &request, "a run request with null optional fields");
    let options =
        serde_json::json!({ "configuration_id": "hello", "options": { "force_rebuild": null, "metadata": null } });
    assert_valid(&create_run, &options, "run options with null optional fields");
    // The server refuses unknown options (422), and so does the document.
    let unknown = serde_json::json!({ "configuration_id": "hello", "options": { "colour": "red" } });
    assert!(!create_run.is_valid(&unknown), "CreateRunRequest accepted an unknown option");
    // What ade writes still omits them: a queued event with `force_rebuild: null` is not one ade writes.
    let envelope = component_validator(&document, "Envelope");
    let mut queued = read_log("happy_path.ndjson").remove(0);
    assert_eq!(queued["type"], "run.queued");
    assert_valid(&envelope, &queued, "run.queued");
    queued["payload"]["options"]["force_rebuild"] = Value::Null;
    assert!(!envelope.is_valid(&queued), "the OpenAPI Envelope accepted a null optional field");
}

#[test]
fn there_is_one_schema_file_per_catalog_type() {
    let generated: BTreeSet<String> = ade::schema::generate().into_iter().map(|(p, _)| p).collect();
    for event_type in EventPayload::CATALOG_TYPES {
        assert!(generated.contains(&format!("events/{event_type}.json")), "no schema for {event_type}");
    }
    for file in ["envelope.json", "run.json", "run_summary.json", "configuration.json"] {
        assert!(generated.contains(file), "no {file}");
    }
}

/// A validator for a generated schema file, checking `format`s too.
fn validator(file: &str) -> jsonschema::Validator {
    let text = ade::schema::generate()
        .into_iter()
        .find(|(p, _)| p == file)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("{file} is not generated"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{file} is not a valid schema: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not match its schema: {errors:#?}\n{instance}");
}

fn read_log(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}")))
        .collect()
}

/// Each event validates against `envelope.json` and its own `events/<type>.json`, parses into the
/// typed model (not as `Unknown`), and serializes back to the same JSON.
fn check_log(name: &str, envelope: &jsonschema::Validator) -> Vec<String> {
    let log = read_log(name);
    let mut types = Vec::new();
    for (i, event) in log.iter().enumerate() {
        let event_type = event["type"].as_str().expect("type is a string").to_owned();
        let what = format!("{name} line {} ({event_type})", i + 1);
        assert_valid(envelope, event, &what);
        if !event_type.starts_with("x.") {
            assert_valid(&validator(&format!("events/{event_type}.json")), event, &what);
        }
        let typed: Envelope = serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!matches!(typed.payload, EventPayload::Unknown { .. }), "{what} parsed as Unknown");
        assert_eq!(&serde_json::to_value(&typed).expect("serializes"), event, "{what} changed in a round trip");
        assert_eq!(typed.sequence, i as u64 + 1, "{what}: sequences start at 1 with no gap");
        types.push(event_type);
    }
    let last = log.last().expect("log is not empty");
    assert_eq!(last["type"], "run.completed", "{name}: run.completed is last");
    assert_eq!(last["payload"]["event_count"], last["sequence"], "{name}: event_count = its own sequence");
    types
}

/// The happy path of SPEC §2.4, in its canonical order.
fn is_canonical_happy_path(types: &[String]) -> bool {
    // One letter per type, then a regular expression over the string.
    let letters: String = types
        .iter()
        .map(|t| match t.as_str() {
            "run.queued" => 'Q',
            "build.created" => 'C',
            "build.started" => 'S',
            "build.phase.started" => 'p',
            "build.phase.completed" => 'q',
            "build.completed" => 'B',
            "console.line" => 'l',
            "run.started" => 'R',
            "run.phase.started" => 'r',
            "run.phase.completed" => 's',
            "run.table.summary" => 't',
            "run.validation.issue" => 'i',
            "run.validation.summary" => 'v',
            "run.completed" => 'Z',
            ext if ext.starts_with("x.") => 'x',
            _ => '?',
        })
        .filter(|c| *c != 'x') // extensions may appear anywhere
        .collect();
    let pattern = "^QCS(pl*q)+BR(rl*[ti]*s)+v?Z$";
    regex_lite_match(pattern, &letters)
}

/// A tiny backtracking matcher for the patterns above: literals, `(…)`, `[…]`, `*`, `+`, `?`, `^…$`.
fn regex_lite_match(pattern: &str, text: &str) -> bool {
    #[derive(Debug)]
    enum Node {
        Set(Vec<char>),
        Group(Vec<(Node, char)>),
    }
    fn parse(chars: &[char], i: &mut usize) -> Vec<(Node, char)> {
        let mut seq = Vec::new();
        while *i < chars.len() && chars[*i] != ')' {
            let node = match chars[*i] {
                '(' => {
                    *i += 1;
                    let inner = parse(chars, i);
                    Node::Group(inner)
                }
                '[' => {
                    let end = chars[*i..].iter().position(|c| *c == ']').map_or(chars.len(), |p| *i + p);
                    let set = chars[*i + 1..end].to_vec();
                    *i = end;
                    Node::Set(set)
                }
                c => Node::Set(vec![c]),
            };
            *i += 1;
            let quantifier = match chars.get(*i) {
                Some(q @ ('*' | '+' | '?')) => {
                    *i += 1;
                    *q
                }
                _ => '1',
            };
            seq.push((node, quantifier));
        }
        seq
    }
    fn match_seq(seq: &[(Node, char)], text: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        let Some(((node, quantifier), rest)) = seq.split_first() else { return k(pos) };
        let mut then_rest = |p: usize| match_seq(rest, text, p, k);
        match_repeat(node, *quantifier, 0, text, pos, &mut then_rest)
    }
    fn match_repeat(
        node: &Node,
        q: char,
        count: usize,
        text: &[char],
        pos: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        let (min, max) = match q {
            '*' => (0, usize::MAX),
            '+' => (1, usize::MAX),
            '?' => (0, 1),
            _ => (1, 1),
        };
        if count < max {
            let mut again = |p: usize| p != pos && match_repeat(node, q, count + 1, text, p, k);
            if match_one(node, text, pos, &mut again) {
                return true;
            }
        }
        count >= min && k(pos)
    }
    fn match_one(node: &Node, text: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match node {
            Node::Set(set) => text.get(pos).is_some_and(|c| set.contains(c)) && k(pos + 1),
            Node::Group(seq) => match_seq(seq, text, pos, k),
        }
    }
    let body: Vec<char> = pattern.trim_start_matches('^').trim_end_matches('$').chars().collect();
    let text: Vec<char> = text.chars().collect();
    let seq = parse(&body, &mut 0);
    match_seq(&seq, &text, 0, &mut |p| p == text.len())
}

#[test]
fn the_canonical_order_checker_rejects_out_of_order_logs() {
    let ok = [
        "run.queued",
        "build.created",
        "build.started",
        "build.phase.started",
        "build.phase.completed",
        "build.completed",
        "run.started",
        "run.phase.started",
        "run.phase.completed",
        "run.completed",
    ];
    let ok: Vec<String> = ok.iter().map(|s| (*s).to_owned()).collect();
    assert!(is_canonical_happy_path(&ok));
    let mut swapped = ok.clone();
    swapped.swap(6, 7);
    assert!(!is_canonical_happy_path(&swapped));
    let mut twice = ok.clone();
    twice.push("run.completed".to_owned());
    assert!(!is_canonical_happy_path(&twice));
}

#[test]
fn example_happy_path_log_validates_and_round_trips() {
    let envelope = validator("envelope.json");
    let types = check_log("happy_path.ndjson", &envelope);
    assert!(is_canonical_happy_path(&types), "not the canonical happy path: {types:?}");
}

#[test]
fn every_event_type_has_a_realistic_example_that_validates() {
    let envelope = validator("envelope.json");
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for log in ["happy_path.ndjson", "build_failure.ndjson"] {
        seen.extend(check_log(log, &envelope));
    }
    for event_type in EventPayload::CATALOG_TYPES {
        assert!(seen.contains(*event_type), "no example of {event_type}");
    }
    assert!(seen.iter().any(|t| t.starts_with("x.")), "no example of an extension event");
}

#[test]
fn schemas_reject_what_the_contract_forbids() {
    let envelope = validator("envelope.json");
    let good = read_log("happy_path.ndjson").remove(0);
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut event = good.clone();
        edit(&mut event);
        event
    };
    let cases: Vec<(&str, Value)> = vec![
        ("unknown type", broken(&|e| e["type"] = "run.exploded".into())),
        ("sequence 0", broken(&|e| e["sequence"] = 0.into())),
        ("bad event id", broken(&|e| e["event_id"] = "evt_123".into())),
        ("bad timestamp", broken(&|e| e["created_at"] = "yesterday".into())),
        ("bad source", broken(&|e| e["source"] = "user".into())),
        ("workspace with a slash", broken(&|e| e["workspace_id"] = "a/b".into())),
        ("wrong status constant", broken(&|e| e["payload"]["status"] = "running".into())),
        (
            "missing payload field",
            broken(&|e| e["payload"].as_object_mut().map(|p| p.remove("mode")).map(drop).unwrap_or_default()),
        ),
        ("missing payload", broken(&|e| e.as_object_mut().map(|p| p.remove("payload")).map(drop).unwrap_or_default())),
    ];
    for (what, event) in cases {
        assert!(!envelope.is_valid(&event), "envelope.json accepted an event with {what}");
        let typed = serde_json::from_value::<Envelope>(event);
        if what != "unknown type" && what != "missing payload" {
            assert!(typed.is_err(), "the typed model accepted an event with {what}");
        }
    }
}
