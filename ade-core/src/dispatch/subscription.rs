//! Subscriptions: the store from a cursor, then live, as one ordered stream without gap or
//! duplicate, that ends after `run.completed`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Dispatcher, Hub};
use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::metrics;
use crate::store::{EventStream, RunKey};

/// A resume cursor: the subscription yields the events with `sequence > After.0`; `After(0)` is
/// the whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct After(pub u64);

enum Mode {
    /// Reading the store.
    Replay(EventStream),
    /// Following the run's live ring.
    Live,
    /// Ended: after `run.completed`, or after an error.
    Done,
}

struct Subscription {
    dispatcher: Dispatcher,
    key: RunKey,
    /// Keeps the run's hub (and so the ring `live` reads) alive.
    _hub: Arc<Hub>,
    live: broadcast::Receiver<Arc<StoredEvent>>,
    /// The last sequence delivered (or the cursor).
    last: u64,
    mode: Mode,
    transport: &'static str,
}

pub(super) async fn subscribe(
    dispatcher: Dispatcher,
    key: RunKey,
    after: u64,
    transport: &'static str,
) -> Result<EventStream> {
    let hub = dispatcher.hub(&key, after);
    // Live first, then the store: an event published after this point is in `live`, one persisted
    // before the store read is in the read; overlaps are dropped by sequence.
    let live = hub.subscribe();
    let replay = dispatcher.inner.store.read_after(&key, after).await?;
    dispatcher.inner.subscribers.fetch_add(1, Ordering::Relaxed);
    ::metrics::gauge!(metrics::SUBSCRIBERS, "transport" => transport).increment(1.0);
    let subscription =
        Subscription { dispatcher, key, _hub: hub, live, last: after, mode: Mode::Replay(replay), transport };
    Ok(futures::stream::unfold(subscription, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    })
    .boxed())
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.dispatcher.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
        ::metrics::gauge!(metrics::SUBSCRIBERS, "transport" => self.transport).decrement(1.0);
    }
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<Arc<StoredEvent>>> {
        loop {
            match &mut self.mode {
                Mode::Done => return None,
                Mode::Replay(stored) => match stored.next().await {
                    Some(Ok(event)) => {
                        if event.sequence() <= self.last {
                            self.skip(&event);
                            continue;
                        }
                        if event.sequence() != self.last + 1 {
                            let reason = format!("store returned {} after {}", event.sequence(), self.last);
                            return self.fail(Error::CorruptLog { path: self.key.run_id.to_string().into(), reason });
                        }
                        return Some(Ok(self.deliver(event)));
                    }
                    Some(Err(error)) => return self.fail(error),
                    None => match self.dispatcher.inner.store.tail(&self.key).await {
                        // Finished, and everything delivered: never wait on a finished run.
                        Ok(tail) if tail.terminal && tail.last_sequence <= self.last => self.mode = Mode::Done,
                        Ok(_) => self.mode = Mode::Live,
                        Err(error) => return self.fail(error),
                    },
                },
                Mode::Live => match self.live.recv().await {
                    Ok(event) if event.sequence() <= self.last => self.skip(&event),
                    Ok(event) if event.sequence() == self.last + 1 => return Some(Ok(self.deliver(event))),
                    // Missed some (subscribed between a persist and its publish, or lagged):
                    // every published event is persisted, so the store has them.
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        if let Err(error) = self.catch_up().await {
                            return self.fail(error);
                        }
                    }
                    // The hub outlives this subscription, so its sender cannot be gone.
                    Err(RecvError::Closed) => self.mode = Mode::Done,
                },
            }
        }
    }

    fn deliver(&mut self, event: Arc<StoredEvent>) -> Arc<StoredEvent> {
        self.last = event.sequence();
        if event.is_terminal() {
            self.mode = Mode::Done;
        }
        event
    }

    /// An event at or before the cursor: not delivered, but if it ends the run, so does the
    /// subscription (a cursor past the end of a finished run).
    fn skip(&mut self, event: &StoredEvent) {
        if event.is_terminal() {
            self.mode = Mode::Done;
        }
    }

    async fn catch_up(&mut self) -> Result<()> {
        ::metrics::counter!(metrics::SUBSCRIBER_CATCHUPS_TOTAL).increment(1);
        self.dispatcher.inner.catch_ups.fetch_add(1, Ordering::Relaxed);
        // Start live again from now: what was published before is persisted, so the read below
        // has it, and the stale backlog of a lagged receiver need not be skipped one by one.
        self.live = self.live.resubscribe();
        self.mode = Mode::Replay(self.dispatcher.inner.store.read_after(&self.key, self.last).await?);
        Ok(())
    }

    fn fail(&mut self, error: Error) -> Option<Result<Arc<StoredEvent>>> {
        self.mode = Mode::Done;
        Some(Err(error))
    }
}
