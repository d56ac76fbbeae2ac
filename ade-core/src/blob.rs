//! Where document bytes and run outputs live: a [`BlobStore`] of named byte strings.
//!
//! The store is an edge of its own so that several server instances can share one (SPEC §6): the
//! default [`DirBlobStore`] is a directory (the data directory; for a PostgreSQL deployment a
//! shared mount that every instance sees), and an object store (S3-like) can implement the same
//! trait later without changing its callers. Keys are [`BlobKey`]s, built only from checked
//! segments, so no key can name anything outside the store.
//!
//! Layout (the same for every store, so that a directory of today's data can be copied into an
//! object store as it is): documents at `workspaces/<ws>/documents/<doc_id>/<name>`, outputs at
//! `workspaces/<ws>/runs/<run_id>/outputs/<name>`.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use crate::error::{Error, Result, excerpt};
use crate::event::{DocumentId, RunId, WorkspaceId};

/// The longest segment: what common file systems take as one file name.
const MAX_SEGMENT_BYTES: usize = 255;

/// How much of a body is read at a time while it is written.
const CHUNK_BYTES: usize = 64 * 1024;

/// The name of a blob: `/`-separated segments, each a plain file name.
///
/// A segment is never empty, `.` or `..`, never starts with `.` (such names are the stores' own
/// temporary files), holds no `/`, `\` or control character, and is at most 255 bytes; a key has
/// at least one segment and is never absolute. So a key joined to a directory stays inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    /// A key of `segments`, in order.
    ///
    /// # Errors
    /// [`Error::InvalidBlobKey`] when a segment breaks the rules above, or there is none.
    pub fn from_segments<I, S>(segments: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut key = String::new();
        for segment in segments {
            let segment = segment.as_ref();
            check_segment(segment).map_err(|reason| Error::InvalidBlobKey { key: excerpt(segment), reason })?;
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(segment);
        }
        if key.is_empty() {
            return Err(Error::InvalidBlobKey { key: String::new(), reason: "a key has at least one segment" });
        }
        Ok(Self(key))
    }

    /// This key with one more segment at its end.
    ///
    /// # Errors
    /// [`Error::InvalidBlobKey`] when `segment` is not a valid segment.
    pub fn join(&self, segment: &str) -> Result<Self> {
        check_segment(segment).map_err(|reason| Error::InvalidBlobKey { key: excerpt(segment), reason })?;
        Ok(Self(format!("{}/{segment}", self.0)))
    }

    /// The key as text, segments joined by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment (a document's or an output's file name).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// Where a document's bytes are: `workspaces/<ws>/documents/<doc_id>/<filename>`.
    ///
    /// # Errors
    /// [`Error::InvalidBlobKey`] when `filename` is not a valid segment (a name made by
    /// [`sanitize_filename`](crate::orchestrate::sanitize_filename) always is).
    pub fn document(workspace_id: &WorkspaceId, id: DocumentId, filename: &str) -> Result<Self> {
        Self(format!("workspaces/{}/documents/{id}", workspace_id.as_str())).join(filename)
    }

    /// The prefix of a run's outputs: `workspaces/<ws>/runs/<run_id>/outputs`.
    pub fn run_outputs(workspace_id: &WorkspaceId, run_id: RunId) -> Self {
        // Workspace names and run ids are valid segments by construction (letters, digits, `_-.`,
        // never a leading `.`).
        Self(format!("workspaces/{}/runs/{run_id}/outputs", workspace_id.as_str()))
    }

    /// One output of a run: `workspaces/<ws>/runs/<run_id>/outputs/<name>`.
    ///
    /// # Errors
    /// [`Error::InvalidBlobKey`] when `name` is not a valid segment.
    pub fn output(workspace_id: &WorkspaceId, run_id: RunId, name: &str) -> Result<Self> {
        Self::run_outputs(workspace_id, run_id).join(name)
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BlobKey {
    type Err = Error;

    /// Parses `a/b/c`; a leading, trailing or doubled `/` makes an empty segment, which is refused.
    fn from_str(key: &str) -> Result<Self> {
        Self::from_segments(key.split('/'))
    }
}

/// Why `segment` cannot be part of a key, if it cannot.
fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("empty segment");
    }
    if segment == "." || segment == ".." {
        return Err("`.` and `..` are not names");
    }
    if segment.starts_with('.') {
        return Err("names starting with `.` are reserved for the store's temporary files");
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err("a segment is at most 255 bytes");
    }
    if segment.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err("a segment holds no `/`, `\\` or control character");
    }
    // Whatever the platform's path rules (drive prefixes, roots), a segment is one plain name.
    let mut components = Path::new(segment).components();
    if !matches!((components.next(), components.next()), (Some(Component::Normal(_)), None)) {
        return Err("a segment is one plain file name");
    }
    Ok(())
}

/// A blob opened for reading: its bytes, and how many there are.
pub struct BlobReader {
    size: u64,
    inner: Pin<Box<dyn AsyncRead + Send>>,
}

impl BlobReader {
    /// A reader of `size` bytes from `reader` (for implementations of [`BlobStore`]).
    pub fn new(size: u64, reader: impl AsyncRead + Send + 'static) -> Self {
        Self { size, inner: Box::pin(reader) }
    }

    /// The blob's length in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader").field("size", &self.size).finish_non_exhaustive()
    }
}

impl AsyncRead for BlobReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

/// One blob of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobEntry {
    /// Its key.
    pub key: BlobKey,
    /// Its length in bytes.
    pub size: u64,
}

/// Where document bytes and run outputs are kept.
///
/// Blobs are whole or absent: a blob being written is invisible (to [`open`](Self::open),
/// [`list`](Self::list) and other instances sharing the store) until it is complete, and a write
/// that fails leaves nothing behind. Writing a key again replaces its blob, atomically.
///
/// Engines work on local files: they read inputs from [`local_path`](Self::local_path) and write
/// outputs into the run's local `outputs/` directory under the data directory. For
/// [`DirBlobStore`] on the data directory that directory *is* the store. A store kept elsewhere
/// (an object store) would upload a run's outputs from there to
/// [`BlobKey::run_outputs`] once the engine returns; the runtime does not do that yet, so such a
/// store serves documents only until it does.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// Stores what `body` yields under `key`, at most `max_bytes` of it; returns its length.
    ///
    /// # Errors
    /// [`Error::BlobTooLarge`] when `body` has more than `max_bytes`; I/O errors (including those
    /// of `body`). Nothing of the write remains after an error.
    async fn put(&self, key: &BlobKey, body: &mut (dyn AsyncRead + Send + Unpin), max_bytes: u64) -> Result<u64>;

    /// The blob at `key`, `None` when there is none (yet).
    ///
    /// # Errors
    /// I/O errors.
    async fn open(&self, key: &BlobKey) -> Result<Option<BlobReader>>;

    /// The blobs directly under `prefix` (one level, like a directory listing), sorted by key.
    ///
    /// # Errors
    /// I/O errors.
    async fn list(&self, prefix: &BlobKey) -> Result<Vec<BlobEntry>>;

    /// A local file holding the blob at `key`, for engines that read files; `None` when there is
    /// no such blob. [`DirBlobStore`] answers the blob's own path; an object store would download
    /// the blob into a local cache and answer the cached file's path.
    ///
    /// # Errors
    /// I/O errors.
    async fn local_path(&self, key: &BlobKey) -> Result<Option<PathBuf>>;

    /// Removes the blob at `key`; removing an absent blob is not an error.
    ///
    /// # Errors
    /// I/O errors.
    async fn delete(&self, key: &BlobKey) -> Result<()>;
}

/// A [`BlobStore`] in a directory: the key `a/b/c` is the file `<root>/a/b/c`.
///
/// A write goes to a temporary file (`.ade-<ulid>.partial`, never a valid key) in the blob's own
/// directory, is synced, then renamed into place, so a reader on this host or on another sharing
/// the directory (NFS) sees the whole blob or none. Symbolic links are not blobs: they are neither
/// listed nor opened.
#[derive(Debug, Clone)]
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    /// A store in `root` (created as blobs are written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory the store is in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &BlobKey) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }

    /// The metadata of the entry at `path`, not following a link; `None` when there is none.
    async fn entry_at(path: &Path) -> Result<Option<std::fs::Metadata>> {
        match tokio::fs::symlink_metadata(path).await {
            Ok(metadata) => Ok(Some(metadata)),
            Err(error) if is_absent(&error) => Ok(None),
            Err(source) => Err(Error::Io { action: "inspect", path: path.to_owned(), source }),
        }
    }

    /// A new temporary file in `dir` (created if missing), and the guard that removes it. A
    /// concurrent failed write may remove `dir` in between (it removes the directory it created
    /// once empty), hence the retries.
    ///
    /// Created on a blocking thread that also makes the guard: if the writing future is dropped
    /// while the file is being created, the guard is dropped with the thread's result, so the
    /// file never outlives an abandoned write.
    async fn create_partial(&self, dir: &Path) -> Result<(tokio::fs::File, Partial)> {
        let dir = dir.to_owned();
        let (file, partial) = tokio::task::spawn_blocking(move || create_partial_in(&dir))
            .await
            .map_err(|error| Error::Task(error.to_string()))??;
        Ok((tokio::fs::File::from_std(file), partial))
    }
}

/// [`DirBlobStore::create_partial`], on the calling (blocking) thread.
fn create_partial_in(dir: &Path) -> Result<(std::fs::File, Partial)> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { action: "create", path: dir.to_owned(), source })?;
        let path = dir.join(format!(".ade-{}.partial", ulid::Ulid::generate()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => {
                let created_dir = created_dir.then(|| dir.to_owned());
                return Ok((file, Partial { path: Some(path), created_dir }));
            }
            // The directory was removed in between (another write's clean-up): make it again.
            Err(error) if error.kind() == io::ErrorKind::NotFound && attempts < 3 => {}
            Err(source) => return Err(Error::Io { action: "create", path, source }),
        }
    }
}

/// A temporary file being written; removed (with the directory the write created, if empty) unless
/// the write completes, even when the writing future is dropped half-way (a client that hangs up).
#[derive(Debug)]
struct Partial {
    path: Option<PathBuf>,
    created_dir: Option<PathBuf>,
}

impl Partial {
    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// The file was renamed into place: nothing to clean up.
    fn done(mut self) {
        self.path = None;
        self.created_dir = None;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(&path);
            if let Some(dir) = self.created_dir.take() {
                // Only succeeds when empty: another write's file keeps the directory.
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Not there: missing, or a path through something that is not a directory.
fn is_absent(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, key: &BlobKey, body: &mut (dyn AsyncRead + Send + Unpin), max_bytes: u64) -> Result<u64> {
        let path = self.path_of(key);
        let dir = path.parent().map_or_else(|| self.root.clone(), Path::to_path_buf);
        let (mut file, partial) = self.create_partial(&dir).await?;
        let io = |action| {
            let path = partial.path().to_owned();
            move |source| Error::Io { action, path, source }
        };
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = body.read(&mut buf).await.map_err(io("read the body of"))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > max_bytes {
                return Err(Error::BlobTooLarge { limit: max_bytes });
            }
            file.write_all(&buf[..n]).await.map_err(io("write"))?;
        }
        file.flush().await.map_err(io("write"))?;
        file.sync_all().await.map_err(io("sync"))?;
        drop(file);
        tokio::fs::rename(partial.path(), &path).await.map_err(|source| Error::Io {
            action: "rename into place",
            path: path.clone(),
            source,
        })?;
        partial.done();
        // Makes the rename itself durable; best effort, as some shared file systems refuse it.
        if let Ok(dir) = tokio::fs::File::open(&dir).await {
            let _ = dir.sync_all().await;
        }
        Ok(size)
    }

    async fn open(&self, key: &BlobKey) -> Result<Option<BlobReader>> {
        let path = self.path_of(key);
        if !Self::entry_at(&path).await?.is_some_and(|metadata| metadata.is_file()) {
            return Ok(None);
        }
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            // Deleted in between.
            Err(error) if is_absent(&error) => return Ok(None),
            Err(source) => return Err(Error::Io { action: "open", path, source }),
        };
        let size = file.metadata().await.map_err(|source| Error::Io { action: "inspect", path, source })?.len();
        Ok(Some(BlobReader::new(size, file)))
    }

    async fn list(&self, prefix: &BlobKey) -> Result<Vec<BlobEntry>> {
        let dir = self.path_of(prefix);
        let io = |action| {
            let dir = dir.clone();
            move |source| Error::Io { action, path: dir, source }
        };
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(error) if is_absent(&error) => return Ok(Vec::new()),
            Err(source) => return Err(Error::Io { action: "list", path: dir, source }),
        };
        let mut blobs = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io("list"))? {
            // `file_type` and `metadata` of an entry do not follow links: a link is not a blob.
            let Ok(file_type) = entry.file_type().await else { continue };
            if !file_type.is_file() {
                continue;
            }
            // Temporary files and names no key can have are not blobs.
            let Some(key) = entry.file_name().to_str().and_then(|name| prefix.join(name).ok()) else { continue };
            match entry.metadata().await {
                Ok(metadata) => blobs.push(BlobEntry { key, size: metadata.len() }),
                Err(error) if is_absent(&error) => {}
                Err(source) => return Err(io("inspect")(source)),
            }
        }
        blobs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(blobs)
    }

    async fn local_path(&self, key: &BlobKey) -> Result<Option<PathBuf>> {
        let path = self.path_of(key);
        Ok(Self::entry_at(&path).await?.is_some_and(|metadata| metadata.is_file()).then_some(path))
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if is_absent(&error) => Ok(()),
            Err(source) => Err(Error::Io { action: "remove", path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;

    fn key(text: &str) -> BlobKey {
        text.parse().expect("key")
    }

    async fn read_all(store: &dyn BlobStore, key: &BlobKey) -> Option<Vec<u8>> {
        let mut reader = store.open(key).await.expect("open")?;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.expect("read");
        assert_eq!(reader.size(), bytes.len() as u64);
        Some(bytes)
    }

    /// Every path under `root`, relative to it, sorted.
    fn files_under(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    pending.push(path.clone());
                }
                found.push(path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned());
            }
        }
        found.sort();
        found
    }

    #[test]
    fn keys_that_would_escape_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/",
            "..",
            "a/../b",
            ".",
            "a/./b",
            ".hidden",
            "a/.ade-x.partial",
            "a\\b",
            "..\\..\\boot.ini",
            "a\u{0}b",
            "new\nline",
        ] {
            assert!(matches!(bad.parse::<BlobKey>(), Err(Error::InvalidBlobKey { .. })), "{bad:?} should be refused");
        }
        let base = key("workspaces/default");
        for bad in ["..", "a/b", "/abs", "", ".x", &"x".repeat(256)] {
            assert!(base.join(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(BlobKey::from_segments(Vec::<&str>::new()).is_err());
        assert!(BlobKey::from_segments(["a", "../b"]).is_err());
        let good = key("workspaces/acme/documents/doc_1/members 2026 (v2).csv");
        assert_eq!(good.name(), "members 2026 (v2).csv");
        assert_eq!(good.segments().count(), 5);
        assert_eq!(good.to_string(), good.as_str());
    }

    #[test]
    fn documents_and_outputs_keep_the_data_directory_layout() {
        let workspace = WorkspaceId::new("acme").expect("workspace");
        let document = DocumentId::new();
        let run = RunId::new();
        assert_eq!(
            BlobKey::document(&workspace, document, "m.csv").expect("key").as_str(),
            format!("workspaces/acme/documents/{document}/m.csv")
        );
        assert_eq!(BlobKey::run_outputs(&workspace, run).as_str(), format!("workspaces/acme/runs/{run}/outputs"));
        assert_eq!(
            BlobKey::output(&workspace, run, "normalized.xlsx").expect("key").as_str(),
            format!("workspaces/acme/runs/{run}/outputs/normalized.xlsx")
        );
        assert!(BlobKey::output(&workspace, run, "../../ade.sqlite").is_err());
        let store = DirBlobStore::new("/data");
        assert_eq!(
            store.path_of(&BlobKey::run_outputs(&workspace, run)),
            Path::new(&format!("/data/workspaces/acme/runs/{run}/outputs"))
        );
    }

    #[tokio::test]
    async fn blobs_round_trip_through_write_read_and_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirBlobStore::new(dir.path());
        let a = key("w/outputs/a.txt");
        let b = key("w/outputs/b.csv");
        assert_eq!(store.put(&b, &mut &b"x,y\n"[..], 100).await.expect("put b"), 4);
        assert_eq!(store.put(&a, &mut &b"hello"[..], 5).await.expect("put a"), 5);
        store.put(&key("w/outputs/deeper/c.txt"), &mut &b"c"[..], 10).await.expect("put c");
        assert_eq!(read_all(&store, &a).await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(std::fs::read(dir.path().join("w/outputs/a.txt")).expect("on disk"), b"hello");
        let listed = store.list(&key("w/outputs")).await.expect("list");
        assert_eq!(listed, vec![BlobEntry { key: a.clone(), size: 5 }, BlobEntry { key: b.clone(), size: 4 }]);
        assert_eq!(store.local_path(&a).await.expect("path"), Some(dir.path().join("w/outputs/a.txt")));
        // Replacing is whole.
        store.put(&a, &mut &b"bye"[..], 5).await.expect("replace");
        assert_eq!(read_all(&store, &a).await.as_deref(), Some(&b"bye"[..]));
        // Absent things are `None` or empty, not errors.
        let missing = key("w/outputs/missing.txt");
        assert!(store.open(&missing).await.expect("open").is_none());
        assert!(store.local_path(&missing).await.expect("path").is_none());
        assert!(store.open(&key("w/outputs/a.txt/under-a-file")).await.expect("open").is_none());
        assert!(store.list(&key("nowhere")).await.expect("list").is_empty());
        store.delete(&a).await.expect("delete");
        store.delete(&a).await.expect("delete again");
        assert!(store.open(&a).await.expect("open").is_none());
    }

    #[tokio::test]
    async fn links_and_hidden_files_are_not_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirBlobStore::new(dir.path().join("store"));
        std::fs::write(dir.path().join("secret"), b"secret").expect("secret");
        let outputs = dir.path().join("store/outputs");
        std::fs::create_dir_all(&outputs).expect("dir");
        std::os::unix::fs::symlink(dir.path().join("secret"), outputs.join("link.txt")).expect("symlink");
        std::fs::write(outputs.join(".ade-01.partial"), b"half").expect("partial");
        assert!(store.open(&key("outputs/link.txt")).await.expect("open").is_none());
        assert!(store.local_path(&key("outputs/link.txt")).await.expect("path").is_none());
        assert!(store.list(&key("outputs")).await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn an_over_limit_or_failing_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirBlobStore::new(dir.path());
        let big = key("w/documents/doc_1/big.csv");
        let refused = store.put(&big, &mut &[b'x'; 100][..], 10).await;
        assert!(matches!(refused, Err(Error::BlobTooLarge { limit: 10 })), "{refused:?}");
        assert!(store.open(&big).await.expect("open").is_none());
        assert!(!dir.path().join("w/documents/doc_1").exists(), "the directory the write made is gone");

        // A body that breaks half-way, in a directory that already holds a blob.
        let kept = key("w/outputs/kept.txt");
        store.put(&kept, &mut &b"kept"[..], 10).await.expect("put");
        let broken = key("w/outputs/broken.txt");
        let mut body = (&b"some bytes, then"[..]).chain(FailingRead);
        let failed = store.put(&broken, &mut body, 1 << 20).await;
        assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
        assert!(store.open(&broken).await.expect("open").is_none());
        assert_eq!(files_under(dir.path()), ["w", "w/documents", "w/outputs", "w/outputs/kept.txt"]);
    }

    #[tokio::test]
    async fn a_write_dropped_half_way_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirBlobStore::new(dir.path());
        let (mut sender, mut receiver) = tokio::io::duplex(16);
        let target = key("w/documents/doc_2/upload.csv");
        let write = {
            let target = target.clone();
            let store = store.clone();
            tokio::spawn(async move { store.put(&target, &mut receiver, 1 << 20).await })
        };
        sender.write_all(b"partial").await.expect("send");
        // Drop the write once its temporary file exists (mid-write, not before it began).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !files_under(dir.path()).iter().any(|name| name.ends_with(".partial")) {
            assert!(std::time::Instant::now() < deadline, "the write never started");
            tokio::task::yield_now().await;
        }
        write.abort();
        let _ = write.await;
        assert!(store.open(&target).await.expect("open").is_none());
        // A file being created when the write was dropped goes (with the directory the write
        // made) once its creation returns.
        while files_under(dir.path()).iter().any(|name| name.ends_with(".partial"))
            || dir.path().join("w/documents/doc_2").exists()
        {
            assert!(std::time::Instant::now() < deadline, "{:?} left behind", files_under(dir.path()));
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_reader_never_sees_a_partial_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirBlobStore::new(dir.path());
        let target = key("w/outputs/slow.txt");
        let (mut sender, mut receiver) = tokio::io::duplex(16);
        let write = {
            let (target, store) = (target.clone(), store.clone());
            tokio::spawn(async move { store.put(&target, &mut receiver, 1 << 20).await })
        };
        let mut sent = Vec::new();
        for chunk in 0..20u8 {
            let bytes = [chunk; 100];
            sender.write_all(&bytes).await.expect("send");
            // The pipe holds 16 bytes: the store has taken in all but those.
            sent.extend_from_slice(&bytes);
            assert!(store.open(&target).await.expect("open").is_none(), "visible after {} bytes", sent.len());
            assert!(store.list(&key("w/outputs")).await.expect("list").is_empty());
            assert!(store.local_path(&target).await.expect("path").is_none());
        }
        drop(sender);
        assert_eq!(write.await.expect("task").expect("put"), sent.len() as u64);
        assert_eq!(read_all(&store, &target).await, Some(sent));
    }

    #[tokio::test]
    async fn writers_of_different_keys_do_not_disturb_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn BlobStore> = Arc::new(DirBlobStore::new(dir.path()));
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..16u8 {
            let store = store.clone();
            writes.spawn(async move {
                let body = vec![i; 1000 + usize::from(i)];
                // Half the writes share a directory, half make their own.
                let key = if i % 2 == 0 { format!("w/shared/{i}.bin") } else { format!("w/own-{i}/{i}.bin") };
                store.put(&key.parse().expect("key"), &mut &body[..], 1 << 20).await.expect("put")
            });
        }
        while let Some(written) = writes.join_next().await {
            written.expect("task");
        }
        let shared = store.list(&key("w/shared")).await.expect("list");
        assert_eq!(shared.len(), 8);
        for i in 0..16u8 {
            let key = if i % 2 == 0 { format!("w/shared/{i}.bin") } else { format!("w/own-{i}/{i}.bin") };
            let bytes = read_all(store.as_ref(), &key.parse().expect("key")).await.expect("blob");
            assert_eq!(bytes, vec![i; 1000 + usize::from(i)]);
        }
    }

    /// A body whose reads fail.
    struct FailingRead;

    impl AsyncRead for FailingRead {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::other("the client went away")))
        }
    }
}
