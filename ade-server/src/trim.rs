//! Gives the heap memory freed by closed connections back to the operating system.
//!
//! glibc's allocator keeps freed memory for the process: after 500 stalled SSE readers closed,
//! the ~25 MB their buffers had taken stayed in the server's RSS for good. `malloc_trim` hands
//! free pages back; it walks the allocator's free lists, so it runs at most every few seconds, and
//! only after connections closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Connections closed since the last trim.
static CLOSED: AtomicU64 = AtomicU64::new(0);

/// How often the closed connections are looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Fewer closed connections than this free too little to be worth a trim.
const WORTH_IT: u64 = 16;

/// Counts a closed connection.
pub(crate) fn connection_closed() {
    CLOSED.fetch_add(1, Ordering::Relaxed);
}

/// Trims the heap every [`EVERY`] when at least [`WORTH_IT`] connections closed meanwhile, until
/// `stop` is cancelled.
pub(crate) fn spawn(stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
            if CLOSED.load(Ordering::Relaxed) >= WORTH_IT {
                CLOSED.store(0, Ordering::Relaxed);
                release_free_memory();
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: `malloc_trim` takes no pointer and only rearranges glibc's own free memory; it is
    // thread-safe (it takes each arena's lock).
    let _ = unsafe { nix::libc::malloc_trim(0) };
}

/// Other allocators give memory back by themselves, or not at all.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
