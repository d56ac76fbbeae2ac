//! One command run to its end: spawn, pump, cancel (SIGTERM then SIGKILL), reap.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::wire::{PumpState, pump};
use crate::engine::{EngineFailure, EventSink};
use crate::event::{ConsoleLevel, ConsoleStream};

/// How long the output of an exited child is still read: a background process that inherited the
/// pipes must not hold the engine forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// One command to run: a non-empty argv, its working directory and its extra environment.
pub(super) struct Invocation<'a> {
    pub(super) argv: &'a [String],
    pub(super) cwd: &'a Path,
    pub(super) env: Vec<(String, String)>,
}

/// How a child ended.
#[derive(Debug)]
pub(super) enum Ending {
    /// It exited (or was killed) on its own.
    Exited(ExitStatus),
    /// The token fired: it got SIGTERM (and SIGKILL when `killed`), or was never started.
    Cancelled { status: Option<ExitStatus>, killed: bool },
}

/// What [`run_subprocess`] saw.
#[derive(Debug)]
pub(super) struct Finished {
    ending: Ending,
    /// The last `engine.completed` report.
    pub(super) output_paths: Option<Vec<String>>,
    /// Why the run's log stopped taking events, if it did.
    log_error: Option<String>,
}

impl Finished {
    /// The failure (None on success) and the exit code; `who` names the command in messages,
    /// `nonzero` is the code of a failed exit.
    pub(super) fn failure(&self, who: &str, nonzero: &str, grace: Duration) -> (Option<EngineFailure>, Option<i32>) {
        match &self.ending {
            Ending::Cancelled { status, killed } => {
                let message = match (status, killed) {
                    (None, _) => format!("cancelled before the {who} started"),
                    (Some(_), false) => format!("cancelled: the {who} was stopped with SIGTERM"),
                    (Some(_), true) => {
                        format!(
                            "cancelled: the {who} did not exit within {grace:?} of SIGTERM and was killed with SIGKILL"
                        )
                    }
                };
                (Some(EngineFailure::new("cancelled", message)), status.and_then(|s| s.code()))
            }
            Ending::Exited(status) => {
                let exit_code = status.code();
                if let Some(e) = &self.log_error {
                    let message = format!("the run's event log refused an event of the {who}: {e}");
                    return (Some(EngineFailure::new("engine_error", message)), exit_code);
                }
                let message = match (status.code(), status.signal()) {
                    (Some(0), _) => return (None, exit_code),
                    (Some(code), _) => format!("{who} exited with code {code}"),
                    (None, Some(signal)) => format!("{who} was killed by signal {}", signal_name(signal)),
                    (None, None) => format!("{who} ended abnormally ({status})"),
                };
                (Some(EngineFailure::new(nonzero, message)), exit_code)
            }
        }
    }
}

/// `SIGKILL` for 9; the number when nix does not know it.
pub(super) fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| signal.to_string())
}

/// Runs one command to its end: spawns it, pumps its output into `sink`, forwards cancellation
/// (SIGTERM, then SIGKILL after `grace`), reaps it, and gives its readers [`DRAIN_TIMEOUT`] after
/// it exits.
///
/// # Errors
/// A message when the program cannot be started or waited for.
pub(super) async fn run_subprocess(
    invocation: Invocation<'_>,
    sink: &EventSink,
    cancel: &CancellationToken,
    grace: Duration,
) -> Result<Finished, String> {
    let Invocation { argv, cwd, env } = invocation;
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".to_owned());
    };
    if cancel.is_cancelled() {
        let ending = Ending::Cancelled { status: None, killed: false };
        return Ok(Finished { ending, output_paths: None, log_error: None });
    }
    // A relative path with a slash (`./engine.sh`) is relative to the working directory.
    let resolved = match Path::new(program) {
        path if path.is_relative() && program.contains('/') => cwd.join(path),
        _ => PathBuf::from(program),
    };
    let mut command = Command::new(&resolved);
    command
        .args(args)
        .current_dir(cwd)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a cancel also stops what a wrapper script started.
        .process_group(0)
        .kill_on_drop(true);
    // Killed by the kernel if ade dies (Linux): no engine outlives its server.
    let mut child = crate::engine::spawn::spawn(command)
        .await
        .map_err(|e| format!("cannot start {program:?} (working directory {}): {e}", cwd.display()))?;

    let mut out = PumpState::default();
    let mut err = PumpState::default();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut pumps = Box::pin(async {
        let out_pump = async {
            if let Some(stdout) = stdout {
                pump(stdout, ConsoleStream::Stdout, sink, &mut out).await;
            }
        };
        let err_pump = async {
            if let Some(stderr) = stderr {
                pump(stderr, ConsoleStream::Stderr, sink, &mut err).await;
            }
        };
        tokio::join!(out_pump, err_pump);
    });

    let mut pumps_done = false;
    let mut terminated = false;
    let mut killed = false;
    let kill_at = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(kill_at);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = &mut pumps, if !pumps_done => pumps_done = true,
            () = cancel.cancelled(), if !terminated => {
                terminated = true;
                signal_group(child.id(), nix::sys::signal::Signal::SIGTERM);
                kill_at.as_mut().reset(tokio::time::Instant::now() + grace);
            }
            () = &mut kill_at, if terminated && !killed => {
                killed = true;
                signal_group(child.id(), nix::sys::signal::Signal::SIGKILL);
                // Fails only when the child is already gone, which `wait` is about to report.
                let _ = child.start_kill();
            }
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let _ = child.start_kill();
            return Err(format!("waiting for {program:?} failed: {e}"));
        }
    };

    let mut stalled = false;
    if !pumps_done {
        stalled = tokio::time::timeout(DRAIN_TIMEOUT, &mut pumps).await.is_err();
    }
    drop(pumps);
    let log_error = out.log_error.or(err.log_error);
    if stalled && log_error.is_none() {
        let message = format!(
            "{program:?} exited but its output stayed open (a background process still holds it); \
             stopped reading it after {DRAIN_TIMEOUT:?}"
        );
        let _ = sink.console(ConsoleLevel::Warn, ConsoleStream::Stderr, message).await;
    }
    let ending = if terminated { Ending::Cancelled { status: Some(status), killed } } else { Ending::Exited(status) };
    Ok(Finished { ending, output_paths: out.output_paths, log_error })
}

/// Signals the process group of a child that has not been reaped yet (so its pid, which is
/// also its group's id, is still its own): the engine and whatever it started.
pub(super) fn signal_group(pid: Option<u32>, signal: nix::sys::signal::Signal) {
    use nix::unistd::Pid;
    if let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) {
        // Fails only when the group is already gone, which `wait` is about to report.
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), signal);
    }
}
