//! [`RunWriter`]: the single writer of a run, and the commit task behind it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use ulid::Generator;

use super::{Dispatcher, Hub, lock};
use crate::error::{Error, Result};
use crate::event::{
    BuildId, ConfigurationId, Envelope, EventId, EventPayload, EventSource, RunId, StoredEvent, Timestamp, WorkspaceId,
};
use crate::metrics;
use crate::store::{Durability, RunKey};

/// The ids every event of a run carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    /// The run's workspace.
    pub workspace_id: WorkspaceId,
    /// The run's configuration.
    pub configuration_id: ConfigurationId,
    /// The run.
    pub run_id: RunId,
    /// The run's build, once it has one.
    pub build_id: Option<BuildId>,
    /// The lease the writer appends under (stores shared by several processes): once another
    /// process takes the run over, the store refuses this writer's batches.
    pub lease_owner: Option<Arc<str>>,
}

impl RunContext {
    /// The context of `run_id`, without a build yet.
    pub fn new(workspace_id: WorkspaceId, configuration_id: ConfigurationId, run_id: RunId) -> Self {
        Self { workspace_id, configuration_id, run_id, build_id: None, lease_owner: None }
    }

    /// Appending only while `owner` holds the run's lease.
    #[must_use]
    pub fn with_lease_owner(mut self, owner: Option<Arc<str>>) -> Self {
        self.lease_owner = owner;
        self
    }

    /// The store key of the run's log.
    pub fn key(&self) -> RunKey {
        RunKey::new(self.workspace_id.clone(), self.run_id)
    }
}

/// An event stamped and waiting for the store. `epoch` changes when a write fails, so events
/// stamped before the failure (whose sequences are handed out again) are dropped, not written.
struct Pending {
    epoch: u64,
    event: Arc<StoredEvent>,
    /// When set, the event is published only once this resolves (see [`RunWriter::emit_gated`]).
    gate: Option<oneshot::Receiver<()>>,
}

/// Holds back the publication of an event persisted by [`RunWriter::emit_gated`]; dropping it
/// lets the event go to subscribers.
#[derive(Debug)]
pub struct PublishGate {
    _open: oneshot::Sender<()>,
}

/// Why events of a run could not be persisted: the first write the store refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteFailure {
    /// The first sequence that was not persisted (it is handed out again).
    pub first_lost: u64,
    /// The store's error.
    pub reason: String,
    /// Whether the store refused for lack of space (disk or quota full).
    pub out_of_space: bool,
}

impl WriteFailure {
    fn error(&self, run_id: RunId) -> Error {
        Error::WriteFailed {
            run_id,
            first_lost: self.first_lost,
            reason: self.reason.clone(),
            out_of_space: self.out_of_space,
        }
    }
}

/// What the writer has stamped.
#[derive(Debug)]
struct Stamping {
    context: RunContext,
    next_sequence: u64,
    epoch: u64,
    ids: Generator,
    completed: bool,
    /// Set by the first failed write, for good: from then on the run's log may only be closed
    /// (`run.error`, `run.completed`), so no event ever follows a hole in what the run emitted.
    failed: Option<WriteFailure>,
    /// The epoch and sequence of the last event emitted: what [`RunWriter::flush`] waits for.
    /// (The next sequence and the current epoch would not do: once a failed write has handed
    /// sequences out again, they no longer say that the events just emitted were dropped.)
    last_emitted: (u64, u64),
    /// Reused serialization buffer: each event's JSON is then copied into an exact-size `Bytes`.
    scratch: Vec<u8>,
}

/// What the store has acknowledged.
#[derive(Debug, Clone, Default)]
struct Durable {
    /// The last persisted (and published) sequence.
    sequence: u64,
    /// Epochs that ended in a failed write: the first sequence lost, and why.
    failures: BTreeMap<u64, WriteFailure>,
}

/// Sees each event of a run once it is persisted, in sequence order, before a
/// [`RunWriter::flush`] covering it returns and before subscribers get it. The runtime folds a
/// run's summary this way instead of reading its log back at the end.
pub trait PersistedObserver: Send + Sync + std::fmt::Debug {
    /// Called on the run's commit task, once per persisted event: keep it short.
    fn persisted(&self, event: &Envelope);
}

#[derive(Debug)]
struct Shared {
    stamping: Mutex<Stamping>,
    durable: watch::Sender<Durable>,
    observer: OnceLock<Arc<dyn PersistedObserver>>,
}

/// The one writer of a run: stamps events and hands them to the run's commit task.
///
/// [`emit`](Self::emit) returns as soon as the event is stamped and queued (that is what lets
/// events emitted close together share one write); [`flush`](Self::flush) waits until everything
/// emitted so far is persisted and published. An event is *acknowledged* once a `flush` covering it
/// returned `Ok`; acknowledged events are never lost or reordered.
#[derive(Debug)]
pub struct RunWriter {
    key: RunKey,
    /// The sequence the first event emitted through this writer gets.
    first_sequence: u64,
    max_event_bytes: usize,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Pending>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("epoch", &self.epoch).field("sequence", &self.event.sequence()).finish()
    }
}

pub(super) async fn open(dispatcher: Dispatcher, context: RunContext) -> Result<RunWriter> {
    let key = context.key();
    {
        let mut writers = lock(&dispatcher.inner.writers);
        if writers.contains_key(&key.run_id) {
            return Err(Error::WriterBusy(key.run_id));
        }
        writers.insert(key.run_id, ());
    }
    let registered = WriterRegistration { dispatcher: dispatcher.clone(), run_id: key.run_id };
    let lease_owner = context.lease_owner.clone();
    let tail = dispatcher.inner.store.tail(&key).await?;
    if tail.terminal {
        return Err(Error::RunComplete(key.run_id));
    }
    let shared = Arc::new(Shared {
        stamping: Mutex::new(Stamping {
            context,
            next_sequence: tail.last_sequence + 1,
            epoch: 0,
            ids: Generator::new(),
            completed: false,
            failed: None,
            last_emitted: (0, tail.last_sequence),
            scratch: Vec::with_capacity(1024),
        }),
        durable: watch::Sender::new(Durable { sequence: tail.last_sequence, failures: BTreeMap::new() }),
        observer: OnceLock::new(),
    });
    let (queue, pending) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(dispatcher.inner.options.max_pending));
    let hub = dispatcher.hub(&key, tail.last_sequence);
    let committer = Committer {
        dispatcher: dispatcher.clone(),
        key: key.clone(),
        lease_owner,
        shared: shared.clone(),
        hub,
        permits: permits.clone(),
        _registration: registered,
    };
    tokio::spawn(committer.run(pending));
    let max_event_bytes = dispatcher.inner.options.max_event_bytes;
    Ok(RunWriter { key, first_sequence: tail.last_sequence + 1, max_event_bytes, shared, queue, permits })
}

/// Unregisters the run's writer when the commit task ends, so a new writer can open it.
#[derive(Debug)]
struct WriterRegistration {
    dispatcher: Dispatcher,
    run_id: RunId,
}

impl Drop for WriterRegistration {
    fn drop(&mut self) {
        lock(&self.dispatcher.inner.writers).remove(&self.run_id);
        self.dispatcher.inner.writer_released.notify_waiters();
    }
}

impl RunWriter {
    /// The run this writer writes.
    pub fn key(&self) -> &RunKey {
        &self.key
    }

    /// Sets the build id stamped on this and every later event.
    pub fn set_build_id(&self, build_id: BuildId) {
        lock(&self.shared.stamping).context.build_id = Some(build_id);
    }

    /// The ids stamped on events.
    pub fn context(&self) -> RunContext {
        lock(&self.shared.stamping).context.clone()
    }

    /// The sequence the next event will get.
    pub fn next_sequence(&self) -> u64 {
        lock(&self.shared.stamping).next_sequence
    }

    /// Has `observer` see every event this writer persists. Only before the writer's first emit,
    /// so that it sees all of them; returns `false` (and changes nothing) otherwise or when the
    /// writer already has an observer.
    pub fn observe(&self, observer: Arc<dyn PersistedObserver>) -> bool {
        let stamping = lock(&self.shared.stamping);
        stamping.next_sequence == self.first_sequence && self.shared.observer.set(observer).is_ok()
    }

    /// The first write of this writer that the store refused, if any. Once one failed, the writer
    /// accepts only `run.error` and `run.completed`: the run can be closed, as failed, but nothing
    /// else may follow the events that were lost.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        lock(&self.shared.stamping).failed.clone()
    }

    /// Resolves once a write of this writer has failed (see [`write_failure`](Self::write_failure));
    /// never, if none does.
    pub async fn write_failed(&self) {
        let mut durable = self.shared.durable.subscribe();
        if durable.wait_for(|d| !d.failures.is_empty()).await.is_err() {
            std::future::pending::<()>().await; // the commit task is gone: no write can fail now
        }
    }

    /// Whether `run.completed` was emitted and is not known to have failed: once a
    /// [`flush`](Self::flush) after it returned, whether it is persisted.
    pub fn is_completed(&self) -> bool {
        lock(&self.shared.stamping).completed
    }

    /// The sequence of the first event of this writer (the log's length when it was opened, plus one).
    pub fn first_sequence(&self) -> u64 {
        self.first_sequence
    }

    /// Stamps an event and queues it for the store; returns its sequence.
    ///
    /// Waits only when [`max_pending`](super::DispatchOptions::max_pending) events are already
    /// waiting for the store.
    ///
    /// # Errors
    /// [`Error::RunComplete`] after `run.completed` was emitted; [`Error::WriteFailed`] once a
    /// write has failed, for anything but `run.error` and `run.completed`; [`Error::Json`] when the
    /// payload cannot be serialized; [`Error::WriterClosed`] when the commit task is gone.
    pub async fn emit(&self, source: EventSource, payload: impl Into<EventPayload>) -> Result<u64> {
        self.emit_inner(source, payload.into(), None).await
    }

    /// [`emit`](Self::emit), but subscribers get the event only after the returned gate is
    /// dropped, while [`flush`](Self::flush) returns as soon as it is persisted. The runtime
    /// uses this to record a run as finished between persisting its `run.completed` and
    /// publishing it, so whoever sees `run.completed` finds the run finished.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub async fn emit_gated(
        &self,
        source: EventSource,
        payload: impl Into<EventPayload>,
    ) -> Result<(u64, PublishGate)> {
        let (open, gate) = oneshot::channel();
        let sequence = self.emit_inner(source, payload.into(), Some(gate)).await?;
        Ok((sequence, PublishGate { _open: open }))
    }

    async fn emit_inner(
        &self,
        source: EventSource,
        payload: EventPayload,
        gate: Option<oneshot::Receiver<()>>,
    ) -> Result<u64> {
        let permit = self.permits.acquire().await.map_err(|_| Error::WriterClosed(self.key.run_id))?;
        let mut stamping = lock(&self.shared.stamping);
        if stamping.completed {
            return Err(Error::RunComplete(self.key.run_id));
        }
        if let Some(failure) = &stamping.failed
            && !matches!(payload, EventPayload::RunError(_) | EventPayload::RunCompleted(_))
        {
            return Err(failure.error(self.key.run_id));
        }
        let sequence = stamping.next_sequence;
        let event_id = stamping.ids.generate().unwrap_or_else(|_| ulid::Ulid::generate());
        let envelope = Envelope {
            event_id: EventId::from_ulid(event_id),
            created_at: Timestamp::now(),
            sequence,
            source,
            workspace_id: stamping.context.workspace_id.clone(),
            configuration_id: stamping.context.configuration_id.clone(),
            run_id: stamping.context.run_id,
            build_id: stamping.context.build_id,
            payload,
        };
        let terminal = envelope.is_terminal();
        let event = Arc::new(StoredEvent::serialize_with(envelope, &mut stamping.scratch)?);
        if event.json().len() > self.max_event_bytes {
            return Err(Error::EventTooLarge { size: event.json().len(), limit: self.max_event_bytes });
        }
        // Queued under the lock, so the queue's order is the sequence order.
        let pending = Pending { epoch: stamping.epoch, event, gate };
        self.queue.send(pending).map_err(|_| Error::WriterClosed(self.key.run_id))?;
        permit.forget(); // given back by the commit task once the event is written
        stamping.last_emitted = (stamping.epoch, sequence);
        stamping.next_sequence += 1;
        stamping.completed |= terminal;
        Ok(sequence)
    }

    /// Waits until every event emitted so far is persisted (and published, but for a gated one);
    /// returns the last persisted sequence.
    ///
    /// # Errors
    /// [`Error::WriteFailed`] when some of those events could not be persisted: none of them from
    /// `first_lost` on was stored or published, and their sequences are handed out again, so the
    /// log stays contiguous. The writer stays usable (for example to emit a failing
    /// `run.completed`).
    pub async fn flush(&self) -> Result<u64> {
        let (epoch, target) = lock(&self.shared.stamping).last_emitted;
        let mut durable = self.shared.durable.subscribe();
        let outcome = durable
            .wait_for(|d| d.failures.contains_key(&epoch) || d.sequence >= target)
            .await
            .map_err(|_| Error::WriterClosed(self.key.run_id))?;
        match outcome.failures.get(&epoch) {
            Some(failure) if target >= failure.first_lost => Err(failure.error(self.key.run_id)),
            _ => Ok(target),
        }
    }

    /// [`emit`](Self::emit), then [`flush`](Self::flush): returns once the event is persisted.
    ///
    /// # Errors
    /// As `emit` and `flush`.
    pub async fn emit_durable(&self, source: EventSource, payload: impl Into<EventPayload>) -> Result<u64> {
        let sequence = self.emit(source, payload).await?;
        self.flush().await?;
        Ok(sequence)
    }
}

/// The commit task of one run: batches, appends, publishes.
struct Committer {
    dispatcher: Dispatcher,
    key: RunKey,
    lease_owner: Option<Arc<str>>,
    shared: Arc<Shared>,
    hub: Arc<Hub>,
    permits: Arc<Semaphore>,
    _registration: WriterRegistration,
}

impl Committer {
    async fn run(self, mut pending: mpsc::UnboundedReceiver<Pending>) {
        let options = self.dispatcher.inner.options.clone();
        let mut batch: Vec<Pending> = Vec::new();
        let mut events: Vec<Arc<StoredEvent>> = Vec::new();
        let mut gates: Vec<(usize, oneshot::Receiver<()>)> = Vec::new();
        loop {
            batch.clear();
            if pending.recv_many(&mut batch, options.max_batch).await == 0 {
                break; // the writer is gone and everything it queued is handled
            }
            let taken = batch.len();
            let epoch = lock(&self.shared.stamping).epoch;
            events.clear();
            gates.clear();
            for pending in batch.drain(..).filter(|p| p.epoch == epoch) {
                if let Some(gate) = pending.gate {
                    gates.push((events.len(), gate));
                }
                events.push(pending.event);
            }
            let completed = !events.is_empty() && self.commit(&events, &mut gates, options.durability, epoch).await;
            self.permits.add_permits(taken);
            if completed {
                break;
            }
        }
        self.dispatcher.inner.store.release(&self.key).await;
    }

    /// Appends and publishes one batch; returns whether it ended the run.
    async fn commit(
        &self,
        events: &[Arc<StoredEvent>],
        gates: &mut Vec<(usize, oneshot::Receiver<()>)>,
        durability: Durability,
        epoch: u64,
    ) -> bool {
        let terminal = events.last().is_some_and(|e| e.is_terminal());
        let durability = if terminal { Durability::Fsync } else { durability };
        let started = Instant::now();
        let store = &self.dispatcher.inner.store;
        let appended = match &self.lease_owner {
            Some(owner) => store.append_leased(&self.key, events, durability, owner).await,
            None => store.append(&self.key, events, durability).await,
        };
        ::metrics::histogram!(metrics::EVENT_APPEND_SECONDS).record(started.elapsed().as_secs_f64());
        match appended {
            Ok(()) => {
                if let Some(observer) = self.shared.observer.get() {
                    for envelope in events.iter().filter_map(|e| e.envelope().ok()) {
                        observer.persisted(envelope);
                    }
                }
                let last = events.last().map_or(0, |e| e.sequence());
                self.shared.durable.send_modify(|d| d.sequence = last);
                // Published as one batch (one wake-up of each subscriber), except where a gate
                // holds an event back: what comes before it goes out first.
                let mut gates = gates.drain(..).peekable();
                let mut unpublished = 0;
                for index in 0..events.len() {
                    if let Some((_, gate)) = gates.next_if(|(at, _)| *at == index) {
                        self.hub.publish(&events[unpublished..index]);
                        unpublished = index;
                        // Opened, or dropped: either way the event may go out now.
                        let _ = gate.await;
                    }
                }
                self.hub.publish(&events[unpublished..]);
                self.dispatcher.appended(&self.key, last);
                count_events(events);
                terminal
            }
            Err(error) => {
                ::metrics::counter!(metrics::EVENT_STORE_ERRORS_TOTAL).increment(1);
                let first_lost = events.first().map_or(0, |e| e.sequence());
                if let Some(suppressed) = WRITE_ERRORS_LOGGED.allow() {
                    tracing::error!(run_id = %self.key.run_id, first_lost, %error, suppressed, "events could not be persisted");
                }
                let failure =
                    WriteFailure { first_lost, reason: error.to_string(), out_of_space: error.is_out_of_space() };
                // Hand the lost sequences out again: the log stays contiguous and nothing that a
                // subscriber could have seen is ever replaced.
                let mut stamping = lock(&self.shared.stamping);
                stamping.epoch = epoch + 1;
                stamping.next_sequence = first_lost;
                stamping.completed = false;
                stamping.failed.get_or_insert_with(|| failure.clone());
                self.shared.durable.send_modify(|d| {
                    d.failures.insert(epoch, failure);
                });
                false
            }
        }
    }
}

/// Failed appends are logged at most once a second, whatever the number of runs failing together
/// (a full disk fails every run's writes at once).
static WRITE_ERRORS_LOGGED: crate::log_limit::LogLimit = crate::log_limit::LogLimit::every_second();

/// `ade_events_total{type,source}` for a batch, one increment per label pair.
fn count_events(events: &[Arc<StoredEvent>]) {
    let mut counts: Vec<(&'static str, &'static str, u64)> = Vec::new();
    for envelope in events.iter().filter_map(|e| e.envelope().ok()) {
        let labels = (metrics::type_label(&envelope.payload), metrics::source_label(envelope.source));
        match counts.iter_mut().find(|(t, s, _)| (*t, *s) == labels) {
            Some((_, _, n)) => *n += 1,
            None => counts.push((labels.0, labels.1, 1)),
        }
    }
    for (event_type, source, n) in counts {
        ::metrics::counter!(metrics::EVENTS_TOTAL, "type" => event_type, "source" => source).increment(n);
    }
}
