//! Subscriptions: the store from a cursor, then live, as one ordered stream without gap or
//! duplicate, that ends after `run.completed`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::ReusableBoxFuture;

use super::{Dispatcher, Hub};
use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::metrics;
use crate::store::{EventStream, LogTail, RunKey};

/// A resume cursor: the subscription yields the events with `sequence > After.0`; `After(0)` is
/// the whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct After(pub u64);

type Receiver = broadcast::Receiver<Arc<StoredEvent>>;

/// The next live event, and the receiver it came from (lent to the wait, given back after it).
type LiveWait = ReusableBoxFuture<'static, (std::result::Result<Arc<StoredEvent>, RecvError>, Receiver)>;

enum Mode {
    /// Reading the store.
    Replay(EventStream),
    /// Asking the store where the log ends, once the read is done.
    Tail(BoxFuture<'static, Result<LogTail>>),
    /// Following the run's live ring: taking what it holds.
    Live,
    /// Following the run's live ring: waiting for its next event (`waiting` holds the receiver).
    Waiting,
    /// Opening a read of the store after a gap in the live ring.
    CatchUp(BoxFuture<'static, Result<EventStream>>),
    /// Ended: after `run.completed`, or after an error.
    Done,
}

/// A subscription as a hand-written stream: a live event costs a poll of the ring (no future is
/// built or moved per event); a future is only set up to wait for one, or to read the store.
struct Subscription {
    dispatcher: Dispatcher,
    key: RunKey,
    /// Keeps the run's hub (and so the ring `live` reads) alive.
    _hub: Arc<Hub>,
    /// The ring's receiver, unless lent to `waiting`.
    live: Option<Receiver>,
    /// The wait for the next live event, its allocation reused from one wait to the next.
    waiting: Option<LiveWait>,
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
    Ok(Subscription {
        dispatcher,
        key,
        _hub: hub,
        live: Some(live),
        waiting: None,
        last: after,
        mode: Mode::Replay(replay),
        transport,
    }
    .boxed())
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.dispatcher.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
        ::metrics::gauge!(metrics::SUBSCRIBERS, "transport" => self.transport).decrement(1.0);
    }
}

impl Stream for Subscription {
    type Item = Result<Arc<StoredEvent>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.mode {
                Mode::Done => return Poll::Ready(None),
                Mode::Replay(stored) => match ready!(stored.poll_next_unpin(cx)) {
                    Some(Ok(event)) => {
                        if event.sequence() <= this.last {
                            this.skip(&event);
                            continue;
                        }
                        if event.sequence() != this.last + 1 {
                            let reason = format!("store returned {} after {}", event.sequence(), this.last);
                            let path = this.key.run_id.to_string().into();
                            return this.fail(Error::CorruptLog { path, reason });
                        }
                        return Poll::Ready(Some(Ok(this.deliver(event))));
                    }
                    Some(Err(error)) => return this.fail(error),
                    None => {
                        let (store, key) = (this.dispatcher.inner.store.clone(), this.key.clone());
                        this.mode = Mode::Tail(Box::pin(async move { store.tail(&key).await }));
                    }
                },
                Mode::Tail(tail) => match ready!(tail.as_mut().poll(cx)) {
                    // Finished, and everything delivered: never wait on a finished run.
                    Ok(tail) if tail.terminal && tail.last_sequence <= this.last => this.mode = Mode::Done,
                    Ok(_) => this.mode = Mode::Live,
                    Err(error) => return this.fail(error),
                },
                Mode::CatchUp(read) => match ready!(read.as_mut().poll(cx)) {
                    Ok(stored) => this.mode = Mode::Replay(stored),
                    Err(error) => return this.fail(error),
                },
                Mode::Live => {
                    let Some(live) = this.live.as_mut() else {
                        return this.fail(Error::Task("a subscription lost its live receiver".to_owned()));
                    };
                    match live.try_recv() {
                        Ok(event) => {
                            if let Some(event) = this.live_event(event) {
                                return Poll::Ready(Some(Ok(event)));
                            }
                        }
                        Err(TryRecvError::Empty) => this.wait(),
                        Err(TryRecvError::Lagged(_)) => this.catch_up(),
                        // The hub outlives this subscription, so its sender cannot be gone.
                        Err(TryRecvError::Closed) => this.mode = Mode::Done,
                    }
                }
                Mode::Waiting => {
                    let Some(waiting) = this.waiting.as_mut() else {
                        return this.fail(Error::Task("a subscription waits on nothing".to_owned()));
                    };
                    let (received, live) = ready!(waiting.poll(cx));
                    this.live = Some(live);
                    this.mode = Mode::Live;
                    match received {
                        Ok(event) => {
                            if let Some(event) = this.live_event(event) {
                                return Poll::Ready(Some(Ok(event)));
                            }
                        }
                        Err(RecvError::Lagged(_)) => this.catch_up(),
                        Err(RecvError::Closed) => this.mode = Mode::Done,
                    }
                }
            }
        }
    }
}

impl Subscription {
    /// `event` from the ring: delivered when it is the next one; an event at or before the cursor
    /// is skipped; after a gap (subscribed between a persist and its publish, or lagged) the store
    /// is read, since every published event is persisted.
    fn live_event(&mut self, event: Arc<StoredEvent>) -> Option<Arc<StoredEvent>> {
        if event.sequence() <= self.last {
            self.skip(&event);
            None
        } else if event.sequence() == self.last + 1 {
            Some(self.deliver(event))
        } else {
            self.catch_up();
            None
        }
    }

    /// Lends the receiver to a wait for the next live event.
    fn wait(&mut self) {
        let Some(mut live) = self.live.take() else { return };
        let next = async move {
            let received = live.recv().await;
            (received, live)
        };
        match self.waiting.as_mut() {
            Some(waiting) => waiting.set(next),
            None => self.waiting = Some(ReusableBoxFuture::new(next)),
        }
        self.mode = Mode::Waiting;
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

    fn catch_up(&mut self) {
        ::metrics::counter!(metrics::SUBSCRIBER_CATCHUPS_TOTAL).increment(1);
        self.dispatcher.inner.catch_ups.fetch_add(1, Ordering::Relaxed);
        // Start live again from now: what was published before is persisted, so the read below
        // has it, and the stale backlog of a lagged receiver need not be skipped one by one.
        if let Some(live) = self.live.as_mut() {
            *live = live.resubscribe();
        }
        let (store, key, last) = (self.dispatcher.inner.store.clone(), self.key.clone(), self.last);
        self.mode = Mode::CatchUp(Box::pin(async move { store.read_after(&key, last).await }));
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Arc<StoredEvent>>>> {
        self.mode = Mode::Done;
        Poll::Ready(Some(Err(error)))
    }
}
