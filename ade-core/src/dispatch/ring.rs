//! A run's live ring: the events it published last, which its subscribers copy out by sequence,
//! several at a time under a read lock (readers never wait for one another), and the wakers of
//! the subscribers that wait for more, woken once per published batch rather than once per event.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::task::AtomicWaker;

use super::lock;
use crate::event::StoredEvent;

#[derive(Debug)]
pub(crate) struct Ring {
    events: RwLock<VecDeque<Arc<StoredEvent>>>,
    /// The newest event's sequence, and whether it ended the run: a subscriber with nothing new
    /// to read finds that out without the lock.
    newest: AtomicU64,
    finished: AtomicBool,
    /// Most events kept; the oldest go first.
    capacity: usize,
    /// The wakers of the subscribers, by listener id.
    listeners: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    next_listener: AtomicU64,
}

/// What a subscriber finds in the ring after the last sequence it delivered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The events that follow it (some of them) were copied out.
    Events,
    /// Nothing follows it yet.
    Nothing,
    /// It is the run's last event (or after it): nothing ever will.
    Finished,
    /// The ring no longer holds the event that follows it (the subscriber fell behind, or
    /// subscribed between a persist and its publish): the store has it.
    Behind,
}

/// A subscriber's place among the ring's listeners.
#[derive(Debug)]
pub(crate) struct Listener {
    id: u64,
    waker: Arc<AtomicWaker>,
}

impl Listener {
    /// Wake the current task at the next published batch. Register, then look at the ring again:
    /// a batch published before the registration is then seen, one published after it wakes.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            events: RwLock::new(VecDeque::new()),
            newest: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            capacity: capacity.max(1),
            listeners: Mutex::new(HashMap::new()),
            next_listener: AtomicU64::new(0),
        }
    }

    /// Appends `events` (in sequence order), dropping the oldest beyond the capacity, then wakes
    /// every waiting subscriber once.
    pub(crate) fn publish(&self, events: impl IntoIterator<Item = Arc<StoredEvent>>) {
        {
            let mut ring = self.events.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for event in events {
                if ring.len() == self.capacity {
                    ring.pop_front();
                }
                ring.push_back(event);
            }
            if let Some(newest) = ring.back() {
                self.finished.store(newest.is_terminal(), Ordering::Release);
                self.newest.store(newest.sequence(), Ordering::Release);
            }
        }
        for waker in lock(&self.listeners).values() {
            waker.wake();
        }
    }

    /// Copies at most `room` of the events after sequence `last` to `out`.
    pub(crate) fn read_after(&self, last: u64, out: &mut VecDeque<Arc<StoredEvent>>, room: usize) -> Found {
        if self.newest.load(Ordering::Acquire) <= last && !self.finished.load(Ordering::Acquire) {
            return Found::Nothing;
        }
        let ring = self.events.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(newest) = ring.back() else { return Found::Nothing };
        if newest.sequence() <= last {
            return if newest.is_terminal() { Found::Finished } else { Found::Nothing };
        }
        let next = ring.partition_point(|event| event.sequence() <= last);
        if ring[next].sequence() != last + 1 {
            return Found::Behind;
        }
        out.extend(ring.range(next..).take(room).cloned());
        Found::Events
    }

    /// Events held right now.
    pub(crate) fn len(&self) -> usize {
        self.events.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// A new listener (a subscriber), woken at every published batch it registered for.
    pub(crate) fn listen(&self) -> Listener {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        lock(&self.listeners).insert(id, waker.clone());
        Listener { id, waker }
    }

    /// `listener` is gone.
    pub(crate) fn forget(&self, listener: &Listener) {
        lock(&self.listeners).remove(&listener.id);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::{Found, Ring};
    use crate::store::RunKey;
    use crate::testing::{completed, console, run_key, stored};

    fn run() -> &'static RunKey {
        static RUN: std::sync::OnceLock<RunKey> = std::sync::OnceLock::new();
        RUN.get_or_init(|| run_key("acme"))
    }

    fn event(sequence: u64) -> Arc<crate::event::StoredEvent> {
        stored(run(), sequence, console("line"))
    }

    #[test]
    fn a_reader_gets_what_follows_its_last_sequence_or_is_told_why_not() {
        let ring = Ring::new(4);
        let mut out = VecDeque::new();
        assert_eq!(ring.read_after(0, &mut out, 16), Found::Nothing);
        ring.publish((1..=6).map(event));
        assert_eq!(ring.len(), 4, "the oldest went");
        assert_eq!(ring.read_after(1, &mut out, 16), Found::Behind, "2 is gone");
        assert_eq!(ring.read_after(2, &mut out, 2), Found::Events);
        assert_eq!(out.iter().map(|e| e.sequence()).collect::<Vec<_>>(), [3, 4], "at most the room given");
        out.clear();
        assert_eq!(ring.read_after(4, &mut out, 16), Found::Events);
        assert_eq!(out.iter().map(|e| e.sequence()).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(ring.read_after(6, &mut out, 16), Found::Nothing);
        assert_eq!(ring.read_after(9, &mut out, 16), Found::Nothing);
    }

    #[test]
    fn after_the_terminal_event_nothing_will_come() {
        let ring = Ring::new(8);
        let last = stored(run(), 2, completed(run(), 2));
        ring.publish([event(1), last]);
        assert_eq!(ring.read_after(2, &mut VecDeque::new(), 16), Found::Finished);
        assert_eq!(ring.read_after(5, &mut VecDeque::new(), 16), Found::Finished);
    }

    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_batch_wakes_each_registered_listener_once_and_a_forgotten_one_never() {
        let ring = Ring::new(8);
        let (a, b) = (ring.listen(), ring.listen());
        let (woken_a, woken_b) = (Arc::new(Count(0.into())), Arc::new(Count(0.into())));
        a.register(&Waker::from(woken_a.clone()));
        b.register(&Waker::from(woken_b.clone()));
        ring.forget(&b);
        ring.publish((1..=5).map(event));
        let count = |c: &Count| c.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!((count(&woken_a), count(&woken_b)), (1, 0));
        // Not registered again: the next batch does not wake it.
        ring.publish([event(6)]);
        assert_eq!(count(&woken_a), 1);
    }
}
