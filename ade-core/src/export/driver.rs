//! The delivery task of each exporter: which runs are due, reading them after the cursor,
//! delivering, acknowledging, retrying.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{EventExporter, ExportOptions};
use crate::dispatch::AppendListener;
use crate::error::{Error, Result};
use crate::event::{RunId, StoredEvent};
use crate::log_limit::LogLimit;
use crate::store::{EventStore, RunKey, RunStore};
use crate::sync::lock;

/// Runs asked for per page of the backlog.
const BACKLOG_PAGE: usize = 256;

/// Batches a run gets per turn: a run with more goes to the back of the queue, so a run that
/// keeps producing events does not keep the exporter from the others.
const BATCHES_PER_TURN: usize = 8;

/// The exporters of a runtime and their delivery tasks (exporters may come and go while it runs).
#[derive(Debug)]
pub(crate) struct Exporters {
    drivers: RwLock<Vec<Arc<Driver>>>,
    events: Arc<dyn EventStore>,
    runs: Arc<dyn RunStore>,
    options: ExportOptions,
    tasks: TaskTracker,
    /// Cancelled at shutdown: deliver what is due, then stop.
    drain: CancellationToken,
    /// Cancelled when the grace is over: stop now.
    stop: CancellationToken,
}

impl Exporters {
    /// Starts one delivery task per exporter.
    ///
    /// # Errors
    /// As [`check_names`].
    pub(crate) fn start(
        exporters: Vec<Arc<dyn EventExporter>>,
        options: &ExportOptions,
        events: Arc<dyn EventStore>,
        runs: Arc<dyn RunStore>,
    ) -> Result<Arc<Self>> {
        check_names(&exporters)?;
        let this = Arc::new(Self {
            drivers: RwLock::new(Vec::new()),
            events,
            runs,
            options: options.clone(),
            tasks: TaskTracker::new(),
            drain: CancellationToken::new(),
            stop: CancellationToken::new(),
        });
        for exporter in exporters {
            this.add(exporter)?;
        }
        Ok(this)
    }

    /// Starts delivering to one more exporter.
    ///
    /// # Errors
    /// [`Error::Config`] when an exporter of that name is registered; [`Error::ShuttingDown`]
    /// once the shutdown has begun.
    pub(crate) fn add(&self, exporter: Arc<dyn EventExporter>) -> Result<()> {
        let mut drivers = self.drivers.write().unwrap_or_else(|p| p.into_inner());
        if self.drain.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        if drivers.iter().any(|driver| driver.exporter.name() == exporter.name()) {
            return Err(duplicate_name(exporter.name()));
        }
        let driver = Arc::new(Driver {
            exporter,
            events: self.events.clone(),
            runs: self.runs.clone(),
            options: self.options.clone(),
            due: Mutex::new(Due::default()),
            wake: Notify::new(),
            failures_logged: LogLimit::every(Duration::from_secs(10)),
            removed: self.stop.child_token(),
        });
        drivers.push(driver.clone());
        let drain = self.drain.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = driver.removed.cancelled() => {}
                () = driver.run(&drain) => {}
            }
        });
        Ok(())
    }

    /// Stops delivering to the exporter named `name` (a delivery in progress is abandoned: it
    /// comes again if the exporter is added back, from its cursors); whether it was registered.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let mut drivers = self.drivers.write().unwrap_or_else(|p| p.into_inner());
        let Some(index) = drivers.iter().position(|driver| driver.exporter.name() == name) else { return false };
        drivers.swap_remove(index).removed.cancel();
        true
    }

    /// Lets every exporter deliver what is due, for up to the grace, then stops them.
    pub(crate) async fn shutdown(&self) {
        {
            // Under the lock: no exporter is added once the shutdown has begun.
            let _drivers = self.drivers.write().unwrap_or_else(|p| p.into_inner());
            self.drain.cancel();
        }
        self.tasks.close();
        let grace = self.options.shutdown_grace;
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(?grace, "event exporters had not caught up at shutdown; they resume at the next start");
        }
        self.stop.cancel();
        self.tasks.wait().await;
    }
}

impl AppendListener for Exporters {
    fn appended(&self, run: &RunKey, _last_sequence: u64) {
        for driver in self.drivers.read().unwrap_or_else(|p| p.into_inner()).iter() {
            driver.mark_due(run);
        }
    }
}

fn duplicate_name(name: &str) -> Error {
    Error::Config {
        path: "exporters".into(),
        reason: format!("two event exporters are named {name:?}; a name keys its exporter's cursors"),
    }
}

/// Refuses two exporters of one name: the name keys their cursors.
///
/// # Errors
/// [`Error::Config`] naming the duplicate.
pub(crate) fn check_names(exporters: &[Arc<dyn EventExporter>]) -> Result<()> {
    let mut names = HashSet::new();
    for exporter in exporters {
        if !names.insert(exporter.name()) {
            return Err(duplicate_name(exporter.name()));
        }
    }
    Ok(())
}

/// One exporter's delivery task.
#[derive(Debug)]
struct Driver {
    exporter: Arc<dyn EventExporter>,
    events: Arc<dyn EventStore>,
    runs: Arc<dyn RunStore>,
    options: ExportOptions,
    /// Runs that may have events the exporter has not acknowledged.
    due: Mutex<Due>,
    /// Signalled when a run becomes due.
    wake: Notify,
    failures_logged: LogLimit,
    /// Cancelled when the exporter is removed (or the grace after a shutdown is over).
    removed: CancellationToken,
}

/// The runs due, in the order they became due, each once.
#[derive(Debug, Default)]
struct Due {
    queue: VecDeque<RunKey>,
    queued: HashSet<RunId>,
}

impl Due {
    fn push(&mut self, run: RunKey) {
        if self.queued.insert(run.run_id) {
            self.queue.push_back(run);
        }
    }

    fn pop(&mut self) -> Option<RunKey> {
        let run = self.queue.pop_front()?;
        self.queued.remove(&run.run_id);
        Some(run)
    }
}

impl Driver {
    fn mark_due(&self, run: &RunKey) {
        lock(&self.due).push(run.clone());
        self.wake.notify_one();
    }

    fn next_due(&self) -> Option<RunKey> {
        lock(&self.due).pop()
    }

    /// Delivers due runs until `drain` is cancelled and none is left.
    async fn run(&self, drain: &CancellationToken) {
        let mut next_scan = Instant::now();
        loop {
            if Instant::now() >= next_scan {
                let scanned = self.scan().await;
                let wait = if scanned { self.options.rescan_interval } else { self.options.backoff_max };
                next_scan = Instant::now() + wait.min(self.options.rescan_interval);
            }
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(run) = self.next_due() {
                self.export_run(&run).await;
                continue;
            }
            if drain.is_cancelled() {
                return;
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep_until(next_scan) => {}
                () = drain.cancelled() => {}
            }
        }
    }

    /// Marks due every run of the backlog; `false` when the run store could not say.
    async fn scan(&self) -> bool {
        let mut after = None;
        loop {
            match self.runs.export_backlog(self.exporter.name(), after, BACKLOG_PAGE).await {
                Ok(page) => {
                    let full = page.len() >= BACKLOG_PAGE;
                    let mut due = lock(&self.due);
                    for entry in page {
                        after = Some(entry.run.run_id);
                        due.push(entry.run);
                    }
                    if !full {
                        return true;
                    }
                }
                Err(error) => {
                    tracing::warn!(exporter = self.exporter.name(), %error, "could not read the export backlog");
                    return false;
                }
            }
        }
    }

    /// Delivers `run`'s events after the exporter's cursor, batch by batch, until there are none
    /// left or the run's turn is over (it is then due again, behind the others); every failure is
    /// retried after a backoff.
    async fn export_run(&self, run: &RunKey) {
        let name = self.exporter.name();
        let mut backoff = Backoff::new(&self.options);
        let mut acked = loop {
            match self.runs.export_cursor(name, run.run_id).await {
                Ok(cursor) => break cursor,
                Err(error) => self.failed(run, "read the export cursor", &error.to_string(), &mut backoff).await,
            }
        };
        for _ in 0..BATCHES_PER_TURN {
            let batch = loop {
                match self.read_and_deliver(run, acked).await {
                    Ok(batch) => break batch,
                    Err(failure) => {
                        if let Some(taken) = failure.taken {
                            // Part of the batch was taken: the retry starts after it.
                            acked = taken;
                            self.acknowledge(run, acked).await;
                        }
                        self.failed(run, failure.action, &failure.error, &mut backoff).await;
                    }
                }
            };
            let Some(last) = batch.last() else { return };
            backoff = Backoff::new(&self.options);
            acked = last.sequence();
            self.acknowledge(run, acked).await;
        }
        self.mark_due(run);
    }

    /// Records that the exporter has `run`'s events up to `acked`. Not recorded (a store error),
    /// they come again after a restart, which the guarantee allows; meanwhile delivery goes on
    /// from where it is.
    async fn acknowledge(&self, run: &RunKey, acked: u64) {
        let name = self.exporter.name();
        if let Err(error) = self.runs.ack_export(name, run.run_id, acked).await
            && let Some(suppressed) = self.failures_logged.allow()
        {
            tracing::warn!(exporter = name, run_id = %run.run_id, acked, %error, suppressed, "could not record an export cursor");
        }
    }

    /// Reads up to a batch of `run`'s events after `acked` and delivers them (unless there are
    /// none); the batch, or what failed.
    async fn read_and_deliver(&self, run: &RunKey, acked: u64) -> Result<Vec<Arc<StoredEvent>>, Failure> {
        let batch = self.read_batch(run, acked).await.map_err(|e| Failure::new("read events to export", e))?;
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            let (first, last) = (first.sequence(), last.sequence());
            // A panicking exporter is retried like a failing one, instead of losing its task.
            let delivered = AssertUnwindSafe(self.exporter.deliver(run, &batch)).catch_unwind().await;
            match delivered {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    let taken = error.delivered().filter(|taken| (first..=last).contains(taken));
                    return Err(Failure { taken, ..Failure::new("deliver events", error) });
                }
                Err(_) => return Err(Failure::new("deliver events", "the exporter panicked")),
            }
        }
        Ok(batch)
    }

    /// Up to a batch of `run`'s events after `acked`.
    async fn read_batch(&self, run: &RunKey, acked: u64) -> Result<Vec<Arc<StoredEvent>>> {
        let events = self.events.read_after(run, acked).await?;
        events.take(self.options.batch_size).try_collect().await
    }

    /// Logs a failure (at most once per 10 s per exporter) and waits out the backoff.
    async fn failed(&self, run: &RunKey, action: &str, error: &str, backoff: &mut Backoff) {
        let wait = backoff.next();
        if let Some(suppressed) = self.failures_logged.allow() {
            tracing::warn!(exporter = self.exporter.name(), run_id = %run.run_id, %error, retry_in = ?wait, suppressed, "could not {action}");
        }
        tokio::time::sleep(wait).await;
    }
}

/// What kept a batch from being delivered.
#[derive(Debug)]
struct Failure {
    action: &'static str,
    error: String,
    /// The last sequence of the batch the exporter took before it failed.
    taken: Option<u64>,
}

impl Failure {
    fn new(action: &'static str, error: impl std::fmt::Display) -> Self {
        Self { action, error: error.to_string(), taken: None }
    }
}

/// A number in [0, 1), different at each call (not for cryptography).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential backoff between a minimum and a maximum, with jitter.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(options: &ExportOptions) -> Self {
        Self { next: options.backoff_min, max: options.backoff_max.max(options.backoff_min) }
    }

    /// The wait before the next attempt: between half the current step and the step ("equal
    /// jitter"), so that exporters failing together (one endpoint down for several) do not retry
    /// in lockstep.
    fn next(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(jitter())
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_maximum_with_jitter_within_each_step() {
        let options = ExportOptions::default().with_backoff(Duration::from_millis(100), Duration::from_millis(800));
        let mut backoff = Backoff::new(&options);
        for step in [100, 200, 400, 800, 800] {
            let wait = backoff.next();
            let step = Duration::from_millis(step);
            assert!(wait >= step / 2 && wait <= step, "{wait:?} within [{:?}, {step:?}]", step / 2);
        }
        let waits: std::collections::HashSet<_> = (0..20).map(|_| Backoff::new(&options).next()).collect();
        assert!(waits.len() > 1, "jittered: {waits:?}");
    }
}
