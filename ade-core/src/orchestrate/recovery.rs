//! Recovery at start-up (SPEC §6): no run stays active after the process that ran it died.
//!
//! - A run whose log already ends with `run.completed` but whose row is not terminal (the process
//!   died between the two writes) gets its row finished from the log.
//! - A run that was `building` or `running` is finalized `failed` with `orchestrator_lost`.
//! - Queued runs whose log holds only `run.queued` stay queued; their stale claims are dropped so
//!   the workers pick them up again. A queued run whose log goes further was started by a process
//!   whose row update was lost (a full disk): it is finalized as lost, never executed twice.
//! - Before any of that, processes the runs' engines left running are killed
//!   ([`kill_orphans`]), so that no output changes once a run is finalized.
//!
//! With stores shared by several processes (PostgreSQL) nothing is done at start-up: another
//! instance may be executing any active run. Instead [`reap_abandoned`] takes over, one at a time,
//! the active runs whose lease has expired, and ends them the same way.

use futures::StreamExt;

use super::Runtime;
use super::execute::{Ending, finalize};
use crate::coordinate::Coordinator;
use crate::engine::kill_orphans;
use crate::error::{Error, Result};
use crate::event::EventPayload;
use crate::run::{Run, RunStatus, Stage, failure_code};
use crate::store::{Finalization, LogTail, RunKey};

/// [`recover`], and when the stores refuse (a full disk at start), again in the background until
/// it succeeds or the runtime shuts down: the runtime starts anyway, serving reads and streams.
pub(super) async fn recover_or_retry(runtime: &Runtime) {
    let Err(error) = recover(runtime).await else { return };
    tracing::error!(%error, "could not recover the runs of a previous process; retrying in the background");
    let runtime = runtime.clone();
    runtime.inner.tasks.clone().spawn(async move {
        let mut delay = std::time::Duration::from_millis(500);
        loop {
            tokio::select! {
                () = runtime.inner.shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            match recover(&runtime).await {
                Ok(()) => return tracing::info!("recovered the runs of a previous process"),
                Err(error) => tracing::debug!(%error, "recovery still fails"),
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
        }
    });
}

pub(super) async fn recover(runtime: &Runtime) -> Result<()> {
    let stranded = runtime.inner.runs.runs_in(&[RunStatus::Queued, RunStatus::Building, RunStatus::Running]).await?;
    // Whatever their engines left running dies before any of them is finalized (the outputs of a
    // finished run never change), and even while a full disk holds the rest of recovery back.
    kill_orphans(stranded.iter().map(|run| run.id)).await;
    // The embedded stores belong to this process alone: whoever held a claim is gone.
    runtime.inner.runs.clear_leases().await?;
    for run in stranded {
        let key = RunKey::new(run.workspace_id.clone(), run.id);
        let tail = runtime.inner.dispatcher.store().tail(&key).await?;
        let outcome = if tail.terminal {
            finalize_from_log(runtime, &run).await
        } else if run.status == RunStatus::Queued && tail.last_sequence <= 1 {
            continue; // never started: the workers take it
        } else {
            // Started (a queued row whose log goes further missed its update): an engine runs
            // at most once per run.
            mark_lost(runtime, &run).await
        };
        match outcome {
            Ok(()) => tracing::info!(run_id = %run.id, "recovered a run left by a stopped process"),
            Err(error) if error.is_out_of_space() => return Err(error), // retried as a whole
            Err(error) => tracing::error!(run_id = %run.id, %error, "could not recover a run"),
        }
    }
    Ok(())
}

/// Ends the runs of shared stores whose executing instance stopped renewing its lease, until
/// shutdown. Taking a run over moves its lease here, which fences off the old owner's writes.
pub(super) async fn reap_abandoned(runtime: &Runtime, coordinator: &dyn Coordinator) {
    loop {
        match coordinator.claim_abandoned(&runtime.inner.owner, runtime.inner.lease).await {
            Ok(Some(run)) => {
                if crate::sync::lock(&runtime.inner.in_flight).contains(&run.id) {
                    // Our own run, whose renewal was late (a slow database): it goes on under the
                    // lease this claim just renewed.
                    continue;
                }
                let key = RunKey::new(run.workspace_id.clone(), run.id);
                let outcome = match runtime.inner.dispatcher.store().tail(&key).await {
                    Ok(tail) if tail.terminal => finalize_from_log(runtime, &run).await,
                    Ok(_) => {
                        // Its instance may be on this machine, alive but too slow to renew.
                        kill_orphans([run.id]).await;
                        mark_lost(runtime, &run).await
                    }
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(()) => tracing::warn!(run_id = %run.id, "ended a run whose instance stopped renewing its lease"),
                    Err(error) => tracing::error!(run_id = %run.id, %error, "could not end an abandoned run"),
                }
                continue; // there may be more
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "could not look for abandoned runs"),
        }
        tokio::select! {
            () = runtime.inner.shutdown.cancelled() => return,
            () = tokio::time::sleep(runtime.poll_interval()) => {}
        }
    }
}

/// Ends a run whose process died mid-run: `run.completed{failed, orchestrator_lost}`.
async fn mark_lost(runtime: &Runtime, run: &Run) -> Result<()> {
    let writer = runtime.inner.dispatcher.open_run_when_free(runtime.writer_context(run)).await?;
    if let Some(build_id) = run.build_id {
        writer.set_build_id(build_id);
    }
    let stage = if run.status == RunStatus::Building { Stage::Build } else { Stage::Run };
    let ending = Ending::failed(
        stage,
        failure_code::ORCHESTRATOR_LOST,
        "the process executing this run stopped before it finished",
    );
    finalize(runtime, run, &writer, ending, run.started_at).await.map(drop)
}

/// Finishes a run's row from the `run.completed` its log already ends with.
pub(super) async fn finalize_from_log(runtime: &Runtime, run: &Run) -> Result<()> {
    let key = RunKey::new(run.workspace_id.clone(), run.id);
    let tail = runtime.inner.dispatcher.store().tail(&key).await?;
    let finalization = completion_in_log(runtime, run, tail).await?.ok_or(Error::RunNotFound(run.id))?;
    runtime.inner.runs.finalize(run.id, finalization).await.map(drop)
}

/// The terminal state recorded by the `run.completed` the run's log ends with (`tail` is the
/// log's end), if it does.
pub(super) async fn completion_in_log(runtime: &Runtime, run: &Run, tail: LogTail) -> Result<Option<Finalization>> {
    if !tail.terminal {
        return Ok(None);
    }
    let key = RunKey::new(run.workspace_id.clone(), run.id);
    let mut events = runtime.inner.dispatcher.store().read_after(&key, tail.last_sequence.saturating_sub(1)).await?;
    let last = events.next().await.ok_or(Error::RunNotFound(run.id))??;
    let EventPayload::RunCompleted(completed) = &last.envelope()?.payload else {
        return Err(Error::CorruptEvent { sequence: last.sequence(), reason: "expected run.completed".to_owned() });
    };
    Ok(Some(Finalization {
        status: completed.status.into(),
        completed_at: completed.execution.completed_at,
        exit_code: completed.execution.exit_code,
        failure: completed.failure.clone(),
        summary: completed.summary.clone(),
        last_sequence: last.sequence(),
    }))
}
