//! The runtime (SPEC §2.3–§3, §6, §8): runs from queue to `run.completed`.
//!
//! [`Runtime`] is the embedding entry point: it owns the stores, the dispatcher, the registered
//! engines and configurations, a queue served by workers, the build cache, cancellation, timeouts,
//! and recovery of runs a dead process left behind.

mod builds;
mod documents;
mod execute;
mod live;
mod recovery;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::run::Created;
pub use documents::{content_type_for, sanitize_filename};

use crate::blob::{BlobStore, DirBlobStore};
use crate::config::{Configuration, DEFAULT_MAX_FIELDS};
use crate::dispatch::{After, DispatchOptions, Dispatcher, RunContext, RunWriter, lock};
use crate::engine::{Builder, Engine, ProcessBuilder, ProcessEngine, SinkLimits, configuration_version};
use crate::error::{Error, Result};
use crate::event::{ConfigurationId, DocumentId, EventSource, QueuedBy, RunId, RunQueued, Timestamp, WorkspaceId};
use crate::export::{self, EventExporter, ExportOptions, Exporters};
use crate::run::{Run, RunLinks, RunMode, RunOptions, RunStatus};
use crate::store::{
    CreateOutcome, Durability, EventStore, EventStream, IdempotencyKey, MemoryEventStore, MemoryRunStore,
    NdjsonEventStore, RunFilter, RunKey, RunPage, RunStore, SqliteRunStore,
};

/// How many finished runs per worker may wait for their `run.completed` to be written before the
/// worker waits too.
const FINISHING_PER_WORKER: usize = 4;

/// A request to create a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CreateRun {
    /// The workspace (default `default`).
    pub workspace_id: WorkspaceId,
    /// The configuration to execute.
    pub configuration_id: ConfigurationId,
    /// Input documents, in order.
    pub document_ids: Vec<DocumentId>,
    /// What the engine is asked to do.
    pub mode: RunMode,
    /// Options.
    pub options: RunOptions,
    /// An idempotency key with the hash of the request it came with.
    pub idempotency: Option<IdempotencyKey>,
    /// Who asks (reported in `run.queued`).
    pub queued_by: Option<QueuedBy>,
}

impl CreateRun {
    /// A run of `configuration_id` in the default workspace, no documents, mode `execute`.
    pub fn new(configuration_id: ConfigurationId) -> Self {
        Self {
            workspace_id: WorkspaceId::default(),
            configuration_id,
            document_ids: Vec::new(),
            mode: RunMode::Execute,
            options: RunOptions::default(),
            idempotency: None,
            queued_by: None,
        }
    }

    /// In `workspace_id`.
    #[must_use]
    pub fn workspace(mut self, workspace_id: WorkspaceId) -> Self {
        self.workspace_id = workspace_id;
        self
    }

    /// With one more input document.
    #[must_use]
    pub fn document(mut self, id: DocumentId) -> Self {
        self.document_ids.push(id);
        self
    }

    /// In `mode`.
    #[must_use]
    pub fn mode(mut self, mode: RunMode) -> Self {
        self.mode = mode;
        self
    }

    /// With `options`.
    #[must_use]
    pub fn options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// With an idempotency key (`request_hash` identifies the request body).
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>, request_hash: impl Into<String>) -> Self {
        self.idempotency = Some(IdempotencyKey { key: key.into(), request_hash: request_hash.into() });
        self
    }
}

/// An engine and its builder, registered under an engine name.
#[derive(Debug, Clone)]
struct EngineEntry {
    engine: Arc<dyn Engine>,
    builder: Option<Arc<dyn Builder>>,
}

/// Configures and starts a [`Runtime`].
///
/// Where runs and events are kept is one of, with nothing implicit between them:
/// - the data directory alone (default): NDJSON logs and `ade.sqlite`, locked to this runtime;
/// - [`in_memory`](Self::in_memory): both stores in memory;
/// - [`postgres`](Self::postgres): both stores on a PostgreSQL database, shared with other
///   runtimes on it;
/// - your own [`event_store`](Self::event_store) and/or [`run_store`](Self::run_store): each
///   replaces its default (the data directory's, or memory's with `in_memory`); with both, the
///   data directory is not locked.
///
/// [`build`](Self::build) refuses combinations that contradict each other (`postgres` with
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
    database_url: Option<String>,
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
            database_url: None,
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

    /// Keep runs, documents' metadata and events in the PostgreSQL database at `url`
    /// (`postgres://user@host:port/database`) instead of `ade.sqlite` and NDJSON logs, shared with
    /// every other runtime on that database (SPEC §6): queued runs go to whichever instance claims
    /// them, an instance's subscribers follow runs that another one executes, and a run whose
    /// instance died is ended by another once its lease expires. Document bytes and outputs stay
    /// in the data directory, which all instances must share.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
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
    /// memory with [`in_memory`](Self::in_memory), PostgreSQL with `postgres`).
    pub fn event_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.event_store = Some(store);
        self
    }

    /// Keep runs and documents' metadata in `store` instead of the default's (`ade.sqlite`,
    /// memory with [`in_memory`](Self::in_memory), PostgreSQL with `postgres`). With both stores
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
        if self.database_url.is_none() {
            return Ok(());
        }
        let contradiction = if self.in_memory {
            "`postgres` and `in_memory` both say where runs and events are kept"
        } else if self.event_store.is_some() || self.run_store.is_some() {
            "`postgres` brings both stores (shared with the other runtimes on the database); \
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
        let stores = match &self.database_url {
            #[cfg(feature = "postgres")]
            Some(url) => Stores::postgres(url).await?,
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(Error::Database("this build of ade has no PostgreSQL support".to_owned())),
            None if self.in_memory || (self.event_store.is_some() && self.run_store.is_some()) => Stores::in_memory(),
            None => Stores::embedded(&self.data_dir).await?,
        };
        let Stores { events, runs, announcements, data_dir_lock } = stores;
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
        let exporters = if self.exporters.is_empty() {
            None
        } else {
            let exporters = Exporters::start(self.exporters, &self.export_options, events, runs.clone())?;
            dispatcher.listen_appended(exporters.clone());
            Some(exporters)
        };
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
            shared: announcements.is_some(),
            lease: self.lease,
            cancel_grace: self.cancel_grace,
            sink_limits: self.sink_limits,
            write_probe: tokio::sync::Mutex::new(None),
            max_configuration_fields: self.max_configuration_fields,
        });
        let runtime = Runtime { inner };
        match announcements {
            // Other instances may be executing the active runs: only expired leases say who died.
            Some(announcements) => {
                let (listener, reaper) = (runtime.clone(), runtime.clone());
                runtime.inner.tasks.spawn(async move { listener.follow_announcements(announcements).await });
                runtime.inner.tasks.spawn(async move { recovery::reap_abandoned(&reaper).await });
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

/// The stores a runtime uses, and what sharing them with other processes needs.
struct Stores {
    events: Arc<dyn EventStore>,
    runs: Arc<dyn RunStore>,
    /// What other processes announce; `None` when the stores belong to this process alone.
    announcements: Option<crate::store::Announcements>,
    /// Held while the runtime lives (see [`lock_data_dir`]); embedded stores only.
    data_dir_lock: Option<std::fs::File>,
}

impl Stores {
    fn in_memory() -> Self {
        Self {
            events: Arc::new(MemoryEventStore::new()),
            runs: Arc::new(MemoryRunStore::new()),
            announcements: None,
            data_dir_lock: None,
        }
    }

    async fn embedded(data_dir: &Path) -> Result<Self> {
        let data_dir_lock = Some(lock_data_dir(data_dir)?);
        Ok(Self {
            events: Arc::new(NdjsonEventStore::new(data_dir)),
            runs: Arc::new(SqliteRunStore::open(data_dir).await?),
            announcements: None,
            data_dir_lock,
        })
    }

    /// No data-directory lock here: every instance on the database shares the directory.
    #[cfg(feature = "postgres")]
    async fn postgres(url: &str) -> Result<Self> {
        let pool = crate::store::postgres_pool(url).await?;
        let events = crate::store::PgEventStore::with_pool(pool.clone()).await?;
        let runs = crate::store::PgRunStore::with_pool(pool.clone()).await?;
        let announcements = crate::store::postgres_listen(&pool).await?;
        Ok(Self {
            events: Arc::new(events),
            runs: Arc::new(runs),
            announcements: Some(announcements),
            data_dir_lock: None,
        })
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

/// Why an active run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancelled,
    TimedOut,
    /// Another instance took the run over (shared stores).
    LeaseLost,
    /// Some of the run's events could not be persisted: it can only fail now, so its engine is
    /// stopped rather than left to produce events that cannot be kept.
    StoreError,
}

/// An executing run's stop switch.
#[derive(Debug)]
struct ActiveRun {
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

#[derive(Debug)]
struct Inner {
    /// Held while the runtime lives (see [`lock_data_dir`]).
    _data_dir_lock: Option<std::fs::File>,
    data_dir: PathBuf,
    /// Document bytes and run outputs.
    blob_store: Arc<dyn BlobStore>,
    dispatcher: Dispatcher,
    /// The event exporters' delivery tasks, if any exporter is registered.
    exporters: Option<Arc<Exporters>>,
    runs: Arc<dyn RunStore>,
    configurations: RwLock<HashMap<ConfigurationId, Arc<Configuration>>>,
    engines: HashMap<String, EngineEntry>,
    builds: builds::BuildCache,
    /// Writers of runs just created, kept (with `run.queued` written) for the worker that claims them.
    pending_writers: Mutex<HashMap<RunId, RunWriter>>,
    /// Signalled when a writer is put in `pending_writers`.
    pending_ready: Notify,
    /// Runs a worker or a canceller of this process is handling.
    in_flight: Mutex<HashSet<RunId>>,
    /// Summaries of the runs this process writes, folded as their events are persisted.
    live: Mutex<HashMap<RunId, Arc<live::LiveSummary>>>,
    /// Bounds the runs being finished (summary, `run.completed`, terminal row) behind the workers.
    finishing: Arc<Semaphore>,
    /// Executing runs, for cancel.
    active: Mutex<HashMap<RunId, ActiveRun>>,
    /// Cancels asked for while a run was between its claim and its start.
    cancel_requests: Mutex<HashSet<RunId>>,
    /// Signalled when there may be queued work.
    work: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// This process's name in leases.
    owner: Arc<str>,
    /// Whether other processes share the stores (PostgreSQL): runs are then created leased,
    /// written under their lease, and ended by another instance when the lease expires.
    shared: bool,
    lease: Duration,
    cancel_grace: Duration,
    /// Handed to every run's sink.
    sink_limits: SinkLimits,
    /// The last write probe of [`Runtime::check_writable`].
    write_probe: tokio::sync::Mutex<Option<WriteProbe>>,
    /// See [`RuntimeBuilder::max_configuration_fields`].
    max_configuration_fields: usize,
}

/// The answer of a write probe: when it was made, and its error (kind and message) if it failed.
#[derive(Debug, Clone)]
struct WriteProbe {
    at: std::time::Instant,
    failed: Option<(std::io::ErrorKind, String)>,
}

/// How long a write probe's answer stands (readiness checks come every few seconds).
const WRITE_PROBE_TTL: Duration = Duration::from_secs(1);

/// What a write probe writes: about one batch of events, so that a disk with a few bytes left
/// does not count as writable.
const WRITE_PROBE_BYTES: usize = 64 * 1024;

/// The embedded ade: create runs, follow their events, cancel them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// Configures a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The dispatcher (for direct subscriptions and statistics).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// Where document bytes and run outputs are kept.
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blob_store
    }

    /// The run store.
    pub fn run_store(&self) -> &Arc<dyn RunStore> {
        &self.inner.runs
    }

    /// Whether the data directory takes writes now: writes (and removes) a 64 KiB probe file,
    /// at most once a second (the answer is kept that long). This is what readiness asks: while
    /// the disk is full, runs cannot be recorded and uploads cannot be kept; it answers `Ok`
    /// again by itself once space is freed.
    ///
    /// # Errors
    /// The probe's I/O error (`StorageFull` for a full disk).
    pub async fn check_writable(&self) -> std::io::Result<()> {
        let mut probe = self.inner.write_probe.lock().await;
        let failed = match &*probe {
            Some(last) if last.at.elapsed() < WRITE_PROBE_TTL => last.failed.clone(),
            _ => {
                let path = self.inner.data_dir.join(".ade-write-probe");
                let written = tokio::fs::write(&path, vec![0u8; WRITE_PROBE_BYTES]).await;
                let _ = tokio::fs::remove_file(&path).await;
                let failed = written.err().map(|e| (e.kind(), e.to_string()));
                *probe = Some(WriteProbe { at: std::time::Instant::now(), failed: failed.clone() });
                failed
            }
        };
        match failed {
            None => Ok(()),
            Some((kind, message)) => Err(std::io::Error::new(kind, message)),
        }
    }

    /// The configurations known to the runtime, sorted by id.
    pub fn configurations(&self) -> Vec<Arc<Configuration>> {
        let configurations = self.inner.configurations.read().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<_> = configurations.values().cloned().collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// One configuration.
    pub fn configuration(&self, id: &ConfigurationId) -> Option<Arc<Configuration>> {
        self.inner.configurations.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Whether [`put_configuration`](Self::put_configuration) would take `configuration`.
    ///
    /// # Errors
    /// [`Error::Config`] when no registered engine runs it, or when it has more fields than
    /// [`RuntimeBuilder::max_configuration_fields`].
    pub fn check_configuration(&self, configuration: &Configuration) -> Result<()> {
        let invalid = |reason: String| Error::Config { path: PathBuf::from(configuration.id.as_str()), reason };
        let name = configuration.engine.engine_name();
        let Some(entry) = self.inner.engines.get(name) else {
            return Err(invalid(execute::missing_engine_message(name)));
        };
        check_fields_of(configuration, self.inner.max_configuration_fields)?;
        entry.engine.check(configuration).map_err(invalid)
    }

    /// Adds or replaces a configuration.
    ///
    /// # Errors
    /// As [`check_configuration`](Self::check_configuration).
    pub fn put_configuration(&self, configuration: Configuration) -> Result<()> {
        self.check_configuration(&configuration)?;
        let mut configurations = self.inner.configurations.write().unwrap_or_else(|p| p.into_inner());
        configurations.insert(configuration.id.clone(), Arc::new(configuration));
        Ok(())
    }

    /// The directory of a run (outputs below it; the NDJSON log too).
    pub fn run_dir(&self, workspace_id: &WorkspaceId, run_id: RunId) -> PathBuf {
        self.inner.data_dir.join("workspaces").join(workspace_id.as_str()).join("runs").join(run_id.to_string())
    }

    /// Creates a run: stores it as `queued`, writes `run.queued` (sequence 1), and queues it.
    ///
    /// # Errors
    /// [`Error::UnknownConfiguration`], [`Error::UnknownDocument`] (also for a document of another
    /// workspace), [`Error::IdempotencyConflict`], store errors.
    pub async fn create_run(&self, request: CreateRun) -> Result<Created> {
        let configuration = self
            .configuration(&request.configuration_id)
            .ok_or_else(|| Error::UnknownConfiguration(request.configuration_id.clone()))?;
        for document_id in &request.document_ids {
            if self.inner.runs.get_document(Some(&request.workspace_id), *document_id).await?.is_none() {
                return Err(Error::UnknownDocument(*document_id));
            }
        }
        let id = RunId::new();
        let run = Run {
            id,
            workspace_id: request.workspace_id.clone(),
            configuration_id: request.configuration_id.clone(),
            configuration_version: configuration_version(&configuration),
            build_id: None,
            status: RunStatus::Queued,
            mode: request.mode,
            document_ids: request.document_ids.clone(),
            options: request.options.clone(),
            created_at: Timestamp::now(),
            started_at: None,
            completed_at: None,
            exit_code: None,
            failure: None,
            last_sequence: 1,
            summary: None,
            links: RunLinks::for_run(id),
        };
        // Take the run's one writer before the run exists anywhere, so no worker can write first.
        // Other processes' workers cannot see that writer: there the run is created under this
        // process's lease, given up once `run.queued` is written.
        let writer = self.inner.dispatcher.open_run(self.writer_context(&run)).await?;
        let created = if self.inner.shared {
            let (owner, lease) = (&self.inner.owner, self.inner.lease);
            self.inner.runs.create_run_leased(&run, request.idempotency.as_ref(), owner, lease).await?
        } else {
            self.inner.runs.create_run(&run, request.idempotency.as_ref()).await?
        };
        match created {
            CreateOutcome::Created(run) => {
                let queued = RunQueued {
                    mode: request.mode,
                    options: request.options,
                    queued_by: request.queued_by,
                    ..RunQueued::default()
                };
                live::attach(self, &run, &writer);
                if let Err(error) = writer.emit_durable(EventSource::Api, queued).await {
                    live::forget(self, id);
                    return Err(error);
                }
                if self.inner.shared {
                    // Whichever instance claims it opens its own writer.
                    live::forget(self, id);
                    drop(writer);
                    if let Err(error) = self.inner.runs.release_lease(id, &self.inner.owner).await {
                        // The run exists and `run.queued` is written: it is claimed when the
                        // creation lease expires instead.
                        tracing::warn!(run_id = %id, %error, "could not release a new run's lease");
                    }
                } else {
                    lock(&self.inner.pending_writers).insert(id, writer);
                    self.inner.pending_ready.notify_waiters();
                }
                metrics::gauge!(crate::metrics::RUNS_ACTIVE, "status" => "queued").increment(1.0);
                self.inner.work.notify_one();
                Ok(Created::New(run))
            }
            CreateOutcome::Existing(run) => Ok(Created::Existing(run)),
            CreateOutcome::KeyConflict => Err(Error::IdempotencyConflict),
        }
    }

    /// A run, `None` when absent or (with `workspace_id`) in another workspace. `last_sequence` is
    /// the log's current end, and a run whose log ends with `run.completed` is shown finished even
    /// in the instant before its row is updated.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_run(&self, workspace_id: Option<&WorkspaceId>, id: RunId) -> Result<Option<Run>> {
        let Some(mut run) = self.inner.runs.get_run(workspace_id, id).await? else { return Ok(None) };
        if run.status.is_terminal() {
            return Ok(Some(run));
        }
        // The log is the source of truth: a `run.completed` persisted a moment before the row is
        // updated already makes the run finished.
        let key = RunKey::new(run.workspace_id.clone(), id);
        let tail = self.inner.dispatcher.store().tail(&key).await?;
        if let Some(completion) = recovery::completion_in_log(self, &run, tail).await? {
            run.status = completion.status;
            run.completed_at = Some(completion.completed_at);
            run.exit_code = completion.exit_code;
            run.failure = completion.failure;
            run.summary = Some(completion.summary);
            run.last_sequence = completion.last_sequence;
        } else {
            run.last_sequence = tail.last_sequence;
            run.summary = live::get(self, id).map(|live| live.summary(None));
        }
        Ok(Some(run))
    }

    /// Runs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidCursor`], store errors.
    pub async fn list_runs(&self, filter: &RunFilter, limit: usize, cursor: Option<&str>) -> Result<RunPage> {
        self.inner.runs.list_runs(filter, limit, cursor).await
    }

    /// The events of a run after `after`, replayed then live, ending after `run.completed`.
    ///
    /// # Errors
    /// [`Error::RunNotFound`] when the run does not exist (in `workspace_id`); store errors.
    pub async fn subscribe(&self, workspace_id: Option<&WorkspaceId>, id: RunId, after: After) -> Result<EventStream> {
        let run = self.inner.runs.get_run(workspace_id, id).await?.ok_or(Error::RunNotFound(id))?;
        self.inner.dispatcher.subscribe(RunKey::new(run.workspace_id, id), after).await
    }

    /// Asks a run to stop; it ends `cancelled` soon after. Returns the run as it is now.
    ///
    /// # Errors
    /// [`Error::RunNotFound`]; [`Error::AlreadyTerminal`] when it has already ended.
    pub async fn cancel(&self, workspace_id: Option<&WorkspaceId>, id: RunId) -> Result<Run> {
        // As `get_run` sees it: a run whose `run.completed` is persisted has ended, even in the
        // instant before its row says so.
        let run = self.get_run(workspace_id, id).await?.ok_or(Error::RunNotFound(id))?;
        if run.status.is_terminal() {
            return Err(Error::AlreadyTerminal(id));
        }
        if self.stop_active(id) {
            return Ok(run);
        }
        if self.inner.shared {
            return self.cancel_shared(run).await;
        }
        // Not executing here: if nobody in this process handles it, finish it now.
        if let Some(_in_flight) = execute::InFlight::claim(self, id) {
            return execute::cancel_queued(self, run.clone()).await;
        }
        // A worker has just claimed it: it checks for cancellation once it has registered the
        // run as active; if it registered meanwhile, stop it here.
        lock(&self.inner.cancel_requests).insert(id);
        self.stop_active(id);
        Ok(run)
    }

    /// Cancels a run that another process may hold: a queued run nobody holds is claimed and
    /// ended here; otherwise its holder is asked (it stops the run, or ends it when it starts).
    async fn cancel_shared(&self, run: Run) -> Result<Run> {
        // The lease decides, not this process's in-flight set: a worker here may have claimed the
        // run a moment ago, and must not find it taken in-process and drop it.
        if let Some(claimed) = self.inner.runs.claim_run(run.id, &self.inner.owner, self.inner.lease).await? {
            let _in_flight = execute::InFlight::claim(self, run.id);
            return execute::cancel_queued(self, claimed).await;
        }
        self.inner.runs.request_cancel(run.id).await?;
        Ok(run)
    }

    /// What a writer of `run` is opened with: in shared stores, this process's lease, so that
    /// its appends stop the moment another instance takes the run over.
    fn writer_context(&self, run: &Run) -> RunContext {
        RunContext::new(run.workspace_id.clone(), run.configuration_id.clone(), run.id)
            .with_lease_owner(self.inner.shared.then(|| self.inner.owner.clone()))
    }

    /// Reacts to what other processes announce (shared stores), until shutdown.
    async fn follow_announcements(&self, mut announcements: crate::store::Announcements) {
        use futures::StreamExt;

        use crate::store::Announcement;
        loop {
            let announcement = tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                next = announcements.next() => match next {
                    Some(announcement) => announcement,
                    None => return,
                },
            };
            match announcement {
                Announcement::Appended { run_id, last_sequence } => {
                    self.inner.dispatcher.announced(run_id, last_sequence);
                }
                Announcement::Work => self.inner.work.notify_one(),
                Announcement::CancelRequested(id) => {
                    // Between its claim and its start here, the worker looks at the requests.
                    if !self.stop_active(id) && lock(&self.inner.in_flight).contains(&id) {
                        lock(&self.inner.cancel_requests).insert(id);
                        self.stop_active(id);
                    }
                }
                Announcement::Resync => {
                    self.inner.dispatcher.resync();
                    self.inner.work.notify_one();
                }
            }
        }
    }

    /// Stops an executing run (reason: cancelled); `false` when it is not executing here.
    fn stop_active(&self, id: RunId) -> bool {
        match lock(&self.inner.active).get(&id) {
            Some(active) => {
                lock(&active.reason).get_or_insert(StopReason::Cancelled);
                active.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Begins the shutdown without waiting: from now on no run starts here (workers claim none;
    /// queued runs stay queued for the next start, or for another instance on shared stores), and
    /// the reaper of abandoned runs stops. Executing runs go on; [`shutdown`](Self::shutdown)
    /// waits for them. A server calls this the moment it is told to stop, before it drains its
    /// connections.
    pub fn stop_claiming(&self) {
        self.inner.shutdown.cancel();
    }

    /// Stops taking new runs, waits for the executing ones to finish, then gives the event
    /// exporters up to [`ExportOptions::shutdown_grace`] to deliver what was persisted.
    pub async fn shutdown(&self) {
        self.stop_claiming();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        if let Some(exporters) = &self.inner.exporters {
            exporters.shutdown().await;
        }
    }

    /// How often idle workers (and the reaper of abandoned runs) look at the store unasked.
    fn poll_interval(&self) -> Duration {
        if self.inner.shared { (self.inner.lease / 4).max(Duration::from_millis(50)) } else { self.inner.lease }
    }

    /// The worker loop: claim, execute, repeat.
    async fn work(&self) {
        loop {
            let work = self.inner.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            if self.inner.shutdown.is_cancelled() {
                return;
            }
            match self.inner.runs.claim_queued(&self.inner.owner, self.inner.lease).await {
                Ok(Some(run)) if self.inner.shutdown.is_cancelled() => {
                    // Claimed while the shutdown began: it stays queued (a released claim; the
                    // next start drops this process's claims anyway).
                    if let Err(error) = self.inner.runs.release_lease(run.id, &self.inner.owner).await {
                        tracing::warn!(run_id = %run.id, %error, "could not release a claim");
                    }
                    return;
                }
                Ok(Some(run)) => {
                    // More may be waiting: let another worker look too.
                    self.inner.work.notify_one();
                    if let Some(in_flight) = execute::InFlight::claim(self, run.id) {
                        execute::execute(self, run, in_flight).await;
                    } else if self.inner.shared {
                        // Something here handles it already; never leave it stranded under our
                        // lease.
                        if let Err(error) = self.inner.runs.release_lease(run.id, &self.inner.owner).await {
                            tracing::warn!(run_id = %run.id, %error, "could not release a claim");
                        }
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = &mut work => {}
                        () = self.inner.shutdown.cancelled() => return,
                        // Leases expire without a signal; announcements can be missed.
                        () = tokio::time::sleep(self.poll_interval()) => {}
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "could not claim queued runs");
                    tokio::select! {
                        () = self.inner.shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}

/// Refuses a configuration with more than `max_fields` fields, naming it and the limit.
fn check_fields_of(configuration: &Configuration, max_fields: usize) -> Result<()> {
    configuration
        .check_field_count(max_fields)
        .map_err(|reason| Error::Config { path: PathBuf::from(configuration.id.as_str()), reason })
}

#[cfg(test)]
mod tests;
