//! ade-client against a real ade-server on 127.0.0.1 (one integration binary).

mod cli;
mod mount;
mod operations;
mod streams;
mod support;
