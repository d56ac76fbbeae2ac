//! `schemas/` as TypeScript: json-schema-to-typescript turns the JSON Schemas into declarations
//! that compile under `tsc --strict`, narrow every catalog event by `type`, and refuse a misspelt
//! payload field (`tests/typescript/usage.ts`); they are committed as `schemas/typescript/`.
//!
//! Needs `node` and `npm` (`npm ci` installs the pinned tools into `tests/typescript/node_modules`
//! when missing). Without them the test says it was skipped and passes, unless
//! `ADE_REQUIRE_NODE=1` (as in CI). `UPDATE_SCHEMAS=1` rewrites `schemas/typescript/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::schemas::{TYPESCRIPT_DIR, files_under, schemas_dir};

fn typescript_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/typescript")
}

/// Whether `program --version` runs.
fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|output| output.status.success())
}

/// Runs `command`, failing the test with its output unless it succeeds.
fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_schemas_make_typescript_that_compiles_strict_narrows_events_and_is_committed() {
    if !installed("node") || !installed("npm") {
        assert!(
            std::env::var("ADE_REQUIRE_NODE").as_deref() != Ok("1"),
            "ADE_REQUIRE_NODE=1 but node and npm are not both installed"
        );
        eprintln!("typescript: skipped: node and npm are not installed (ADE_REQUIRE_NODE=1 makes this a failure)");
        return;
    }
    let dir = typescript_dir();
    if !dir.join("node_modules").is_dir() {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), "npm ci");
    }

    // The JSON Schemas as the Rust types make them now, not as committed: under UPDATE_SCHEMAS=1
    // the JSON staleness test may be rewriting those at the same time.
    let schemas = tempfile::tempdir().expect("temporary directory");
    for (path, text) in ade::schema::generate() {
        let path = schemas.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a schema file lives in a folder")).expect("create folder");
        std::fs::write(&path, text).expect("write schema");
    }
    let generated = dir.join("generated");
    run(
        Command::new("node")
            .arg("generate.mjs")
            .arg("--schemas")
            .arg(schemas.path())
            .arg("--out")
            .arg(&generated)
            .current_dir(&dir),
        "node generate.mjs",
    );

    let committed = schemas_dir().join(TYPESCRIPT_DIR);
    let mut fresh = BTreeSet::new();
    files_under(&generated, "", &mut fresh);
    assert!(fresh.contains("envelope.d.ts"), "generate.mjs made no envelope.d.ts: {fresh:?}");
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        let _ = std::fs::remove_dir_all(&committed);
        for file in &fresh {
            let to = committed.join(file);
            std::fs::create_dir_all(to.parent().expect("a file lives in a folder")).expect("create folder");
            std::fs::copy(generated.join(file), &to).expect("copy a declaration file");
        }
    }
    let mut on_disk = BTreeSet::new();
    files_under(&committed, "", &mut on_disk);
    let stale: Vec<&String> = fresh
        .iter()
        .filter(|file| {
            let want = std::fs::read_to_string(generated.join(file)).expect("a generated file");
            std::fs::read_to_string(committed.join(file)).ok().as_ref() != Some(&want)
        })
        .collect();
    let extra: Vec<&String> = on_disk.difference(&fresh).collect();

    // usage.ts: an exhaustive switch over the catalog events, with `@ts-expect-error` on a typo.
    run(
        Command::new("npx").args(["--no", "--", "tsc", "--strict", "--noEmit", "-p", "."]).current_dir(&dir),
        "tsc --strict over tests/typescript/usage.ts",
    );
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/typescript/ is stale (changed: {stale:?}, no longer generated: {extra:?}); \
         run `UPDATE_SCHEMAS=1 cargo test --test it schemas` and commit the result"
    );
}
