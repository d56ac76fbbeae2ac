//! [`NdjsonEventStore`]: the embedded default. One `events.ndjson` per run under a data
//! directory, at `workspaces/<ws>/runs/<run_id>/logs/events.ndjson` (SPEC §6).
//!
//! Beside each log, `events.ndjson.idx` is a sparse index: fixed 16-byte records
//! `(sequence u64 LE, byte offset u64 LE)` for every [`INDEX_EVERY`]th event after the first (a log
//! shorter than that has no index file), so a read from any
//! sequence seeks close to it instead of scanning the log. The index is only a hint: an entry that
//! does not point at the line it names is ignored, and a missing one only costs a longer scan.
//!
//! Opening a log for appends repairs a torn last line (a crash mid-write) by truncating it; readers
//! never return a line without its newline. Appends that fail are rolled back (the file is truncated
//! to its previous length) and readers never read past the last successful append.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{Durability, EventStore, EventStream, LogTail, RunKey, check_continues};
use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::sync::lock;

/// One index record per this many events.
pub(crate) const INDEX_EVERY: u64 = 256;
/// Size of one index record.
const INDEX_RECORD: usize = 16;
/// Events a read hands out per trip to the blocking pool.
const READ_CHUNK: usize = 512;
/// How far back a tail scan reads at a time.
const TAIL_CHUNK: u64 = 64 * 1024;

/// NDJSON event logs under a data directory. Cloning shares the open logs.
#[derive(Debug, Clone)]
pub struct NdjsonEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Logs open for appends, one per run with a live writer.
    open: Mutex<HashMap<RunKey, Arc<Mutex<OpenLog>>>>,
    /// Bytes of log lines read by readers, for tests and diagnostics.
    bytes_read: AtomicU64,
}

/// A log open for appends.
#[derive(Debug)]
struct OpenLog {
    path: PathBuf,
    file: File,
    /// The sparse index, open once it exists (it is created with its first record).
    index: Option<File>,
    /// The index could not be written: stop trying, reads scan instead.
    index_broken: bool,
    /// Length of the log up to the end of the last successful append; readers stop here.
    len: u64,
    tail: LogTail,
}

impl NdjsonEventStore {
    /// A store keeping its logs under `data_dir` (created when needed).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                root: data_dir.into(),
                open: Mutex::new(HashMap::new()),
                bytes_read: AtomicU64::new(0),
            }),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.root
    }

    /// Where the run's log is.
    pub fn log_path(&self, run: &RunKey) -> PathBuf {
        self.inner
            .root
            .join("workspaces")
            .join(run.workspace_id.as_str())
            .join("runs")
            .join(run.run_id.to_string())
            .join("logs")
            .join("events.ndjson")
    }

    /// Total bytes of log lines readers have read so far (index reads not included).
    pub fn bytes_read(&self) -> u64 {
        self.inner.bytes_read.load(Ordering::Relaxed)
    }

    fn open_logs(&self) -> MutexGuard<'_, HashMap<RunKey, Arc<Mutex<OpenLog>>>> {
        lock(&self.inner.open)
    }

    /// The run's log open for appends, opening (and repairing) it on first use.
    fn open_log(&self, run: &RunKey) -> Result<Arc<Mutex<OpenLog>>> {
        if let Some(log) = self.open_logs().get(run) {
            return Ok(log.clone());
        }
        let log = Arc::new(Mutex::new(OpenLog::open(self.log_path(run))?));
        // Another append may have opened it meanwhile; keep the first so there is one handle.
        Ok(self.open_logs().entry(run.clone()).or_insert(log).clone())
    }

    /// How far readers may read: the committed length of an open log, else the file's length.
    fn readable_len(&self, run: &RunKey, path: &Path) -> Result<Option<u64>> {
        if let Some(log) = self.open_logs().get(run) {
            return Ok(Some(lock(log).len));
        }
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { action: "inspect", path: path.to_owned(), source }),
        }
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Task(e.to_string()))?
}

fn index_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("ndjson.idx")
}

impl OpenLog {
    fn open(path: PathBuf) -> Result<Self> {
        fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Error + 'p {
            move |source| Error::Io { action, path: path.to_owned(), source }
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io_err("open", &path))?;
        let (len, last_line) = complete_end(&mut file, &path)?;
        let file_len = file.metadata().map_err(io_err("inspect", &path))?.len();
        if file_len > len {
            tracing::warn!(path = %path.display(), dropped_bytes = file_len - len, "truncating a torn last line");
            file.set_len(len).map_err(io_err("truncate", &path))?;
            file.sync_data().map_err(io_err("sync", &path))?;
        }
        let tail = match last_line {
            None => LogTail::default(),
            Some(line) => {
                let event = StoredEvent::from_stored_json(Bytes::from(line))
                    .map_err(|e| Error::CorruptLog { path: path.clone(), reason: format!("last line: {e}") })?;
                LogTail { last_sequence: event.sequence(), terminal: event.is_terminal() }
            }
        };
        let index = open_index(&path, len);
        Ok(Self { path, file, index, index_broken: false, len, tail })
    }

    fn append(&mut self, run: &RunKey, events: &[Arc<StoredEvent>], durability: Durability) -> Result<()> {
        check_continues(run, self.tail, events)?;
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.json().len() + 1).sum());
        let mut index = Vec::new();
        for event in events {
            // Sequence 1 is at offset 0 and needs no record, so short logs never create an index.
            if event.sequence() > 1 && (event.sequence() - 1) % INDEX_EVERY == 0 {
                index.extend_from_slice(&event.sequence().to_le_bytes());
                index.extend_from_slice(&(self.len + buf.len() as u64).to_le_bytes());
            }
            buf.extend_from_slice(event.json());
            buf.push(b'\n');
        }
        let sync = durability == Durability::Fsync || events.iter().any(|e| e.is_terminal());
        let written = self.file.write_all(&buf).and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(source) = written {
            // Roll back so the log holds exactly the acknowledged events.
            if let Err(rollback) = self.file.set_len(self.len) {
                tracing::error!(path = %self.path.display(), error = %rollback, "could not roll back a failed append");
            }
            return Err(Error::Io { action: "append to", path: self.path.clone(), source });
        }
        self.len += buf.len() as u64;
        if let Some(last) = events.last() {
            self.tail = LogTail { last_sequence: last.sequence(), terminal: last.is_terminal() };
        }
        if !index.is_empty() && self.index.is_none() && !self.index_broken {
            self.index = create_index(&self.path);
            self.index_broken = self.index.is_none();
        }
        if !index.is_empty()
            && let Some(file) = &mut self.index
            && let Err(e) = file.write_all(&index)
        {
            // The index is a hint; without it reads scan further.
            tracing::warn!(path = %self.path.display(), error = %e, "could not extend the log index");
            self.index = None;
            self.index_broken = true;
        }
        Ok(())
    }
}

/// Opens the index for appends, dropping records that point past the log's end.
fn open_index(log_path: &Path, log_len: u64) -> Option<File> {
    let path = index_path(log_path);
    let file = match OpenOptions::new().read(true).append(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None, // created with its first record
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no log index; reads will scan");
            return None;
        }
    };
    // Records ascend by offset: drop those from the end that point past the log (a torn tail).
    let keep = (|| -> io::Result<u64> {
        let mut keep = index_len(&file)?;
        while keep > 0 && index_record(&file, keep - 1)?.1 >= log_len {
            keep -= 1;
        }
        Ok(keep)
    })()
    .unwrap_or(0);
    let keep_len = keep * INDEX_RECORD as u64;
    if file.metadata().map(|m| m.len()).unwrap_or(0) != keep_len && file.set_len(keep_len).is_err() {
        return None;
    }
    Some(file)
}

#[cfg(test)]
fn read_index(file: &mut File) -> io::Result<Vec<(u64, u64)>> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes
        .chunks_exact(INDEX_RECORD)
        .map(|r| {
            let (seq, offset) = r.split_at(8);
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
            (word(seq), word(offset))
        })
        .collect())
}

/// Creates the index of a log for appends.
fn create_index(log_path: &Path) -> Option<File> {
    let path = index_path(log_path);
    match OpenOptions::new().read(true).append(true).create(true).open(&path) {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not create the log index; reads will scan");
            None
        }
    }
}

/// The `i`th record of an index.
fn index_record(mut index: &File, i: u64) -> io::Result<(u64, u64)> {
    let mut buf = [0u8; INDEX_RECORD];
    index.seek(SeekFrom::Start(i * INDEX_RECORD as u64))?;
    index.read_exact(&mut buf)?;
    let (seq, offset) = buf.split_at(8);
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    Ok((word(seq), word(offset)))
}

fn index_len(index: &File) -> io::Result<u64> {
    Ok(index.metadata()?.len() / INDEX_RECORD as u64)
}

/// The last index record at or before `sequence`, by binary search: a resume touches O(log n)
/// records of the index, not all of it.
fn seek_index(index: &File, sequence: u64) -> io::Result<Option<(u64, u64)>> {
    let records = index_len(index)?;
    // A complete index has record i for sequence 1 + (i + 1)·INDEX_EVERY: try that record first.
    if let Some(direct) = (sequence.saturating_sub(1) / INDEX_EVERY).checked_sub(1)
        && records > 0
    {
        let direct = direct.min(records - 1);
        let record = index_record(index, direct)?;
        if record.0 == 1 + (direct + 1) * INDEX_EVERY && record.0 <= sequence {
            return Ok(Some(record));
        }
    }
    let (mut low, mut high) = (0u64, records);
    // Invariant: records before `low` are at or before `sequence`; records from `high` on are after.
    while low < high {
        let mid = low + (high - low) / 2;
        if index_record(index, mid)?.0 <= sequence {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low.checked_sub(1).map(|i| index_record(index, i)).transpose()
}

/// The length of the log up to its last newline, and that last complete line.
fn complete_end(file: &mut File, path: &Path) -> Result<(u64, Option<Vec<u8>>)> {
    let io_err = |source| Error::Io { action: "read", path: path.to_owned(), source };
    let len = file.metadata().map_err(io_err)?.len();
    // Read backwards until two newlines (or the start) bracket the last complete line.
    let mut tail: Vec<u8> = Vec::new();
    let mut start = len;
    loop {
        let newlines: Vec<usize> = tail.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
        let complete_end = newlines.last().map(|i| start + *i as u64 + 1);
        if let Some(end) = complete_end {
            let end_in_tail = (end - start) as usize;
            if newlines.len() >= 2 || start == 0 {
                let line_start = if newlines.len() >= 2 { newlines[newlines.len() - 2] + 1 } else { 0 };
                return Ok((end, Some(tail[line_start..end_in_tail - 1].to_vec())));
            }
        } else if start == 0 {
            return Ok((0, None));
        }
        let read_from = start.saturating_sub(TAIL_CHUNK);
        let mut chunk = vec![0; (start - read_from) as usize];
        file.seek(SeekFrom::Start(read_from)).map_err(io_err)?;
        file.read_exact(&mut chunk).map_err(io_err)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = read_from;
    }
}

/// A read of one log from a cursor, a chunk at a time. It holds no file between chunks: each
/// chunk opens the log, reads from `pos` and closes it, so thousands of readers that are behind
/// (SSE subscribers catching up) cost neither file descriptors nor read buffers while they wait.
struct LogReader {
    path: PathBuf,
    /// Offset of the next line.
    pos: u64,
    /// Readers stop here (the end of the last successful append).
    limit: u64,
    /// Sequence of the last event handed out or skipped.
    last: u64,
    /// Events at or below this are skipped.
    after: u64,
    /// The sequence the first line must have when the start came from the index.
    expect_first: Option<u64>,
    /// An error met after some events of a chunk: those are handed out, it comes next.
    broken: Option<Error>,
}

impl LogReader {
    fn open(path: PathBuf, limit: u64, after: u64) -> Result<Self> {
        // A log that cannot be opened is an error of the read, not of its first chunk.
        File::open(&path).map_err(|source| Error::Io { action: "read", path: path.clone(), source })?;
        let (pos, expect_first) = match File::open(index_path(&path)).and_then(|index| seek_index(&index, after + 1)) {
            Ok(Some((seq, offset))) if offset < limit => (offset, Some(seq)),
            _ => (0, None),
        };
        Ok(Self { path, pos, limit, last: 0, after, expect_first, broken: None })
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptLog { path: self.path.clone(), reason: format!("at byte {}: {reason}", self.pos) }
    }

    fn io_error(&self, source: io::Error) -> Error {
        Error::Io { action: "read", path: self.path.clone(), source }
    }

    /// `events` (read before `error`) now and `error` at the next call; `error` now without any.
    fn broken_after(&mut self, events: Vec<Arc<StoredEvent>>, error: Error) -> Result<Vec<Arc<StoredEvent>>> {
        if events.is_empty() {
            return Err(error);
        }
        self.broken = Some(error);
        Ok(events)
    }

    /// The next chunk of events; empty at the end.
    fn next_chunk(&mut self, bytes_read: &AtomicU64) -> Result<Vec<Arc<StoredEvent>>> {
        if let Some(error) = self.broken.take() {
            return Err(error);
        }
        let mut events = Vec::new();
        if self.pos >= self.limit {
            return Ok(events);
        }
        let mut file = File::open(&self.path).map_err(|e| self.io_error(e))?;
        file.seek(SeekFrom::Start(self.pos)).map_err(|e| self.io_error(e))?;
        let mut reader = BufReader::with_capacity(64 * 1024, file.take(self.limit - self.pos));
        let mut line = Vec::new();
        while events.len() < READ_CHUNK && self.pos < self.limit {
            line.clear();
            let n = match reader.read_until(b'\n', &mut line) {
                Ok(n) => n,
                Err(e) => {
                    let error = self.io_error(e);
                    return self.broken_after(events, error);
                }
            };
            if n == 0 || line.last() != Some(&b'\n') {
                break; // a line still being written, or torn: not part of the log yet
            }
            bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            line.pop();
            let event = match StoredEvent::from_stored_json(Bytes::copy_from_slice(&line)) {
                Ok(event) => event,
                Err(_) if self.expect_first.is_some() => return self.restart_from_scratch(bytes_read),
                Err(e) => {
                    let error = self.corrupt(e.to_string());
                    return self.broken_after(events, error);
                }
            };
            if let Some(expected) = self.expect_first.take()
                && event.sequence() != expected
            {
                return self.restart_from_scratch(bytes_read);
            }
            if self.last != 0 && event.sequence() != self.last + 1 {
                let error = self.corrupt(format!("sequence {} follows {}", event.sequence(), self.last));
                return self.broken_after(events, error);
            }
            self.pos += n as u64;
            self.last = event.sequence();
            if event.sequence() > self.after {
                events.push(Arc::new(event));
            }
        }
        Ok(events)
    }

    /// The index pointed at the wrong place: ignore it and scan from the start.
    fn restart_from_scratch(&mut self, bytes_read: &AtomicU64) -> Result<Vec<Arc<StoredEvent>>> {
        tracing::warn!(path = %self.path.display(), "log index does not match the log; scanning");
        self.pos = 0;
        self.last = 0;
        self.expect_first = None;
        self.next_chunk(bytes_read)
    }
}

#[async_trait]
impl EventStore for NdjsonEventStore {
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], durability: Durability) -> Result<()> {
        let store = self.clone();
        let run = run.clone();
        let events = events.to_vec();
        blocking(move || {
            let log = store.open_log(&run)?;
            let mut log = lock(&log);
            log.append(&run, &events, durability)
        })
        .await
    }

    async fn read_after(&self, run: &RunKey, after: u64) -> Result<EventStream> {
        let path = self.log_path(run);
        let Some(limit) = self.readable_len(run, &path)? else {
            return Ok(futures::stream::empty().boxed());
        };
        let reader = blocking(move || LogReader::open(path, limit, after)).await?;
        let store = self.clone();
        let chunks = futures::stream::unfold(Some(reader), move |reader| {
            let store = store.clone();
            async move {
                let mut reader = reader?;
                let read = blocking(move || {
                    let chunk = reader.next_chunk(&store.inner.bytes_read);
                    Ok((chunk, reader))
                })
                .await;
                match read {
                    Ok((Ok(chunk), _)) if chunk.is_empty() => None,
                    Ok((Ok(chunk), reader)) => {
                        Some((futures::stream::iter(chunk.into_iter().map(Ok)).boxed(), Some(reader)))
                    }
                    Ok((Err(e), _)) | Err(e) => Some((futures::stream::iter([Err(e)]).boxed(), None)),
                }
            }
        });
        Ok(chunks.flatten().boxed())
    }

    async fn tail(&self, run: &RunKey) -> Result<LogTail> {
        if let Some(log) = self.open_logs().get(run) {
            return Ok(lock(log).tail);
        }
        let path = self.log_path(run);
        blocking(move || {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogTail::default()),
                Err(source) => return Err(Error::Io { action: "open", path, source }),
            };
            match complete_end(&mut file, &path)? {
                (_, None) => Ok(LogTail::default()),
                (_, Some(line)) => {
                    let event = StoredEvent::from_stored_json(Bytes::from(line))
                        .map_err(|e| Error::CorruptLog { path: path.clone(), reason: format!("last line: {e}") })?;
                    Ok(LogTail { last_sequence: event.sequence(), terminal: event.is_terminal() })
                }
            }
        })
        .await
    }

    async fn release(&self, run: &RunKey) {
        self.open_logs().remove(run);
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use crate::store::conformance;
    use crate::testing::{completed, lines, run_key, stored};

    #[tokio::test]
    async fn conforms() {
        conformance::run_all(&|| async {
            let dir = tempfile::tempdir().expect("temp dir");
            (Arc::new(NdjsonEventStore::new(dir.path())) as Arc<dyn EventStore>, dir)
        })
        .await;
    }

    async fn sequences(store: &NdjsonEventStore, run: &RunKey, after: u64) -> Vec<u64> {
        let events: Vec<_> = store.read_after(run, after).await.expect("read").try_collect().await.expect("events");
        events.iter().map(|e| e.sequence()).collect()
    }

    #[tokio::test]
    async fn logs_live_at_the_spec_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NdjsonEventStore::new(dir.path());
        let run = run_key("acme");
        store.append(&run, &lines(&run, 1, 2), Durability::Buffered).await.expect("append");
        let path = dir.path().join(format!("workspaces/acme/runs/{}/logs/events.ndjson", run.run_id));
        let text = fs::read_to_string(&path).expect("log at the SPEC path");
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| serde_json::from_str::<crate::event::Envelope>(l).is_ok()));
    }

    #[tokio::test]
    async fn a_restarted_store_continues_the_sequence() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = run_key("acme");
        {
            let store = NdjsonEventStore::new(dir.path());
            store.append(&run, &lines(&run, 1, 600), Durability::Buffered).await.expect("append");
        }
        let store = NdjsonEventStore::new(dir.path());
        assert_eq!(store.tail(&run).await.expect("tail"), LogTail { last_sequence: 600, terminal: false });
        let stale = store.append(&run, &lines(&run, 600, 600), Durability::Buffered).await;
        assert!(matches!(stale, Err(Error::SequenceConflict { expected: 601, .. })), "{stale:?}");
        store.append(&run, &lines(&run, 601, 700), Durability::Buffered).await.expect("continue");
        assert_eq!(sequences(&store, &run, 0).await, (1..=700).collect::<Vec<_>>());
        assert_eq!(sequences(&store, &run, 650).await, (651..=700).collect::<Vec<_>>());
    }

    /// A store in a temporary directory holding a log of `events` console lines that no writer has
    /// open any more.
    async fn released_log(events: u64) -> (tempfile::TempDir, RunKey, NdjsonEventStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = run_key("acme");
        let store = NdjsonEventStore::new(dir.path());
        store.append(&run, &lines(&run, 1, events), Durability::Buffered).await.expect("append");
        store.release(&run).await;
        (dir, run, store)
    }

    #[tokio::test]
    async fn a_log_torn_mid_line_opens_cleanly() {
        let (dir, run, store) = released_log(300).await;
        let path = store.log_path(&run);
        // A crash in the middle of writing event 300: its line is cut short.
        let len = fs::metadata(&path).expect("log").len();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(len - 40).expect("tear");
        drop(file);

        let store = NdjsonEventStore::new(dir.path());
        assert_eq!(store.tail(&run).await.expect("tail").last_sequence, 299, "readers ignore the torn line");
        assert_eq!(sequences(&store, &run, 290).await, (291..=299).collect::<Vec<_>>());
        // The writer repairs the log and continues right after the last complete event.
        store.append(&run, &lines(&run, 300, 301), Durability::Buffered).await.expect("append after repair");
        assert_eq!(sequences(&store, &run, 0).await, (1..=301).collect::<Vec<_>>());
        let text = fs::read_to_string(&path).expect("log");
        assert!(text.ends_with('\n') && text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }

    #[tokio::test]
    async fn reading_from_the_middle_of_a_long_log_reads_only_its_tail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = run_key("acme");
        let store = NdjsonEventStore::new(dir.path());
        let n = 20_000;
        for batch in lines(&run, 1, n).chunks(1000) {
            store.append(&run, batch, Durability::Buffered).await.expect("append");
        }
        store.release(&run).await;
        let log_len = fs::metadata(store.log_path(&run)).expect("log").len();
        let line_len = log_len / n;

        let before = store.bytes_read();
        assert_eq!(sequences(&store, &run, n - 10).await, (n - 9..=n).collect::<Vec<_>>());
        let read = store.bytes_read() - before;
        assert!(
            read <= (INDEX_EVERY + 2) * line_len * 2,
            "read {read} bytes of a {log_len}-byte log to get its last 10 events"
        );

        // Overwrite the head of the log with garbage: a read from the tail never looks at it.
        let mut file = OpenOptions::new().write(true).open(store.log_path(&run)).expect("open");
        file.write_all(&vec![b'#'; 10_000]).expect("scribble");
        assert_eq!(sequences(&store, &run, n - 3).await, vec![n - 2, n - 1, n]);
        let from_start = store.read_after(&run, 0).await.expect("read").try_collect::<Vec<_>>().await;
        assert!(matches!(from_start, Err(Error::CorruptLog { .. })), "the head is corrupt");
    }

    #[tokio::test]
    async fn a_corrupt_line_comes_after_the_events_before_it() {
        let (_dir, run, store) = released_log(10).await;
        let path = store.log_path(&run);
        let text = fs::read_to_string(&path).expect("log");
        let scribbled: String = text
            .lines()
            .enumerate()
            .map(|(i, line)| if i == 4 { format!("{}\n", "#".repeat(line.len())) } else { format!("{line}\n") })
            .collect();
        fs::write(&path, scribbled).expect("scribble");
        let items: Vec<_> = store.read_after(&run, 0).await.expect("read").collect().await;
        let sequences: Vec<u64> = items.iter().filter_map(|item| item.as_ref().ok()).map(|e| e.sequence()).collect();
        assert_eq!(sequences, [1, 2, 3, 4], "every event before the corrupt line");
        assert_eq!(items.len(), 5, "then the error, then the end");
        assert!(matches!(items[4], Err(Error::CorruptLog { .. })), "{:?}", items[4].as_ref().err());
    }

    /// File descriptors this process has open.
    #[cfg(target_os = "linux")]
    fn open_files() -> usize {
        fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn readers_waiting_between_chunks_hold_no_file_open() {
        let n = 3 * READ_CHUNK as u64;
        let (_dir, run, store) = released_log(n).await;
        // Readers that took one event and wait (SSE subscribers behind on slow sockets).
        let before = open_files();
        let mut readers = Vec::new();
        for _ in 0..500 {
            let mut reader = store.read_after(&run, 0).await.expect("read");
            let first = reader.next().await.expect("an event").expect("readable");
            assert_eq!(first.sequence(), 1);
            readers.push(reader);
        }
        // Other tests run in this process too (a hundred files or more when the runtime's tests
        // overlap this one): allow for their files, not for one per reader.
        let grown = open_files().saturating_sub(before);
        assert!(grown < 250, "500 waiting readers hold {grown} more files open");
        for mut reader in readers.drain(..10) {
            let mut last = 1;
            while let Some(event) = reader.next().await {
                let event = event.expect("readable");
                assert_eq!(event.sequence(), last + 1);
                last = event.sequence();
            }
            assert_eq!(last, n, "a reader resumed after waiting reads to the end");
        }
    }

    #[tokio::test]
    async fn a_wrong_or_missing_index_only_costs_a_scan() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = run_key("acme");
        let store = NdjsonEventStore::new(dir.path());
        store.append(&run, &lines(&run, 1, 1000), Durability::Buffered).await.expect("append");
        store.append(&run, &[stored(&run, 1001, completed(&run, 1001))], Durability::Fsync).await.expect("complete");
        store.release(&run).await;
        let index = index_path(&store.log_path(&run));
        // Every record now points 7 bytes off.
        let records = read_index(&mut File::open(&index).expect("index")).expect("records");
        let shifted: Vec<u8> =
            records.iter().flat_map(|(seq, offset)| [seq.to_le_bytes(), (offset + 7).to_le_bytes()].concat()).collect();
        fs::write(&index, shifted).expect("corrupt index");
        assert_eq!(sequences(&store, &run, 900).await, (901..=1001).collect::<Vec<_>>());
        fs::remove_file(&index).expect("remove index");
        assert_eq!(sequences(&store, &run, 998).await, vec![999, 1000, 1001]);
        assert_eq!(store.tail(&run).await.expect("tail"), LogTail { last_sequence: 1001, terminal: true });
    }
}
