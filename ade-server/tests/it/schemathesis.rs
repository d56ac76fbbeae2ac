//! Schemathesis against a real server: the served OpenAPI document is valid
//! (openapi-spec-validator), and the server answers as it describes, by every check schemathesis
//! has (`--checks all`), with the exceptions of `tests/schemathesis/schemathesis.toml` (each
//! decided in docs/decisions.md).
//!
//! The tools are pinned in `tests/schemathesis/requirements.txt` and installed with pip into a
//! virtual environment under `target/tmp/`, made once per requirements file. They need Python
//! ≥ 3.12 (`ADE_PYTHON`, else `python3.13`/`python3.12`/`python3` on `PATH`, else pyenv's): without
//! it the test prints why it is skipped and passes, unless `ADE_REQUIRE_SCHEMATHESIS=1` (CI).
//!
//! The budget is small (a few dozen examples per operation, two minutes at most); docs/server.md
//! has the longer run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ade_server::ServerConfig;

use crate::support::{TestServer, test_tokens};

/// The token of `test_tokens` allowed in every workspace.
const TOKEN: &str = "admin-secret";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether `python` runs and is at least 3.12.
fn recent_enough(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import sys; print(sys.version_info >= (3, 12))"])
        .output()
        .is_ok_and(|output| output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "True")
}

/// A Python ≥ 3.12, if this machine has one.
fn python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("ADE_PYTHON").map(PathBuf::from).into_iter().collect();
    candidates.extend(["python3.13", "python3.12", "python3"].map(PathBuf::from));
    let pyenv_root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pyenv")));
    if let Some(Ok(versions)) = pyenv_root.map(|root| std::fs::read_dir(root.join("versions"))) {
        let mut found: Vec<PathBuf> = versions.flatten().map(|entry| entry.path().join("bin/python3")).collect();
        found.sort();
        candidates.extend(found.into_iter().rev());
    }
    candidates.into_iter().find(|candidate| recent_enough(candidate))
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed ({}):\n{}\n{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout)),
            tail(&String::from_utf8_lossy(&output.stderr))
        );
    }
    output
}

/// The last part of a long output.
fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(20_000);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    &text[start..]
}

/// A virtual environment with the pinned requirements: `target/tmp/schemathesis-venv`, made
/// again when the requirements file changed.
fn environment(python: &Path) -> PathBuf {
    let requirements_file = repository().join("tests/schemathesis/requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_file).expect("tests/schemathesis/requirements.txt");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    let stamp = venv.join("ade-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str()) {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new(python).arg("-m").arg("venv").arg(&venv));
    run(Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements_file));
    std::fs::write(&stamp, requirements).expect("write the requirements stamp");
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("ADE_REQUIRE_SCHEMATHESIS").is_none_or(|v| v != "1"),
            "ADE_REQUIRE_SCHEMATHESIS=1 but no Python >= 3.12 was found (set ADE_PYTHON)"
        );
        eprintln!("skipped: schemathesis needs Python >= 3.12, and none was found (set ADE_PYTHON)");
        return;
    };
    let venv = tokio::task::spawn_blocking(move || environment(&python)).await.expect("venv");

    let server = TestServer::start_with(ServerConfig::new().with_tokens(test_tokens())).await;
    // Runs of the `gated` configuration go on at once, so that their streams end.
    server.gate.add_permits(1 << 20);
    let url = format!("{}/openapi.json", server.base);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-work");
    std::fs::create_dir_all(&work).expect("work directory");
    let config = repository().join("tests/schemathesis/schemathesis.toml");
    // openapi-spec-validator reads files: the document as served.
    let served = server.with_token(TOKEN).get_json("/openapi.json").await;
    let document = work.join("openapi.json");
    std::fs::write(&document, served.to_string()).expect("write the served document");

    let (validated, fuzzed) = tokio::task::spawn_blocking(move || {
        let validated =
            Command::new(venv.join("bin/openapi-spec-validator")).arg(&document).current_dir(&work).output();
        let fuzzed = Command::new(venv.join("bin/schemathesis"))
            .arg("--config-file")
            .arg(&config)
            .args(["--no-color", "run", &url, "--checks", "all"])
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--max-examples", "25", "--max-time", "120", "--request-timeout", "20"])
            .current_dir(&work)
            .output();
        (validated, fuzzed)
    })
    .await
    .expect("tools");
    server.stop().await;

    let validated = validated.expect("run openapi-spec-validator");
    assert!(
        validated.status.success(),
        "openapi-spec-validator refuses the served document:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    let fuzzed = fuzzed.expect("run schemathesis");
    let report = String::from_utf8_lossy(&fuzzed.stdout);
    println!("{}", tail(&report));
    assert!(
        fuzzed.status.success(),
        "schemathesis found the server and its document disagreeing ({}):\n{}\n{}",
        fuzzed.status,
        tail(&report),
        tail(&String::from_utf8_lossy(&fuzzed.stderr))
    );
    // Every operation it found was tested (it leaves out `/openapi.json` itself).
    let value_after = |label: &str| {
        report.lines().find_map(|line| line.trim().strip_prefix(label)).map(str::trim).unwrap_or_default().to_owned()
    };
    let selected = value_after("Selected:");
    let (chosen, total) = selected.split_once('/').unwrap_or_default();
    assert!(!chosen.is_empty() && chosen == total, "schemathesis did not select every operation ({selected})");
    assert_eq!(value_after("Tested:"), chosen, "schemathesis did not test every operation:\n{}", tail(&report));
    let described: usize = ade_server::openapi::document()["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|operations| operations.as_object().map_or(0, |o| o.len()))
        .sum();
    assert!(total.parse::<usize>().is_ok_and(|n| n + 1 >= described && n > 10), "{total} of {described} operations");
}
