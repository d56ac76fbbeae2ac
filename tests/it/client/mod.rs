//! ade-client against a real ade-server on 127.0.0.1, over HTTP and over the in-process
//! transport (`Client::local`, feature `local`).

mod mount;
mod operations;
mod streams;
pub(crate) mod support;
