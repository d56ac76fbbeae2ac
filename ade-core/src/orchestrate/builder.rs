//! [`RuntimeBuilder`]: the settings of a runtime, checked and turned into a running [`Runtime`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blob::{BlobStore, DirBlobStore};
use crate::config::{Configuration, DEFAULT_MAX_FIELDS};
use crate::coordinate::Backend;
use crate::dispatch::{DispatchOptions, Dispatcher};
use crate::engine::{Builder, Engine, ProcessBuilder, ProcessEngine, SinkLimits};
use crate::error::{Error, Result};
use crate::event::RunId;
use crate::export::{self, EventExporter, ExportOptions, Exporters};
use crate::store::{Durability, EventStore, RunStore};

use super::stores::Stores;
use super::{FINISHING_PER_WORKER, Inner, Runtime, builds, check_fields_of, recovery};

/// An engine and its builder, registered under an engine name.
#[derive(Debug, Clone)]
pub(super) struct EngineEntry {
    pub(super) engine: Arc<dyn Engine>,
    pub(super) builder: Option<Arc<dyn Builder>>,
}

/// Configures and starts a [`Runtime`].
///
/// Where runs and events are kept is one of, with nothing implicit between them:
/// - the data directory alone (default): NDJSON logs and `ade.sqlite`, locked to this runtime;
/// - [`in_memory`](Self::in_memory): both stores in memory;
/// - a [`backend`](Self::backend): both stores from one place, with the coordinator of the
///   runtimes that share them (`ade_postgres::connect(url)`: a PostgreSQL database);
/// - your own [`event_store`](Self::event_store) and/or [`run_store`](Self::run_store): each
///   replaces its default (the data directory's, or memory's with `in_memory`); with both, the
///   data directory is not locked.
///
/// [`build`](Self::build) refuses combinations that contradict each other (a `backend` with
/// `in_memory` or with a store of your own) rather than letting one setting silently win.
/// Documents, outputs and builds are in the [`blob_store`](Self::blob_store) (default: the data
/// directory) whichever is chosen.
#[derive(Debug)]
#[must_use]
pub struct RuntimeBuilder {
    data_dir: PathBuf,
    in_memory: bool,
    workers: usize,
    durability: Durability,
    live_buffer: Option<usize>,
    configurations_dir: Option<PathBuf>,
    configurations: Vec<Configuration>,
    engines: HashMap<String, EngineEntry>,
    lease: Duration,
    cancel_grace: Duration,
    backend: Option<Backend>,
    blob_store: Option<Arc<dyn BlobStore>>,
    event_store: Option<Arc<dyn EventStore>>,
    run_store: Option<Arc<dyn RunStore>>,
    sink_limits: SinkLimits,
    max_configuration_fields: usize,
    exporters: Vec<Arc<dyn EventExporter>>,
    export_options: ExportOptions,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        let mut engines = HashMap::new();
        engines.insert(
            "process".to_owned(),
            EngineEntry {
                engine: Arc::new(ProcessEngine::default()),
                builder: Some(Arc::new(ProcessBuilder::default())),
            },
        );
        Self {
            data_dir: PathBuf::from("./ade-data"),
            in_memory: false,
            workers: 2,
            durability: Durability::Buffered,
            live_buffer: None,
            configurations_dir: None,
            configurations: Vec::new(),
            engines,
            lease: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(10),
            backend: None,
            blob_store: None,
            event_store: None,
            run_store: None,
            sink_limits: SinkLimits::default(),
            max_configuration_fields: DEFAULT_MAX_FIELDS,
            exporters: Vec::new(),
            export_options: ExportOptions::default(),
        }
    }
}

impl RuntimeBuilder {
    /// Where everything is kept (default `./ade-data`): event logs, `ade.sqlite`, documents,
    /// outputs and builds.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Keep runs and events in memory instead of `ade.sqlite` and NDJSON logs (documents,
    /// outputs and builds still go to the data directory).
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// How many runs execute at once (default 2, at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Whether event batches are fsynced (default buffered; `run.completed` always is).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Events each run keeps for live subscribers (see [`DispatchOptions::live_buffer`]).
    pub fn live_buffer(mut self, events: usize) -> Self {
        self.live_buffer = Some(events);
        self
    }

    /// Loads every `*.json` configuration of `dir` at start.
    pub fn configurations_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.configurations_dir = Some(dir.into());
        self
    }

    /// Registers a configuration.
    pub fn configuration(mut self, configuration: Configuration) -> Self {
        self.configurations.push(configuration);
        self
    }

    /// Registers an engine (and its builder, if its configurations need builds) for configurations
    /// whose `engine` is `name`; replaces a built-in one of the same name.
    pub fn engine(
        mut self,
        name: impl Into<String>,
        engine: Arc<dyn Engine>,
        builder: Option<Arc<dyn Builder>>,
    ) -> Self {
        self.engines.insert(name.into(), EngineEntry { engine, builder });
        self
    }

    /// How long a worker's claim on a run lasts before it must be renewed (default 30 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Keep runs, documents' metadata and events in `backend`'s stores instead of `ade.sqlite`
    /// and NDJSON logs. With a [`Coordinator`](crate::coordinate::Coordinator) (a database shared
    /// by several runtimes, SPEC §6: `ade_postgres::connect(url)`), queued runs go to whichever
    /// instance claims them, an instance's subscribers follow runs that another one executes, and
    /// a run whose instance died is ended by another once its lease expires. Document bytes and
    /// outputs stay in the data directory, which all instances must then share.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// How long a cancelled or timed-out engine gets to return before it is abandoned (default 10 s).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Where document bytes and run outputs are kept (default: a [`DirBlobStore`] on the data
    /// directory). Engines still write outputs into the run's directory under the data directory,
    /// which is the default store; a store elsewhere sees documents but not yet outputs (see
    /// [`BlobStore`]).
    pub fn blob_store(mut self, store: Arc<dyn BlobStore>) -> Self {
        self.blob_store = Some(store);
        self
    }

    /// Keep event logs in `store` instead of the default's (NDJSON files under the data directory,
    /// memory with [`in_memory`](Self::in_memory), or a [`backend`](Self::backend)'s).
    pub fn event_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.event_store = Some(store);
        self
    }

    /// Keep runs and documents' metadata in `store` instead of the default's (`ade.sqlite`,
    /// memory with [`in_memory`](Self::in_memory), or a [`backend`](Self::backend)'s). With both stores
    /// given (and no `postgres`), the data directory holds only documents, outputs and builds, and
    /// is not locked: the stores are the embedder's to share or not.
    pub fn run_store(mut self, store: Arc<dyn RunStore>) -> Self {
        self.run_store = Some(store);
        self
    }

    /// The limits every run's [`EventSink`](crate::engine::EventSink) applies to what its engine
    /// emits: console message length, validation issues published (SPEC §9; defaults
    /// [`SinkLimits::default`]).
    pub fn sink_limits(mut self, limits: SinkLimits) -> Self {
        self.sink_limits = limits;
        self
    }

    /// Most fields a configuration may have (default [`DEFAULT_MAX_FIELDS`]): a configuration with
    /// more is refused, at [`build`](Self::build) and by [`Runtime::put_configuration`]. Above the
    /// default, runs' summaries may list only the first fields (marked `truncated`).
    pub fn max_configuration_fields(mut self, fields: usize) -> Self {
        self.max_configuration_fields = fields;
        self
    }

    /// Registers an [`EventExporter`]: every persisted event of every run (those already stored
    /// included) is delivered to it, in order, at least once (see [`crate::export`]). Each
    /// exporter needs its own [`name`](EventExporter::name).
    pub fn exporter(mut self, exporter: Arc<dyn EventExporter>) -> Self {
        self.exporters.push(exporter);
        self
    }

    /// How exporters are fed (default [`ExportOptions::default`]).
    pub fn export_options(mut self, options: ExportOptions) -> Self {
        self.export_options = options;
        self
    }

    /// Refuses settings where one would silently override another.
    fn check_settings(&self) -> Result<()> {
        if self.backend.is_none() {
            return Ok(());
        }
        let contradiction = if self.in_memory {
            "`backend` and `in_memory` both say where runs and events are kept"
        } else if self.event_store.is_some() || self.run_store.is_some() {
            "`backend` brings both stores (perhaps shared with other runtimes); \
             it cannot be combined with `event_store` or `run_store`"
        } else {
            return Ok(());
        };
        Err(Error::Settings(contradiction.to_owned()))
    }

    /// Opens the stores, recovers runs a previous process left active, and starts the workers
    /// and the exporters' delivery tasks.
    ///
    /// # Errors
    /// [`Error::Settings`] for settings that contradict each other (see [`RuntimeBuilder`]);
    /// [`Error::Config`] when two exporters have the same name or a configuration is invalid;
    /// when the data directory or the stores cannot be opened.
    pub async fn build(mut self) -> Result<Runtime> {
        self.check_settings()?;
        export::check_names(&self.exporters)?;
        // Engines run in their configuration's directory: a relative data directory would name
        // another place there (their inputs, their output directory).
        self.data_dir = std::path::absolute(&self.data_dir).map_err(|source| Error::Io {
            action: "resolve",
            path: self.data_dir.clone(),
            source,
        })?;
        tokio::fs::create_dir_all(&self.data_dir).await.map_err(|source| Error::Io {
            action: "create",
            path: self.data_dir.clone(),
            source,
        })?;
        let stores = match self.backend.take() {
            Some(backend) => Stores::from(backend),
            None if self.in_memory || (self.event_store.is_some() && self.run_store.is_some()) => Stores::in_memory(),
            None => Stores::embedded(&self.data_dir).await?,
        };
        let Stores { events, runs, coordinator, data_dir_lock } = stores;
        // Listening begins before anything runs, so no announcement made from now on is missed.
        let shared = match &coordinator {
            Some(coordinator) => Some((coordinator.clone(), coordinator.announcements().await?)),
            None => None,
        };
        let events = self.event_store.unwrap_or(events);
        let runs = self.run_store.unwrap_or(runs);
        let mut options = DispatchOptions::default().with_durability(self.durability);
        if let Some(events) = self.live_buffer {
            options = options.with_live_buffer(events);
        }
        let mut configurations = HashMap::new();
        let mut loaded = match &self.configurations_dir {
            Some(dir) => Configuration::load_dir(dir, self.max_configuration_fields)?,
            None => Vec::new(),
        };
        for configuration in &self.configurations {
            check_fields_of(configuration, self.max_configuration_fields)?;
        }
        loaded.extend(self.configurations);
        for configuration in loaded {
            configurations.insert(configuration.id.clone(), Arc::new(configuration));
        }
        let blob_store = self.blob_store.unwrap_or_else(|| Arc::new(DirBlobStore::new(&self.data_dir)));
        let dispatcher = Dispatcher::new(events.clone(), options);
        // Even with none registered yet: exporters may be added while the runtime runs.
        let exporters = Exporters::start(self.exporters, &self.export_options, events, runs.clone())?;
        dispatcher.listen_appended(exporters.clone());
        let inner = Arc::new(Inner {
            _data_dir_lock: data_dir_lock,
            blob_store,
            data_dir: self.data_dir,
            dispatcher,
            exporters,
            runs,
            configurations: RwLock::new(configurations),
            engines: self.engines,
            builds: builds::BuildCache::default(),
            pending_writers: Mutex::new(HashMap::new()),
            pending_ready: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            live: Mutex::new(HashMap::new()),
            finishing: Arc::new(Semaphore::new(self.workers * FINISHING_PER_WORKER)),
            active: Mutex::new(HashMap::new()),
            cancel_requests: Mutex::new(HashSet::new()),
            work: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            owner: Arc::from(format!("ade-{}", RunId::new())),
            coordinator,
            lease: self.lease,
            cancel_grace: self.cancel_grace,
            sink_limits: self.sink_limits,
            write_probe: tokio::sync::Mutex::new(None),
            max_configuration_fields: self.max_configuration_fields,
        });
        let runtime = Runtime { inner };
        match shared {
            // Other instances may be executing the active runs: only expired leases say who died.
            Some((coordinator, announcements)) => {
                let (listener, reaper) = (runtime.clone(), runtime.clone());
                runtime.inner.tasks.spawn(async move { listener.follow_announcements(announcements).await });
                runtime.inner.tasks.spawn(async move { recovery::reap_abandoned(&reaper, coordinator.as_ref()).await });
            }
            // A full disk must not keep the runtime from starting: reads and streams work, and
            // recovery is retried until the stores take writes again.
            None => recovery::recover_or_retry(&runtime).await,
        }
        for _ in 0..self.workers {
            let worker = runtime.clone();
            runtime.inner.tasks.spawn(async move {
                worker.work().await;
                tracing::debug!("a worker stopped: the runtime is shutting down");
            });
        }
        Ok(runtime)
    }
}
