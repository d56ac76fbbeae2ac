//! The committed JSON Schemas: fresh, and true to what ade writes and reads.
//!
//! `UPDATE_SCHEMAS=1 cargo test --test it schemas` rewrites `schemas/` from the Rust types.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ade::event::{Envelope, EventPayload};
use serde_json::{Value, json};

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

#[test]
fn the_openapi_components_validate_what_the_server_sends() {
    let document = ade::server::openapi::document();
    let components = document["components"]["schemas"].as_object().expect("components");
    // Self-contained components (those with an `$id`) compile on their own.
    for (name, schema) in components.iter().filter(|(_, s)| s.get("$id").is_some()) {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema)
            .unwrap_or_else(|error| panic!("component {name} does not compile: {error}"));
    }
    let envelope = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&components["Envelope"])
        .expect("Envelope");
    for event in read_log("happy_path.ndjson") {
        assert_valid(&envelope, &event, "a happy-path event against the OpenAPI Envelope");
    }
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

fn examples_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config")
}

/// Every `examples/config/*.json`, parsed.
fn example_configurations() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_config_dir())
        .expect("examples/config")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), value)
        })
        .collect()
}

#[test]
fn every_example_configuration_validates_against_configuration_json() {
    // The committed file, as users of `schemas/` have it (the staleness test keeps it generated).
    let path = schemas_dir().join("configuration.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schemas/configuration.json")).expect("JSON");
    let schema = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&committed)
        .expect("schemas/configuration.json compiles");
    let examples = example_configurations();
    let engines: BTreeSet<&str> = examples.iter().filter_map(|(_, c)| c["engine"].as_str()).collect();
    assert!(engines.contains("extract") && engines.contains("process"), "examples of both engines: {engines:?}");
    for (path, configuration) in &examples {
        assert_valid(&schema, configuration, path);
        serde_json::from_value::<ade::config::Configuration>(configuration.clone())
            .unwrap_or_else(|e| panic!("{path} is not a configuration: {e}"));
    }
}

/// `configuration.json` accepts exactly what the typed model accepts, on valid configurations of
/// each engine and on near misses.
#[test]
fn the_configuration_schema_accepts_what_serde_accepts_and_nothing_else() {
    let schema = validator("configuration.json");
    let extract = json!({ "id": "members", "version": "1", "engine": "extract", "fields": [{ "name": "email" }] });
    let process = json!({ "id": "hello", "version": "2", "engine": "process", "command": ["sh", "x.sh"] });
    let custom = json!({ "id": "magic", "version": "3", "engine": "magic", "speed": 3, "nested": { "a": [1] } });
    let edited = |base: &Value, edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut value = base.clone();
        edit(value.as_object_mut().expect("an object"));
        value
    };
    let valid: Vec<(&str, Value)> = vec![
        ("extract", extract.clone()),
        (
            "extract with every field",
            edited(&extract, &|c| {
                c.insert("description".into(), "people".into());
                c.insert("timeout_s".into(), 60.into());
                c.insert("output_format".into(), "csv".into());
                c.insert(
                    "fields".into(),
                    json!([{ "name": "n", "label": "N", "required": true, "type": "integer", "synonyms": ["no"],
                             "pattern": "^[0-9]+$", "min": 1, "max": 9.5, "allowed_values": ["1"] }]),
                );
            }),
        ),
        ("process", process.clone()),
        (
            "process with build and env",
            edited(&process, &|c| {
                c.insert("build".into(), json!([["make"], ["make", "install"]]));
                c.insert("env".into(), json!({ "A": "1" }));
            }),
        ),
        ("custom with settings", custom.clone()),
        ("custom without settings", json!({ "id": "m", "version": "1", "engine": "magic" })),
    ];
    let invalid: Vec<(&str, Value)> = vec![
        ("an unknown field on extract", edited(&extract, &|c| drop(c.insert("colour".into(), "red".into())))),
        ("a process field on extract", edited(&extract, &|c| drop(c.insert("command".into(), json!(["sh"]))))),
        ("an unknown field on process", edited(&process, &|c| drop(c.insert("comand".into(), json!(["sh"]))))),
        (
            "a misspelt field spec",
            edited(&extract, &|c| drop(c.insert("fields".into(), json!([{ "name": "a", "requried": true }])))),
        ),
        ("an unknown output format", edited(&extract, &|c| drop(c.insert("output_format".into(), "pdf".into())))),
        (
            "an unknown field type",
            edited(&extract, &|c| drop(c.insert("fields".into(), json!([{ "name": "a", "type": "money" }])))),
        ),
        ("extract without fields", edited(&extract, &|c| drop(c.remove("fields")))),
        ("process without command", edited(&process, &|c| drop(c.remove("command")))),
        ("a command that is not a list", edited(&process, &|c| drop(c.insert("command".into(), "sh x.sh".into())))),
        ("no version", edited(&extract, &|c| drop(c.remove("version")))),
        ("no id", edited(&process, &|c| drop(c.remove("id")))),
        ("a numeric version", edited(&process, &|c| drop(c.insert("version".into(), 1.into())))),
        ("an id with a slash", edited(&extract, &|c| drop(c.insert("id".into(), "a/b".into())))),
        ("a negative timeout", edited(&process, &|c| drop(c.insert("timeout_s".into(), (-1).into())))),
        ("no engine", edited(&custom, &|c| drop(c.remove("engine")))),
        ("an empty engine", edited(&custom, &|c| drop(c.insert("engine".into(), "".into())))),
        ("a numeric engine", edited(&custom, &|c| drop(c.insert("engine".into(), 7.into())))),
        ("custom without version", edited(&custom, &|c| drop(c.remove("version")))),
        ("not an object", json!(["extract"])),
    ];
    for (what, configuration) in &valid {
        assert_valid(&schema, configuration, what);
        serde_json::from_value::<ade::config::Configuration>(configuration.clone())
            .unwrap_or_else(|e| panic!("the typed model refused {what}: {e}"));
    }
    for (what, configuration) in &invalid {
        assert!(!schema.is_valid(configuration), "configuration.json accepted {what}: {configuration}");
        assert!(
            serde_json::from_value::<ade::config::Configuration>(configuration.clone()).is_err(),
            "the typed model accepted {what}: {configuration}"
        );
    }
}

/// What `GET /configurations` and `GET /configurations/{id}` answer matches the OpenAPI
/// `Configuration` component, for configurations of each kind of engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_a_real_server_sends_match_the_openapi_component() {
    let document = ade::server::openapi::document();
    let component = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&document["components"]["schemas"]["Configuration"])
        .expect("the Configuration component compiles");

    let dir = tempfile::tempdir().expect("temp dir");
    let custom: ade::config::Configuration =
        serde_json::from_value(json!({ "id": "magic", "version": "1", "engine": "magic", "speed": 3 }))
            .expect("a custom configuration");
    let runtime = ade::Runtime::builder()
        .data_dir(dir.path())
        .configurations_dir(examples_config_dir())
        .configuration(custom)
        .build()
        .await
        .expect("runtime");
    let server =
        ade::server::Server::bind("127.0.0.1:0".parse().expect("address"), runtime, ade::server::ServerConfig::new())
            .await
            .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let shutdown = server.shutdown_handle();
    let task = tokio::spawn(server.run(std::future::pending()));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let response = http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
            assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
            response.json::<Value>().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
        }
    };

    let list = get("/configurations".to_owned()).await;
    let configurations = list["configurations"].as_array().expect("a list of configurations");
    let engines: BTreeSet<&str> = configurations.iter().filter_map(|c| c["engine"].as_str()).collect();
    assert_eq!(engines, BTreeSet::from(["extract", "magic", "process"]), "{list}");
    for configuration in configurations {
        assert_valid(&component, configuration, "an item of GET /configurations");
        let id = configuration["id"].as_str().expect("an id");
        let one = get(format!("/configurations/{id}")).await;
        assert_valid(&component, &one, &format!("GET /configurations/{id}"));
        assert_eq!(&one, configuration, "GET /configurations/{id} answers as the list does");
    }
    // The component is no rubber stamp: a field the extract engine does not know is refused.
    let mut members = get("/configurations/members".to_owned()).await;
    members["colour"] = "red".into();
    assert!(!component.is_valid(&members), "the Configuration component accepted an unknown extract field");

    shutdown.shutdown();
    task.await.expect("the server task").expect("the server stops cleanly");
}
