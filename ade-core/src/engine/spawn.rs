//! Starting engine processes so that they die with ade (Linux): each child gets
//! `PR_SET_PDEATHSIG(SIGKILL)` between `fork` and `exec`, so a server killed with SIGKILL (or
//! crashing) takes its engines with it instead of leaving them to write into runs that recovery
//! has already finalized.
//!
//! The kernel sends the parent-death signal when the *thread* that forked the child exits, not
//! the process. Tokio's blocking-pool threads exit when idle, and a worker thread that entered
//! `block_in_place` may end up as one, so every child is forked on one dedicated thread that lives
//! as long as the process ([`spawner`]). Only the direct child gets the signal: whatever it started
//! (a wrapper script's children) is killed by recovery at the next start (`engine::orphans`).
//!
//! This is the one module of the workspace with `unsafe`: `CommandExt::pre_exec` (see
//! docs/decisions.md).

use std::io;
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// A child to fork on the spawner thread, inside the runtime of the task that asked.
struct Request {
    command: Command,
    runtime: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Spawns `command` so that it is killed when this process dies (Linux); elsewhere a plain spawn.
///
/// # Errors
/// What `spawn` reports (the program cannot be started), or that the spawner thread is gone.
pub(super) async fn spawn(mut command: Command) -> io::Result<Child> {
    die_with_parent(&mut command);
    let (reply, replied) = oneshot::channel();
    let request = Request { command, runtime: tokio::runtime::Handle::current(), reply };
    let sent = spawner().map(|spawner| spawner.send(request).is_ok());
    if !matches!(sent, Some(true)) {
        return Err(io::Error::other("the thread that starts engine processes is not running"));
    }
    // A child spawned for a caller that went away meanwhile is dropped there: `kill_on_drop`.
    replied.await.unwrap_or_else(|_| Err(io::Error::other("the thread that starts engine processes stopped")))
}

/// The one thread that forks engine processes; started on first use, never ends. `None` when it
/// cannot be started.
fn spawner() -> Option<&'static mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (sender, requests) = mpsc::channel::<Request>();
            let started = std::thread::Builder::new().name("ade-engine-spawner".to_owned()).spawn(move || {
                for Request { mut command, runtime, reply } in requests {
                    // Tokio registers the child with the runtime's process driver; it panics
                    // when that runtime has none, which must not end this thread.
                    let _entered = runtime.enter();
                    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| command.spawn()))
                        .unwrap_or_else(|_| Err(io::Error::other("the async runtime cannot start processes")));
                    let _ = reply.send(spawned);
                }
            });
            match started {
                Ok(_) => Some(sender),
                Err(error) => {
                    tracing::error!(%error, "cannot start the thread that starts engine processes");
                    None
                }
            }
        })
        .as_ref()
}

/// Asks the kernel to SIGKILL the child when the thread that forks it (the spawner) ends, which
/// happens only when the process does.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use nix::sys::prctl::set_pdeathsig;
    use nix::sys::signal::Signal;
    use nix::unistd::{Pid, getppid};

    let parent = Pid::this();
    // SAFETY: the closure runs in the forked child before `exec`, where only async-signal-safe
    // calls are allowed: it makes two system calls (prctl, getppid), compares two integers and
    // builds an `io::Error` from an errno (no allocation). It touches no lock and no memory of the
    // parent's other threads.
    unsafe {
        command.pre_exec(move || {
            set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died before the prctl: then the signal will never come.
            if getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::process::Stdio;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Waits until `/proc/self/task/<tid>` is gone: the thread has fully exited, so a parent-death
    /// signal it would trigger has been sent.
    async fn wait_until_thread_is_gone(tid: i32) {
        let path = format!("/proc/self/task/{tid}");
        for _ in 0..1000 {
            if !std::path::Path::new(&path).exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("thread {tid} did not exit within 10 s");
    }

    /// The pitfall: a child forked by a short-lived thread would be killed when that thread ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_child_outlives_the_thread_that_asked_for_it() {
        let handle = tokio::runtime::Handle::current();
        let (child, tid) = std::thread::spawn(move || {
            let mut command = Command::new("sh");
            // Exits 0 once it reads a line: it must still be alive to read it.
            command.args(["-c", "read line; exit 0"]).stdin(Stdio::piped()).kill_on_drop(true);
            let child = handle.block_on(spawn(command)).expect("spawn");
            (child, nix::unistd::gettid().as_raw())
        })
        .join()
        .expect("the asking thread");
        wait_until_thread_is_gone(tid).await;
        let mut child = child;
        let mut stdin = child.stdin.take().expect("stdin");
        // A killed child may already be gone: the write then fails, which the status below shows.
        let _ = stdin.write_all(b"go\n").await;
        drop(stdin);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits").expect("wait");
        assert_eq!(status.code(), Some(0), "the child was killed when the asking thread ended: {status:?}");
    }
}
