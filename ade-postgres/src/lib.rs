//! # ade-postgres
//!
//! ade on PostgreSQL (SPEC §6): several runtimes (server instances) on one database are one
//! system. Queued runs go to whichever instance claims them, an instance's subscribers follow runs
//! another one executes, a cancel reaches the instance executing the run, and a run whose instance
//! died is ended by another once its lease expires.
//!
//! [`connect`] opens the pool, brings the schema up to date and returns the [`Backend`] a
//! [`RuntimeBuilder`](ade_core::RuntimeBuilder) takes: the event store [`PgEventStore`], the run
//! store [`PgRunStore`] and their [`PgCoordinator`]. Document bytes and outputs stay in the data
//! directory (or blob store), which every instance must share.
//!
//! ```no_run
//! # async fn example() -> ade_core::Result<()> {
//! let backend = ade_postgres::connect("postgres://ade@127.0.0.1:5432/ade").await?;
//! let runtime = ade_core::Runtime::builder().backend(backend).data_dir("/shared/ade").build().await?;
//! # runtime.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Errors are ade-core's ([`ade_core::Error::Database`]): the stores implement its traits.

mod coordinate;
mod database;
mod events;
mod runs;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

use std::sync::Arc;

pub use ade_core::Backend;
pub use coordinate::PgCoordinator;
pub use events::PgEventStore;
pub use runs::PgRunStore;

/// Connects to `url` (`postgres://user@host:port/database`), brings the schema up to date, and
/// returns the stores and the coordinator on one pool.
///
/// # Errors
/// [`ade_core::Error::Database`] when the URL is invalid, the database cannot be reached or
/// migrated, or it was written by a newer version of ade.
pub async fn connect(url: &str) -> ade_core::Result<Backend> {
    let pool = database::connect(url).await?;
    let events = PgEventStore::with_pool(pool.clone()).await?;
    let runs = PgRunStore::with_pool(pool).await?;
    let coordinator = PgCoordinator::new(runs.clone());
    Ok(Backend::shared(Arc::new(events), Arc::new(runs), Arc::new(coordinator)))
}
