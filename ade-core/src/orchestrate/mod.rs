//! The runtime (SPEC §2.3–§3, §6, §8): runs from queue to `run.completed`.
//!
//! [`Runtime`] is the embedding entry point: it owns the stores, the dispatcher, the registered
//! engines and configurations, a queue served by workers, the build cache, cancellation, timeouts,
//! and recovery of runs a dead process left behind.

mod builder;
mod builds;
mod documents;
mod execute;
mod live;
mod recovery;
mod stores;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::run::Created;
use builder::EngineEntry;
pub use builder::RuntimeBuilder;
pub use documents::{content_type_for, sanitize_filename};

use crate::blob::BlobStore;
use crate::config::Configuration;
use crate::coordinate::{Announcement, Announcements, Coordinator};
use crate::dispatch::{After, Dispatcher, RunContext, RunWriter, lock};
use crate::engine::{SinkLimits, configuration_version};
use crate::error::{Error, Result};
use crate::event::{ConfigurationId, DocumentId, EventSource, QueuedBy, RunId, RunQueued, Timestamp, WorkspaceId};
use crate::export::Exporters;
use crate::run::{Run, RunLinks, RunMode, RunOptions, RunStatus};
use crate::store::{CreateOutcome, EventStream, IdempotencyKey, RunFilter, RunKey, RunPage, RunStore};

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
    /// The event exporters' delivery tasks.
    exporters: Arc<Exporters>,
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
    /// Present when other processes share the stores (PostgreSQL): runs are then created leased,
    /// written under their lease, claimed by any instance, and ended by another instance when
    /// their lease expires.
    coordinator: Option<Arc<dyn Coordinator>>,
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
        let created = if let Some(coordinator) = &self.inner.coordinator {
            let (owner, lease) = (&self.inner.owner, self.inner.lease);
            coordinator.create_run(&run, request.idempotency.as_ref(), owner, lease).await?
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
                if let Some(coordinator) = &self.inner.coordinator {
                    // Whichever instance claims it opens its own writer.
                    live::forget(self, id);
                    drop(writer);
                    if let Err(error) = coordinator.release(id, &self.inner.owner).await {
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
        if let Some(coordinator) = &self.inner.coordinator {
            return self.cancel_shared(coordinator.as_ref(), run).await;
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
    async fn cancel_shared(&self, coordinator: &dyn Coordinator, run: Run) -> Result<Run> {
        // The lease decides, not this process's in-flight set: a worker here may have claimed the
        // run a moment ago, and must not find it taken in-process and drop it.
        if let Some(claimed) = coordinator.claim_run(run.id, &self.inner.owner, self.inner.lease).await? {
            let _in_flight = execute::InFlight::claim(self, run.id);
            return execute::cancel_queued(self, claimed).await;
        }
        coordinator.request_cancel(run.id).await?;
        Ok(run)
    }

    /// What a writer of `run` is opened with: in shared stores, this process's lease, so that
    /// its appends stop the moment another instance takes the run over.
    fn writer_context(&self, run: &Run) -> RunContext {
        RunContext::new(run.workspace_id.clone(), run.configuration_id.clone(), run.id)
            .with_lease_owner(self.inner.coordinator.is_some().then(|| self.inner.owner.clone()))
    }

    /// Reacts to what other processes announce (shared stores), until shutdown.
    async fn follow_announcements(&self, mut announcements: Announcements) {
        use futures::StreamExt;

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

    /// Registers an [`EventExporter`](crate::export::EventExporter) on the running runtime, as
    /// [`RuntimeBuilder::exporter`] does before it starts: every persisted event of every run
    /// (those already stored included, from the exporter's cursors) is delivered to it.
    ///
    /// # Errors
    /// [`Error::Config`] when an exporter of that name is registered; [`Error::ShuttingDown`].
    pub fn add_exporter(&self, exporter: Arc<dyn crate::export::EventExporter>) -> Result<()> {
        self.inner.exporters.add(exporter)
    }

    /// Stops delivering to the exporter named `name`; whether one was registered. Its cursors
    /// stay in the run store: added again under that name, it resumes where it stopped (a batch
    /// it was being given when removed comes again).
    pub fn remove_exporter(&self, name: &str) -> bool {
        self.inner.exporters.remove(name)
    }

    /// Whether this runtime is executing `id` now (building or running it): with several
    /// runtimes on one backend, which one holds the run.
    pub fn is_executing(&self, id: RunId) -> bool {
        lock(&self.inner.active).contains_key(&id)
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
        self.inner.exporters.shutdown().await;
    }

    /// How often idle workers (and the reaper of abandoned runs) look at the store unasked.
    fn poll_interval(&self) -> Duration {
        if self.inner.coordinator.is_some() {
            (self.inner.lease / 4).max(Duration::from_millis(50))
        } else {
            self.inner.lease
        }
    }

    /// Gives a queued run this process claimed back to the other instances (nothing to do alone).
    async fn release_claim(&self, id: RunId) {
        let Some(coordinator) = &self.inner.coordinator else { return };
        if let Err(error) = coordinator.release(id, &self.inner.owner).await {
            tracing::warn!(run_id = %id, %error, "could not release a claim");
        }
    }

    /// Whether another process asked to cancel `id` (an announcement may have been missed);
    /// never, alone, where cancels reach the run in-process.
    async fn cancel_requested_elsewhere(&self, id: RunId) -> bool {
        let Some(coordinator) = &self.inner.coordinator else { return false };
        coordinator.cancel_requested(id).await.unwrap_or(false)
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
                    // Claimed while the shutdown began: it stays queued (released for the other
                    // instances; alone, the next start drops this process's claims anyway).
                    self.release_claim(run.id).await;
                    return;
                }
                Ok(Some(run)) => {
                    // More may be waiting: let another worker look too.
                    self.inner.work.notify_one();
                    if let Some(in_flight) = execute::InFlight::claim(self, run.id) {
                        execute::execute(self, run, in_flight).await;
                    } else {
                        // Something here handles it already; never leave it stranded under our
                        // lease.
                        self.release_claim(run.id).await;
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
