//! Engine processes that outlived the ade that started them, killed before their run is
//! finalized: a run finalized `orchestrator_lost` while its engine still writes would have its
//! outputs change after the fact.
//!
//! The direct child dies with ade (`engine::spawn`), but what it started does not (a wrapper
//! script's children, anything that left the process group). They are found by what every one of
//! them inherits, `ADE_RUN_ID=<run id>` in the environment they were started with
//! (`/proc/<pid>/environ`), not by a recorded pid or process group: a number recorded before a
//! crash may belong to an unrelated process by now, and the environment is read again right
//! before each kill. A process that cleared its environment, or that another user owns, is not
//! found. Linux only; elsewhere nothing is done.

use std::collections::HashSet;
use std::time::Duration;

use crate::event::RunId;

/// How long [`kill_orphans`] waits for the processes it killed to be gone.
const ORPHAN_WAIT: Duration = Duration::from_secs(5);
/// How often it looks again meanwhile.
const ORPHAN_POLL: Duration = Duration::from_millis(20);

/// Kills (SIGKILL) every process of this machine started by an engine of one of `runs`, and waits
/// until they are gone, for at most [`ORPHAN_WAIT`]. Returns how many it killed.
pub(crate) async fn kill_orphans(runs: impl IntoIterator<Item = RunId>) -> usize {
    let markers: HashSet<Vec<u8>> = runs.into_iter().map(|id| format!("ADE_RUN_ID={id}").into_bytes()).collect();
    if markers.is_empty() || !cfg!(target_os = "linux") {
        return 0;
    }
    let scan = tokio::task::spawn_blocking(move || kill_until_gone(&markers));
    match scan.await {
        Ok(killed) => killed,
        Err(error) => {
            tracing::error!(%error, "looking for engine processes left by a stopped ade failed");
            0
        }
    }
}

/// Kills what matches until nothing does (a process may fork while it is being killed), or until
/// [`ORPHAN_WAIT`] has passed.
fn kill_until_gone(markers: &HashSet<Vec<u8>>) -> usize {
    let deadline = std::time::Instant::now() + ORPHAN_WAIT;
    let mut killed = HashSet::new();
    loop {
        let found = matching(markers);
        if found.is_empty() {
            return killed.len();
        }
        if std::time::Instant::now() >= deadline {
            let pids: Vec<i32> = found.iter().map(|(pid, _)| *pid).collect();
            tracing::error!(?pids, ?ORPHAN_WAIT, "engine processes of lost runs are still alive; finalizing anyway");
            return killed.len();
        }
        for (pid, marker) in found {
            // The pid was read a moment ago; it is killed only if it is still the same run's.
            if run_marker_of(pid, markers).as_ref() != Some(&marker) {
                continue;
            }
            if killed.insert(pid) {
                let run = String::from_utf8_lossy(&marker["ADE_RUN_ID=".len()..]).into_owned();
                tracing::warn!(pid, run_id = %run, "killing an engine process left by a stopped ade");
            }
            // Fails only when it is gone already.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(ORPHAN_POLL);
    }
}

/// Every process (but this one) whose environment names one of the runs, with that marker.
fn matching(markers: &HashSet<Vec<u8>>) -> Vec<(i32, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter_map(|pid| run_marker_of(pid, markers).map(|marker| (pid, marker)))
        .collect()
}

/// The `ADE_RUN_ID=…` entry of a process's environment when it is one of `markers`. A process
/// that is gone, a zombie (whose environment reads empty) or another user's reads as none.
fn run_marker_of(pid: i32, markers: &HashSet<Vec<u8>>) -> Option<Vec<u8>> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|byte| *byte == 0).find(|entry| markers.contains(*entry)).map(<[u8]>::to_vec)
}
