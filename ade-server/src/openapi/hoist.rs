//! One namespace of schemas: every component's `$defs` moved into `components/schemas`.
//!
//! schemars writes each type as a root schema whose `$ref`s point into its own `$defs`
//! (`#/$defs/Timestamp`). Inside an OpenAPI document such a reference resolves against the
//! document's root, where there is no `$defs`; tools that do not honour an embedded `$id`
//! (fuzzers, Python's `jsonschema` walking the document) cannot follow it. So each definition
//! becomes a component of its own and each reference names it (`#/components/schemas/Timestamp`):
//!
//! - a definition equal to one already moved (same name, same content, referring to the same
//!   components) is shared;
//! - a name already taken by other content (a top-level component, or another component's
//!   different definition of that name) becomes `<Component>_<Name>`;
//! - `$id` and `$schema` are dropped: the document names the dialect once.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

const PREFIX: &str = "#/components/schemas/";

/// A definition already moved into the components.
struct Moved {
    /// Its name in the `$defs` it came from.
    original: String,
    /// Its content there, references not yet rewritten.
    raw: Value,
    /// Where each of its `#/$defs/…` references went (definition name → component name).
    references: BTreeMap<String, String>,
}

/// `components` with every `$defs` moved up and every internal `$ref` pointing into
/// `#/components/schemas/`.
pub(super) fn hoist(components: Map<String, Value>) -> Map<String, Value> {
    let reserved: BTreeSet<String> = components.keys().cloned().collect();
    let mut moved: BTreeMap<String, Moved> = BTreeMap::new();
    let mut out = Map::new();
    for (component, mut schema) in components {
        let defs = match &mut schema {
            Value::Object(map) => {
                map.remove("$id");
                map.remove("$schema");
                match map.remove("$defs") {
                    Some(Value::Object(defs)) => defs,
                    _ => Map::new(),
                }
            }
            _ => Map::new(),
        };
        let names = assign(&component, &defs, &reserved, &moved);
        for (name, raw) in defs {
            let Some(target) = names.get(&name) else { continue };
            if moved.contains_key(target) {
                continue; // shared with an equal definition moved before
            }
            let mut body = raw.clone();
            rewrite(&mut body, &component, &names);
            let references =
                references(&raw).into_iter().filter_map(|r| names.get(&r).map(|t| (r, t.clone()))).collect();
            out.insert(target.clone(), body);
            moved.insert(target.clone(), Moved { original: name, raw, references });
        }
        rewrite(&mut schema, &component, &names);
        out.insert(component, schema);
    }
    out
}

/// The component name of each definition of `component`: a moved one it can share, else a
/// free name.
fn assign(
    component: &str,
    defs: &Map<String, Value>,
    reserved: &BTreeSet<String>,
    moved: &BTreeMap<String, Moved>,
) -> BTreeMap<String, String> {
    // Shared: an equal definition of the same name; dropped below if its references differ.
    let mut shared: BTreeMap<String, String> = defs
        .iter()
        .filter_map(|(name, raw)| {
            moved
                .iter()
                .find(|(_, m)| m.original == *name && m.raw == *raw)
                .map(|(target, _)| (name.clone(), target.clone()))
        })
        .collect();
    loop {
        let mut names = shared.clone();
        let mut taken: BTreeSet<String> = names.values().cloned().collect();
        for name in defs.keys().filter(|name| !shared.contains_key(*name)) {
            let free = |candidate: &String| {
                !reserved.contains(candidate) && !moved.contains_key(candidate) && !taken.contains(candidate)
            };
            let plain = sanitize(name);
            let prefixed = format!("{}_{plain}", sanitize(component));
            let target = [plain, prefixed.clone()]
                .into_iter()
                .chain((2..).map(|n| format!("{prefixed}_{n}")))
                .find(|candidate| free(candidate))
                .unwrap_or(prefixed);
            taken.insert(target.clone());
            names.insert(name.clone(), target);
        }
        // A shared definition must refer to the same components as the one it shares.
        let differ: Vec<String> = shared
            .iter()
            .filter(|(_, target)| {
                moved.get(*target).is_some_and(|m| m.references.iter().any(|(r, t)| names.get(r) != Some(t)))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if differ.is_empty() {
            return names;
        }
        for name in differ {
            shared.remove(&name);
        }
    }
}

/// A name OpenAPI allows for a component (`^[a-zA-Z0-9._-]+$`).
fn sanitize(name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    if clean.is_empty() { "_".to_owned() } else { clean }
}

/// The definitions `value` refers to (`#/$defs/<name>…`), decoded.
fn references(value: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    walk_refs(value, &mut |target| {
        if let Some((name, _)) = split_def(target) {
            found.insert(name);
        }
    });
    found
}

fn walk_refs(value: &Value, visit: &mut dyn FnMut(&str)) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                visit(target);
            }
            map.values().for_each(|v| walk_refs(v, visit));
        }
        Value::Array(items) => items.iter().for_each(|v| walk_refs(v, visit)),
        _ => {}
    }
}

/// `#/$defs/<name><rest>` → (decoded name, rest).
fn split_def(target: &str) -> Option<(String, &str)> {
    let tail = target.strip_prefix("#/$defs/")?;
    let end = tail.find('/').unwrap_or(tail.len());
    Some((decode_segment(&tail[..end]), &tail[end..]))
}

/// A JSON Pointer segment from a URI fragment: percent-decoded, then `~1` → `/`, `~0` → `~`.
fn decode_segment(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).replace("~1", "/").replace("~0", "~")
}

/// Every `$ref` of `value`, a schema of `component`, pointed into `#/components/schemas/`.
fn rewrite(value: &mut Value, component: &str, names: &BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(new) = rewritten(target, component, names)
            {
                *target = new;
            }
            map.values_mut().for_each(|v| rewrite(v, component, names));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, component, names)),
        _ => {}
    }
}

fn rewritten(target: &str, component: &str, names: &BTreeMap<String, String>) -> Option<String> {
    if let Some((name, rest)) = split_def(target) {
        return names.get(&name).map(|to| format!("{PREFIX}{to}{rest}"));
    }
    if target.starts_with(PREFIX) {
        return None;
    }
    // Anything else inside the component (`#`, `#/properties/…`) is relative to its root.
    target.strip_prefix('#').map(|rest| format!("{PREFIX}{component}{rest}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Every `$ref` of `document`.
    fn all_refs(document: &Value) -> Vec<String> {
        let mut found = Vec::new();
        walk_refs(document, &mut |target| found.push(target.to_owned()));
        found
    }

    /// The value a local reference points at, if any.
    fn resolve<'a>(document: &'a Value, target: &str) -> Option<&'a Value> {
        let pointer = target.strip_prefix('#')?;
        document.pointer(&pointer.split('/').map(decode_segment).collect::<Vec<_>>().join("/"))
    }

    #[test]
    fn definitions_move_up_and_references_follow() {
        let components = map(json!({
            "Run": {
                "$id": "urn:ade:schema:Run",
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": { "at": { "$ref": "#/$defs/Timestamp" }, "parent": { "$ref": "#" } },
                "$defs": { "Timestamp": { "type": "string", "format": "date-time" } },
            },
        }));
        let out = hoist(components);
        assert_eq!(out["Run"]["properties"]["at"]["$ref"], "#/components/schemas/Timestamp");
        assert_eq!(out["Run"]["properties"]["parent"]["$ref"], "#/components/schemas/Run");
        assert_eq!(out["Timestamp"], json!({ "type": "string", "format": "date-time" }));
        for key in ["$id", "$schema", "$defs"] {
            assert!(out["Run"].get(key).is_none(), "{key} is left");
        }
    }

    #[test]
    fn equal_definitions_are_shared_and_different_ones_are_named_after_their_component() {
        let timestamp = json!({ "type": "string", "format": "date-time" });
        let components = map(json!({
            "A": { "$ref": "#/$defs/Stamp", "$defs": { "Stamp": timestamp, "Id": { "type": "string", "pattern": "^a$" } } },
            "B": {
                "type": "array",
                "items": [{ "$ref": "#/$defs/Stamp" }, { "$ref": "#/$defs/Id" }],
                "$defs": { "Stamp": timestamp, "Id": { "type": "string", "pattern": "^b$" } },
            },
            // A definition named like a top-level component is not that component.
            "C": { "$ref": "#/$defs/A", "$defs": { "A": { "type": "integer" } } },
        }));
        let out = hoist(components);
        assert_eq!(out["A"]["$ref"], "#/components/schemas/Stamp");
        assert_eq!(out["B"]["items"][0]["$ref"], "#/components/schemas/Stamp");
        assert_eq!(out["Id"]["pattern"], "^a$");
        assert_eq!(out["B"]["items"][1]["$ref"], "#/components/schemas/B_Id");
        assert_eq!(out["B_Id"]["pattern"], "^b$");
        assert_eq!(out["C"]["$ref"], "#/components/schemas/C_A");
        assert_eq!(out["C_A"], json!({ "type": "integer" }));
        assert!(out["A"].get("$ref").is_some() && out.get("B_Stamp").is_none(), "one Stamp, shared");
    }

    #[test]
    fn an_equal_definition_that_refers_to_a_different_one_is_not_shared() {
        // Both components' `Outer` read the same, but their `Inner`s differ.
        let outer = json!({ "type": "object", "properties": { "inner": { "$ref": "#/$defs/Inner" } } });
        let components = map(json!({
            "A": { "$ref": "#/$defs/Outer", "$defs": { "Outer": outer, "Inner": { "const": 1 } } },
            "B": { "$ref": "#/$defs/Outer", "$defs": { "Outer": outer, "Inner": { "const": 2 } } },
        }));
        let out = hoist(components);
        assert_eq!(out["A"]["$ref"], "#/components/schemas/Outer");
        assert_eq!(out["B"]["$ref"], "#/components/schemas/B_Outer");
        assert_eq!(out["Outer"]["properties"]["inner"]["$ref"], "#/components/schemas/Inner");
        assert_eq!(out["B_Outer"]["properties"]["inner"]["$ref"], "#/components/schemas/B_Inner");
        assert_eq!(out["B_Inner"], json!({ "const": 2 }));
    }

    #[test]
    fn names_that_need_escaping_are_decoded_and_made_valid() {
        let components = map(json!({
            "A": { "$ref": "#/$defs/Map%3CK~1V%3E", "$defs": { "Map<K/V>": { "type": "object" } } },
        }));
        let out = hoist(components);
        assert_eq!(out["A"]["$ref"], "#/components/schemas/Map_K_V_");
        assert!(out.contains_key("Map_K_V_"));
    }

    #[test]
    fn the_served_document_has_one_namespace_and_every_reference_resolves() {
        let document = super::super::document();
        let text = document.to_string();
        assert!(!text.contains("$defs"), "a $defs is left");
        assert!(!text.contains("\"$id\""), "an $id is left");
        let refs = all_refs(&document);
        assert!(refs.len() > 100, "the document uses its components ({} references)", refs.len());
        for target in refs {
            assert!(target.starts_with(PREFIX), "{target} points outside the components");
            assert!(resolve(&document, &target).is_some(), "{target} does not resolve");
        }
        let names = document["components"]["schemas"].as_object().expect("components");
        for name in names.keys() {
            assert_eq!(&sanitize(name), name, "component name {name}");
        }
        // The two configuration schemas differ (input takes `null` for optional fields): both kept.
        assert!(names.contains_key("FieldSpec") && names.contains_key("ConfigurationInput_FieldSpec"));
    }
}
