//! Integration tests of `ade-server`: a real server on 127.0.0.1:0, real HTTP; tests that look
//! only at statuses and bodies call the router in-process (`support::InProcess`).

mod auth;
mod bad_input;
mod binary;
mod cluster;
mod configurations;
mod connections;
mod cors;
mod documents;
mod events;
mod full_disk;
mod lifecycle;
mod metrics;
mod mount;
mod nats;
mod openapi;
mod outputs;
mod runs;
mod schemathesis;
mod shutdown;
mod support;
mod webhooks;
