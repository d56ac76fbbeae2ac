//! The stores a runtime opens for itself (the data directory's, locked to it, or memory's), or a
//! backend's, perhaps shared with other runtimes.

use std::path::Path;
use std::sync::Arc;

use crate::coordinate::{Backend, Coordinator};
use crate::error::{Error, Result};
use crate::store::{EventStore, MemoryEventStore, MemoryRunStore, NdjsonEventStore, RunStore, SqliteRunStore};

/// The stores a runtime uses, and what sharing them with other processes needs.
pub(super) struct Stores {
    pub(super) events: Arc<dyn EventStore>,
    pub(super) runs: Arc<dyn RunStore>,
    /// Who executes which run; `None` when the stores belong to this process alone.
    pub(super) coordinator: Option<Arc<dyn Coordinator>>,
    /// Held while the runtime lives (see [`lock_data_dir`]); embedded stores only.
    pub(super) data_dir_lock: Option<std::fs::File>,
}

impl Stores {
    pub(super) fn in_memory() -> Self {
        Self {
            events: Arc::new(MemoryEventStore::new()),
            runs: Arc::new(MemoryRunStore::new()),
            coordinator: None,
            data_dir_lock: None,
        }
    }

    pub(super) async fn embedded(data_dir: &Path) -> Result<Self> {
        let data_dir_lock = Some(lock_data_dir(data_dir)?);
        Ok(Self {
            events: Arc::new(NdjsonEventStore::new(data_dir)),
            runs: Arc::new(SqliteRunStore::open(data_dir).await?),
            coordinator: None,
            data_dir_lock,
        })
    }
}

/// A backend's stores: no data-directory lock, which the embedder's stores do not need (and
/// every runtime sharing them shares the directory).
impl From<Backend> for Stores {
    fn from(backend: Backend) -> Self {
        Self { events: backend.events, runs: backend.runs, coordinator: backend.coordinator, data_dir_lock: None }
    }
}

/// Takes `<data_dir>/ade.lock` exclusively. The embedded stores belong to one runtime: recovery
/// ends every run it finds active, so a second runtime on the same directory (another process, or
/// an `ade` command run beside a server) must be refused rather than end the first one's runs. The
/// lock goes with the process, however it ends.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("ade.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::Io { action: "open", path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::DataDirInUse(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { action: "lock", path, source }),
    }
}
