//! Cross-crate tests of the `ade` workspace, in one binary to keep link time down.

mod export;
mod recovery;
mod sample;
mod schemas;
