//! Subscriptions: the store from a cursor, then live, as one ordered stream without gap or
//! duplicate, that ends after `run.completed`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};

use super::ring::{Found, Listener};
use super::{Dispatcher, Hub};
use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::metrics;
use crate::store::{EventStream, LogTail, RunKey};

/// A resume cursor: the subscription yields the events with `sequence > After.0`; `After(0)` is
/// the whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct After(pub u64);

/// Events copied out of the live ring at a time (a few pointers per subscriber).
const READ_AT_ONCE: usize = 16;

enum Mode {
    /// Reading the store.
    Replay(EventStream),
    /// Asking the store where the log ends, once the read is done.
    Tail(BoxFuture<'static, Result<LogTail>>),
    /// Following the run's live ring.
    Live,
    /// Opening a read of the store after a gap in the live ring.
    CatchUp(BoxFuture<'static, Result<EventStream>>),
    /// Ended: after `run.completed`, or after an error.
    Done,
}

/// A subscription as a hand-written stream: live events are copied out of the ring a few at a
/// time (no future is built or moved per event, nor to wait for one); futures are only set up to
/// read the store.
struct Subscription {
    dispatcher: Dispatcher,
    key: RunKey,
    /// The run's live ring (kept alive by this).
    hub: Arc<Hub>,
    /// This subscription among the ring's listeners.
    listener: Listener,
    /// Live events copied out of the ring, not yet delivered.
    live: VecDeque<Arc<StoredEvent>>,
    /// Registered for the next batch in this poll, and looked at the ring since.
    registered: bool,
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
    // The ring is read by sequence: an event published after the store read below is in the ring
    // (or, if the ring dropped it already, the subscription reads the store again).
    let replay = dispatcher.inner.store.read_after(&key, after).await?;
    let listener = hub.ring.listen();
    dispatcher.inner.subscribers.fetch_add(1, Ordering::Relaxed);
    ::metrics::gauge!(metrics::SUBSCRIBERS, "transport" => transport).increment(1.0);
    Ok(Subscription {
        dispatcher,
        key,
        hub,
        listener,
        live: VecDeque::new(),
        registered: false,
        last: after,
        mode: Mode::Replay(replay),
        transport,
    }
    .boxed())
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.ring.forget(&self.listener);
        self.dispatcher.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
        ::metrics::gauge!(metrics::SUBSCRIBERS, "transport" => self.transport).decrement(1.0);
    }
}

impl Stream for Subscription {
    type Item = Result<Arc<StoredEvent>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.registered = false;
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
                    if let Some(event) = this.live.pop_front() {
                        if let Some(event) = this.live_event(event) {
                            return Poll::Ready(Some(Ok(event)));
                        }
                        continue;
                    }
                    match this.hub.ring.read_after(this.last, &mut this.live, READ_AT_ONCE) {
                        Found::Events => {}
                        Found::Finished => this.mode = Mode::Done,
                        Found::Behind => this.catch_up(),
                        // Registered and looked again: the next batch wakes this task.
                        Found::Nothing if this.registered => return Poll::Pending,
                        Found::Nothing => {
                            this.listener.register(cx.waker());
                            this.registered = true;
                        }
                    }
                }
            }
        }
    }
}

impl Subscription {
    /// `event` from the ring: delivered when it is the next one; an event at or before the cursor
    /// is skipped; after a gap the store is read, since every published event is persisted.
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
        // What was published is persisted, so the read below has it; the ring is read again after.
        self.live.clear();
        let (store, key, last) = (self.dispatcher.inner.store.clone(), self.key.clone(), self.last);
        self.mode = Mode::CatchUp(Box::pin(async move { store.read_after(&key, last).await }));
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Arc<StoredEvent>>>> {
        self.mode = Mode::Done;
        Poll::Ready(Some(Err(error)))
    }
}
