//! Fault injection: [`FaultyEventStore`] and [`FaultyRunStore`] wrap a store and fail the calls a
//! [`FaultPlan`] names with "no space left on device" or an I/O error, so that tests can show what
//! a full disk or a failing device does to a run without filling a real one; and [`SmallDisk`], a
//! real file system of a few megabytes that a test fills up and frees.
//!
//! Compiled for ade-core's own tests and with the cargo feature `test-util`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    CreateOutcome, Document, Durability, EventStore, EventStream, ExportBacklog, Finalization, IdempotencyKey, LogTail,
    RunFilter, RunKey, RunPage, RunStore, Transition,
};
use crate::error::{Error, Result};
use crate::event::{DocumentId, RunId, StoredEvent, WorkspaceId};
use crate::run::{Run, RunStatus};
use crate::sync::lock;

/// What an injected failure looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `ENOSPC`: the disk is full.
    NoSpace,
    /// `EIO`: the device failed.
    Io,
}

impl Fault {
    fn error(self, operation: &'static str) -> Error {
        let code = match self {
            Self::NoSpace => nix::libc::ENOSPC,
            Self::Io => nix::libc::EIO,
        };
        let source = std::io::Error::from_raw_os_error(code);
        Error::Io { action: "write (fault injected)", path: operation.into(), source }
    }
}

/// One operation's rule: which of its calls fail.
#[derive(Debug, Clone, Copy)]
struct Rule {
    fault: Fault,
    /// The first failing call, counted from 1 over all calls of the operation.
    from_call: u64,
    /// How many calls fail from there; `None`: all, until [`FaultPlan::heal`].
    count: Option<u64>,
}

/// Which calls fail, by operation (the store trait's method name: `append`, `create_run`,
/// `transition`, `finalize`, …). Shared by the wrappers it is given to; change it while they run.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Mutex<HashMap<&'static str, Rule>>,
    calls: Mutex<HashMap<&'static str, u64>>,
}

impl FaultPlan {
    /// A plan that fails nothing yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Every call of `operation` from now on fails with `fault`, until [`heal`](Self::heal).
    pub fn fail(&self, operation: &'static str, fault: Fault) {
        let next = self.calls(operation) + 1;
        lock(&self.rules).insert(operation, Rule { fault, from_call: next, count: None });
    }

    /// The `nth` call of `operation` from now (1: the next one) and the `count - 1` after it fail
    /// with `fault`; the others go through.
    pub fn fail_calls(&self, operation: &'static str, nth: u64, count: u64, fault: Fault) {
        let from_call = self.calls(operation) + nth.max(1);
        lock(&self.rules).insert(operation, Rule { fault, from_call, count: Some(count) });
    }

    /// Nothing fails any more: the disk has room again.
    pub fn heal(&self) {
        lock(&self.rules).clear();
    }

    /// How many times `operation` was called so far (failed calls included).
    pub fn calls(&self, operation: &'static str) -> u64 {
        lock(&self.calls).get(operation).copied().unwrap_or(0)
    }

    /// Counts a call of `operation`; its injected error, if the plan fails it.
    fn check(&self, operation: &'static str) -> Result<()> {
        let call = {
            let mut calls = lock(&self.calls);
            let call = calls.entry(operation).or_insert(0);
            *call += 1;
            *call
        };
        match lock(&self.rules).get(operation) {
            Some(rule) if call >= rule.from_call && rule.count.is_none_or(|n| call < rule.from_call + n) => {
                Err(rule.fault.error(operation))
            }
            _ => Ok(()),
        }
    }
}

/// An [`EventStore`] whose calls fail as its [`FaultPlan`] says (operations `append`,
/// `append_leased`, `read_after`, `tail`).
#[derive(Debug)]
pub struct FaultyEventStore {
    inner: Arc<dyn EventStore>,
    plan: Arc<FaultPlan>,
}

impl FaultyEventStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn EventStore>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }
}

#[async_trait]
impl EventStore for FaultyEventStore {
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], durability: Durability) -> Result<()> {
        self.plan.check("append")?;
        self.inner.append(run, events, durability).await
    }

    async fn append_leased(
        &self,
        run: &RunKey,
        events: &[Arc<StoredEvent>],
        durability: Durability,
        owner: &str,
    ) -> Result<()> {
        self.plan.check("append_leased")?;
        self.inner.append_leased(run, events, durability, owner).await
    }

    async fn read_after(&self, run: &RunKey, after: u64) -> Result<EventStream> {
        self.plan.check("read_after")?;
        self.inner.read_after(run, after).await
    }

    async fn tail(&self, run: &RunKey) -> Result<LogTail> {
        self.plan.check("tail")?;
        self.inner.tail(run).await
    }

    async fn release(&self, run: &RunKey) {
        self.inner.release(run).await;
    }
}

/// A [`RunStore`] whose calls fail as its [`FaultPlan`] says (operations named after the trait's
/// methods).
#[derive(Debug)]
pub struct FaultyRunStore {
    inner: Arc<dyn RunStore>,
    plan: Arc<FaultPlan>,
}

impl FaultyRunStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn RunStore>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }
}

#[async_trait]
impl RunStore for FaultyRunStore {
    async fn create_run(&self, run: &Run, idempotency: Option<&IdempotencyKey>) -> Result<CreateOutcome> {
        self.plan.check("create_run")?;
        self.inner.create_run(run, idempotency).await
    }

    async fn get_run(&self, workspace_id: Option<&WorkspaceId>, id: RunId) -> Result<Option<Run>> {
        self.plan.check("get_run")?;
        self.inner.get_run(workspace_id, id).await
    }

    async fn list_runs(&self, filter: &RunFilter, limit: usize, cursor: Option<&str>) -> Result<RunPage> {
        self.plan.check("list_runs")?;
        self.inner.list_runs(filter, limit, cursor).await
    }

    async fn transition(&self, id: RunId, transition: Transition) -> Result<Run> {
        self.plan.check("transition")?;
        self.inner.transition(id, transition).await
    }

    async fn finalize(&self, id: RunId, finalization: Finalization) -> Result<Run> {
        self.plan.check("finalize")?;
        self.inner.finalize(id, finalization).await
    }

    async fn claim_queued(&self, owner: &str, lease: Duration) -> Result<Option<Run>> {
        self.plan.check("claim_queued")?;
        self.inner.claim_queued(owner, lease).await
    }

    async fn renew_lease(&self, id: RunId, owner: &str, lease: Duration) -> Result<bool> {
        self.plan.check("renew_lease")?;
        self.inner.renew_lease(id, owner, lease).await
    }

    async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<Run>> {
        self.plan.check("runs_in")?;
        self.inner.runs_in(statuses).await
    }

    async fn clear_leases(&self) -> Result<()> {
        self.plan.check("clear_leases")?;
        self.inner.clear_leases().await
    }

    async fn export_cursor(&self, exporter: &str, run: RunId) -> Result<u64> {
        self.plan.check("export_cursor")?;
        self.inner.export_cursor(exporter, run).await
    }

    async fn ack_export(&self, exporter: &str, run: RunId, sequence: u64) -> Result<()> {
        self.plan.check("ack_export")?;
        self.inner.ack_export(exporter, run, sequence).await
    }

    async fn export_backlog(&self, exporter: &str, after: Option<RunId>, limit: usize) -> Result<Vec<ExportBacklog>> {
        self.plan.check("export_backlog")?;
        self.inner.export_backlog(exporter, after, limit).await
    }

    async fn create_document(&self, document: &Document) -> Result<()> {
        self.plan.check("create_document")?;
        self.inner.create_document(document).await
    }

    async fn get_document(&self, workspace_id: Option<&WorkspaceId>, id: DocumentId) -> Result<Option<Document>> {
        self.plan.check("get_document")?;
        self.inner.get_document(workspace_id, id).await
    }
}

/// A tmpfs of a few megabytes mounted on a fresh directory (unmounted and removed when dropped):
/// a real file system that fills up, for tests of what ade does on a full disk. Mounting needs
/// root (CI runs as root); elsewhere [`mount`](Self::mount) says why it cannot.
#[derive(Debug)]
pub struct SmallDisk {
    path: std::path::PathBuf,
    filler: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on a new directory under the system's temporary directory.
    ///
    /// # Errors
    /// Why it could not be mounted (not root, no `mount`, …).
    pub fn mount(bytes: u64) -> std::result::Result<Self, String> {
        let path = std::env::temp_dir().join(format!("ade-small-disk-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output();
        match mounted {
            Ok(output) if output.status.success() => {
                let filler = path.join("filler");
                Ok(Self { path, filler })
            }
            outcome => {
                let _ = std::fs::remove_dir(&path);
                Err(match outcome {
                    Ok(output) => format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
                    Err(e) => format!("cannot run mount: {e}"),
                })
            }
        }
    }

    /// [`mount`](Self::mount), or `None` after printing why the test is skipped; a test that
    /// must run (`ADE_REQUIRE_TMPFS=1`, set by CI, which runs as root) panics instead.
    pub fn mount_or_skip(bytes: u64) -> Option<Self> {
        match Self::mount(bytes) {
            Ok(disk) => Some(disk),
            Err(reason) if std::env::var_os("ADE_REQUIRE_TMPFS").is_some_and(|v| v == "1") => {
                panic!("ADE_REQUIRE_TMPFS=1 but no small disk could be mounted: {reason}")
            }
            Err(reason) => {
                eprintln!("skipped: a full-disk test needs a tmpfs it can mount (as root): {reason}");
                None
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Fills what is left of the disk with one file, until the file system says it is full.
    ///
    /// # Panics
    /// When writing fails for another reason than a full disk (a test helper).
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.filler.display()));
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if crate::error::io_out_of_space(&e) => break,
                Err(e) => panic!("filling the small disk: {e}"),
            }
        }
    }

    /// Frees what [`fill`](Self::fill) took.
    pub fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_fails_exactly_the_calls_it_names() {
        let plan = FaultPlan::new();
        assert!(plan.check("append").is_ok());
        plan.fail_calls("append", 2, 2, Fault::Io);
        let outcomes: Vec<bool> = (0..5).map(|_| plan.check("append").is_ok()).collect();
        assert_eq!(outcomes, [true, false, false, true, true]);
        assert_eq!(plan.calls("append"), 6);
        assert!(plan.check("tail").is_ok(), "other operations are not touched");

        plan.fail("append", Fault::NoSpace);
        let error = plan.check("append").expect_err("fails until healed");
        assert!(error.is_out_of_space(), "{error}");
        assert!(plan.check("append").is_err());
        plan.heal();
        assert!(plan.check("append").is_ok());
        assert!(!Fault::Io.error("append").is_out_of_space());
    }
}
