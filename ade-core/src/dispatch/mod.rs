//! The dispatcher (SPEC §5): the only place that stamps events, and the fan-out of each run's log.
//!
//! - **Single writer per run.** [`Dispatcher::open_run`] hands out one [`RunWriter`] per run; it
//!   continues from the stored last sequence.
//! - **Persist, then publish.** A writer's events go to a per-run commit task that appends them to
//!   the [`EventStore`] in batches (group commit: whatever was emitted while the previous batch was
//!   being written goes in the next one), and only then publishes them to subscribers.
//! - **Fan-out.** Each event is serialized once ([`StoredEvent`]) and shared by every subscriber
//!   through a bounded per-run ring ([`DispatchOptions::live_buffer`]). A subscriber that falls
//!   behind the ring is not dropped and does not slow the writer: it reads the store from its last
//!   delivered sequence, then rejoins live.
//! - **Other processes' runs.** When the store is shared (PostgreSQL), a run may be written by
//!   another process. [`Dispatcher::announced`] (fed by the database's notifications) makes the
//!   run's hub read what was appended, once for all its local subscribers, and publish it.

mod ring;
mod subscription;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use futures::StreamExt;

pub use subscription::After;
pub use writer::{PersistedObserver, PublishGate, RunContext, RunWriter, WriteFailure};

use crate::error::Result;
use crate::event::{RunId, StoredEvent};
use crate::store::{Durability, EventStore, EventStream, RunKey};
pub(crate) use crate::sync::lock;

/// How the dispatcher writes and fans out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DispatchOptions {
    /// Whether each batch is fsynced (`run.completed` always is).
    pub durability: Durability,
    /// Events each run keeps for live subscribers; a subscriber further behind reads the store.
    pub live_buffer: usize,
    /// Most events written in one append.
    pub max_batch: usize,
    /// Largest serialized event (SPEC §9: 1 MiB); larger ones are refused with `EventTooLarge`.
    pub max_event_bytes: usize,
    /// Events a writer may have waiting for the store before `emit` waits (back-pressure from the
    /// store only; subscribers never slow a writer).
    pub max_pending: usize,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        // A batch is published at once, so it should be well below the ring, or every batch would
        // push subscribers off it.
        Self {
            durability: Durability::Buffered,
            live_buffer: 2048,
            max_batch: 512,
            max_event_bytes: 1024 * 1024,
            max_pending: 16 * 1024,
        }
    }
}

impl DispatchOptions {
    /// Sets [`durability`](Self::durability).
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`live_buffer`](Self::live_buffer) (at least 1).
    #[must_use]
    pub fn with_live_buffer(mut self, events: usize) -> Self {
        self.live_buffer = events.max(1);
        self
    }

    /// Sets [`max_batch`](Self::max_batch) (at least 1).
    #[must_use]
    pub fn with_max_batch(mut self, events: usize) -> Self {
        self.max_batch = events.max(1);
        self
    }

    /// Sets [`max_pending`](Self::max_pending) (at least 1).
    #[must_use]
    pub fn with_max_pending(mut self, events: usize) -> Self {
        self.max_pending = events.max(1);
        self
    }
}

/// Stamps, persists and fans out events. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn EventStore>,
    options: DispatchOptions,
    /// Live fan-out point of every run that has a writer or a subscriber in this process.
    hubs: Mutex<HashMap<RunId, Weak<Hub>>>,
    /// Runs with an open writer.
    writers: Mutex<HashMap<RunId, ()>>,
    /// Signalled whenever a run's writer is released.
    writer_released: tokio::sync::Notify,
    subscribers: AtomicUsize,
    catch_ups: AtomicU64,
    /// Told of every batch a writer of this dispatcher persisted (the event exporters).
    appended: OnceLock<Arc<dyn AppendListener>>,
}

/// Told, on a run's commit task, of each batch of the run persisted by a writer of the
/// dispatcher: keep it short.
pub(crate) trait AppendListener: Send + Sync + std::fmt::Debug {
    /// The run's log now ends at `last_sequence` (at least).
    fn appended(&self, run: &RunKey, last_sequence: u64);
}

/// One run's live fan-out: the ring of recently published events.
#[derive(Debug)]
pub(crate) struct Hub {
    ring: ring::Ring,
    key: RunKey,
    /// Every event up to here is published (or was before the hub's first follower).
    published: AtomicU64,
    /// Reading what another process appended (shared stores only).
    remote: Mutex<RemoteFeed>,
}

/// What a hub reads from the store of events another process appended.
#[derive(Debug, Default)]
struct RemoteFeed {
    /// The last sequence announced as appended.
    announced: u64,
    /// Announcements may have been missed: read once more whatever was announced.
    resync: bool,
    /// A read is under way; it loops until nothing announced is left.
    reading: bool,
}

impl Dispatcher {
    /// A dispatcher over `store`.
    pub fn new(store: Arc<dyn EventStore>, options: DispatchOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                options,
                hubs: Mutex::new(HashMap::new()),
                writers: Mutex::new(HashMap::new()),
                writer_released: tokio::sync::Notify::new(),
                subscribers: AtomicUsize::new(0),
                catch_ups: AtomicU64::new(0),
                appended: OnceLock::new(),
            }),
        }
    }

    /// The store events are persisted in.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The options in force.
    pub fn options(&self) -> &DispatchOptions {
        &self.inner.options
    }

    /// Opens the one writer of a run, continuing after its stored last sequence.
    ///
    /// # Errors
    /// [`Error::WriterBusy`](crate::Error::WriterBusy) when the run already has a writer in this
    /// dispatcher; [`Error::RunComplete`](crate::Error::RunComplete) when its log is finished; store
    /// errors reading the log's tail.
    pub async fn open_run(&self, context: RunContext) -> Result<RunWriter> {
        writer::open(self.clone(), context).await
    }

    /// [`open_run`](Self::open_run), waiting while another writer of the run (in this process)
    /// finishes instead of failing with `WriterBusy`.
    ///
    /// # Errors
    /// As [`open_run`](Self::open_run), except `WriterBusy`.
    pub async fn open_run_when_free(&self, context: RunContext) -> Result<RunWriter> {
        loop {
            let released = self.inner.writer_released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.open_run(context.clone()).await {
                Err(crate::Error::WriterBusy(_)) => released.await,
                other => return other,
            }
        }
    }

    /// Has `listener` told of every batch persisted from now on; `false` (and nothing changes)
    /// when the dispatcher already has a listener.
    pub(crate) fn listen_appended(&self, listener: Arc<dyn AppendListener>) -> bool {
        self.inner.appended.set(listener).is_ok()
    }

    /// Tells the listener, if any, that `run`'s log now ends at `last_sequence`.
    pub(crate) fn appended(&self, run: &RunKey, last_sequence: u64) {
        if let Some(listener) = self.inner.appended.get() {
            listener.appended(run, last_sequence);
        }
    }

    /// Signalled whenever a run's writer is released (to wait for one without polling).
    pub(crate) fn writer_released(&self) -> &tokio::sync::Notify {
        &self.inner.writer_released
    }

    /// The events of a run with `sequence > after`, in order, without gap or duplicate, from the
    /// store and then live; the stream ends right after `run.completed`.
    ///
    /// Subscribing to a finished run replays it and ends. A run that has not finished is followed
    /// until it does, so subscribe only to runs that exist.
    ///
    /// # Errors
    /// Store errors opening the first read; later errors arrive as stream items, after which the
    /// stream ends.
    pub async fn subscribe(&self, run: RunKey, after: After) -> Result<EventStream> {
        self.subscribe_via(run, after, "in_process").await
    }

    /// [`subscribe`](Self::subscribe), counted in `ade_subscribers{transport}` under `transport`.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub async fn subscribe_via(&self, run: RunKey, after: After, transport: &'static str) -> Result<EventStream> {
        subscription::subscribe(self.clone(), run, after.0, transport).await
    }

    /// Open subscriptions right now.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }

    /// Times a subscriber fell behind the live ring (or saw a gap) and read the store to catch up.
    pub fn catch_up_count(&self) -> u64 {
        self.inner.catch_ups.load(Ordering::Relaxed)
    }

    /// Events a run's live ring holds right now (at most [`DispatchOptions::live_buffer`]); 0 for a
    /// run nobody writes or follows.
    pub fn live_buffered(&self, run: RunId) -> usize {
        self.existing_hub(run).map_or(0, |hub| hub.ring.len())
    }

    /// Another process appended events of `run` up to `last_sequence` (shared stores): the run's
    /// local subscribers get them, read from the store once for all of them. Nothing happens for a
    /// run nobody here follows, or that a writer of this process writes (it publishes itself).
    pub fn announced(&self, run: RunId, last_sequence: u64) {
        if let Some(hub) = self.existing_hub(run)
            && !lock(&self.inner.writers).contains_key(&run)
        {
            hub.read_announced(self, Some(last_sequence));
        }
    }

    /// Announcements may have been missed (the listener reconnected): every followed run that no
    /// writer of this process writes is read from where its hub stopped.
    pub fn resync(&self) {
        let hubs: Vec<Arc<Hub>> = lock(&self.inner.hubs).values().filter_map(Weak::upgrade).collect();
        for hub in hubs {
            if !lock(&self.inner.writers).contains_key(&hub.key.run_id) {
                hub.read_announced(self, None);
            }
        }
    }

    fn existing_hub(&self, run: RunId) -> Option<Arc<Hub>> {
        lock(&self.inner.hubs).get(&run).and_then(Weak::upgrade)
    }

    /// The run's hub, created when nobody holds it; `after` is where its first follower starts.
    pub(crate) fn hub(&self, run: &RunKey, after: u64) -> Arc<Hub> {
        let mut hubs = lock(&self.inner.hubs);
        if let Some(hub) = hubs.get(&run.run_id).and_then(Weak::upgrade) {
            return hub;
        }
        let hub = Arc::new(Hub {
            ring: ring::Ring::new(self.inner.options.live_buffer),
            key: run.clone(),
            published: AtomicU64::new(after),
            remote: Mutex::new(RemoteFeed::default()),
        });
        // Forget hubs nobody holds any more, in amortized O(1).
        if hubs.len() >= 64 && hubs.len().is_power_of_two() {
            hubs.retain(|_, hub| hub.strong_count() > 0);
        }
        hubs.insert(run.run_id, Arc::downgrade(&hub));
        hub
    }
}

impl Hub {
    /// Publishes a batch of events, in sequence order: its subscribers are woken once for all.
    pub(crate) fn publish(&self, events: &[Arc<StoredEvent>]) {
        let Some(last) = events.last() else { return };
        self.ring.publish(events.iter().cloned());
        self.published.fetch_max(last.sequence(), Ordering::Relaxed);
    }

    /// Reads and publishes what was announced (up to `announced`; `None`: whatever the store
    /// has), unless a read is already under way, which then reads this too.
    fn read_announced(self: Arc<Self>, dispatcher: &Dispatcher, announced: Option<u64>) {
        {
            let mut remote = lock(&self.remote);
            match announced {
                Some(sequence) => remote.announced = remote.announced.max(sequence),
                None => remote.resync = true,
            }
            if remote.reading || (!remote.resync && remote.announced <= self.published.load(Ordering::Relaxed)) {
                return;
            }
            remote.reading = true;
        }
        let store = dispatcher.inner.store.clone();
        tokio::spawn(async move {
            loop {
                let from = {
                    let mut remote = lock(&self.remote);
                    let published = self.published.load(Ordering::Relaxed);
                    if !remote.resync && remote.announced <= published {
                        remote.reading = false;
                        return;
                    }
                    remote.resync = false;
                    published
                };
                if let Err(error) = self.publish_stored(&store, from).await {
                    // Subscribers see the next announcement's events as a gap and read the store.
                    tracing::warn!(run_id = %self.key.run_id, %error, "could not read announced events");
                    lock(&self.remote).reading = false;
                    return;
                }
            }
        });
    }

    /// Publishes the stored events after `from`, in order, in batches of what the read has ready.
    async fn publish_stored(&self, store: &Arc<dyn EventStore>, from: u64) -> Result<()> {
        let mut reads = store.read_after(&self.key, from).await?.ready_chunks(512);
        while let Some(read) = reads.next().await {
            let mut batch = Vec::with_capacity(read.len());
            let mut failed = None;
            for item in read {
                match item {
                    Ok(event) => batch.push(event),
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            // What was read before an error goes out all the same.
            self.publish(&batch);
            if let Some(error) = failed {
                return Err(error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
