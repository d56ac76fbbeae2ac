//! # ade-server
//!
//! The HTTP host of ade (SPEC §4): documents, configurations, runs and their event streams (JSON
//! pages, NDJSON, Server-Sent Events), bearer-token tenancy, problem+json errors, probes and
//! Prometheus metrics, over an [`ade_core::Runtime`].
//!
//! # Example
//!
//! ```no_run
//! use ade_server::{Server, ServerConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = ade_core::Runtime::builder().data_dir("./ade-data").configurations_dir("examples/config").build().await?;
//! let server = Server::bind("127.0.0.1:0".parse()?, runtime, ServerConfig::new()).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run(async { tokio::signal::ctrl_c().await.unwrap_or(()) }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`router`] gives the [`axum::Router`] alone, to serve it another way or test it in-process.

pub mod auth;
mod body_timeout;
mod config;
mod connection;
pub mod cors;
mod error;
mod extract;
pub mod http_metrics;
pub mod mount;
pub mod negotiate;
pub mod openapi;
pub mod routes;
mod server;
pub mod sse;
mod state;
mod trim;
mod viewer;

pub use ade_core as core;
pub use auth::{Caller, Tokens};
pub use config::ServerConfig;
pub use cors::CorsOrigins;
pub use error::{Error, Result};
pub use mount::PublicUrl;
pub use routes::router;
pub use server::{ServeError, Server, ShutdownHandle};
pub use state::AppState;
