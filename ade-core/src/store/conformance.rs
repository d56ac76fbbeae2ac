//! One test suite for every [`EventStore`] backend: what the trait promises (cargo feature
//! `test-util`). An embedder's own store passes it before the runtime is given it
//! (`examples/custom_store.rs`).

use std::future::Future;
use std::sync::Arc;

use futures::TryStreamExt;

use super::{Durability, EventStore, LogTail};
use crate::error::Error;
use crate::testing::{completed, lines, run_key, stored};

async fn sequences(store: &dyn EventStore, run: &super::RunKey, after: u64) -> Vec<u64> {
    let events: Vec<_> = store.read_after(run, after).await.expect("read").try_collect().await.expect("events");
    events.iter().map(|e| e.sequence()).collect()
}

/// Runs every conformance test against fresh stores from `make`; `G` keeps a store's resources
/// (a temporary directory, a database schema) alive while it is used. Panics, naming the broken
/// promise, when the store does not keep one.
pub async fn run_all<F, Fut, G>(make: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<dyn EventStore>, G)>,
{
    let (store, _guard) = make().await;
    empty_log(&*store).await;
    let (store, _guard) = make().await;
    appends_and_reads_from_every_cursor(&*store).await;
    let (store, _guard) = make().await;
    refuses_gaps_duplicates_and_events_after_completion(&*store).await;
    let (store, _guard) = make().await;
    keeps_runs_apart(&*store).await;
}

async fn empty_log(store: &dyn EventStore) {
    let run = run_key("acme");
    assert_eq!(store.tail(&run).await.expect("tail"), LogTail::default());
    assert!(sequences(store, &run, 0).await.is_empty());
}

async fn appends_and_reads_from_every_cursor(store: &dyn EventStore) {
    let run = run_key("acme");
    let n = 1200u64; // several read chunks and index records
    for batch in lines(&run, 1, n).chunks(97) {
        store.append(&run, batch, Durability::Buffered).await.expect("append");
    }
    store.append(&run, &[stored(&run, n + 1, completed(&run, n + 1))], Durability::Fsync).await.expect("complete");
    assert_eq!(store.tail(&run).await.expect("tail"), LogTail { last_sequence: n + 1, terminal: true });
    for after in [0, 1, 2, 255, 256, 257, 511, 512, 513, 700, n - 1, n, n + 1, n + 50] {
        let got = sequences(store, &run, after).await;
        let want: Vec<u64> = (after + 1..=n + 1).collect();
        assert_eq!(got, want, "read after {after}");
    }
    let all: Vec<_> = store.read_after(&run, 0).await.expect("read").try_collect().await.expect("events");
    assert!(all.last().is_some_and(|e| e.is_terminal()));
}

async fn refuses_gaps_duplicates_and_events_after_completion(store: &dyn EventStore) {
    let run = run_key("acme");
    store.append(&run, &lines(&run, 1, 3), Durability::Buffered).await.expect("append");
    let gap = store.append(&run, &lines(&run, 5, 5), Durability::Buffered).await;
    assert!(matches!(gap, Err(Error::SequenceConflict { expected: 4, got: 5, .. })), "{gap:?}");
    let duplicate = store.append(&run, &lines(&run, 3, 4), Durability::Buffered).await;
    assert!(matches!(duplicate, Err(Error::SequenceConflict { expected: 4, got: 3, .. })), "{duplicate:?}");
    let mut unordered = lines(&run, 4, 6);
    unordered.swap(1, 2);
    assert!(store.append(&run, &unordered, Durability::Buffered).await.is_err());
    assert_eq!(sequences(store, &run, 0).await, vec![1, 2, 3], "refused batches leave no trace");

    let mut not_last = vec![stored(&run, 4, completed(&run, 4))];
    not_last.extend(lines(&run, 5, 5));
    assert!(store.append(&run, &not_last, Durability::Buffered).await.is_err(), "run.completed must be last");

    store.append(&run, &[stored(&run, 4, completed(&run, 4))], Durability::Fsync).await.expect("complete");
    let after = store.append(&run, &lines(&run, 5, 5), Durability::Buffered).await;
    assert!(matches!(after, Err(Error::RunComplete(_))), "{after:?}");
    assert_eq!(sequences(store, &run, 0).await, vec![1, 2, 3, 4]);
}

async fn keeps_runs_apart(store: &dyn EventStore) {
    let a = run_key("acme");
    let b = run_key("acme");
    let c = run_key("other");
    store.append(&a, &lines(&a, 1, 2), Durability::Buffered).await.expect("append a");
    store.append(&b, &lines(&b, 1, 5), Durability::Buffered).await.expect("append b");
    store.append(&c, &lines(&c, 1, 1), Durability::Buffered).await.expect("append c");
    assert_eq!(sequences(store, &a, 0).await, vec![1, 2]);
    assert_eq!(sequences(store, &b, 0).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(store.tail(&c).await.expect("tail").last_sequence, 1);
    let wrong_run = lines(&a, 3, 3);
    assert!(store.append(&b, &wrong_run, Durability::Buffered).await.is_err(), "an event of run a cannot go into b");
}
