//! The `ade-server` binary. The HTTP API is not built yet (see the project's issues); until then it
//! says so and exits with a non-zero code rather than pretending to serve.

fn main() -> std::process::ExitCode {
    eprintln!(
        "ade-server: not yet — the HTTP API is still being built. \
         The event model and its JSON Schemas are ready: see schemas/ and `cargo doc -p ade-core --open`."
    );
    std::process::ExitCode::from(2)
}
