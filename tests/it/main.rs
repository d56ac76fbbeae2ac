//! Cross-crate tests of the `ade` workspace, in one binary to keep link time down.

mod client;
mod export;
mod recovery;
mod sample;
mod schemas;
mod typescript;
