//! Input documents: their bytes in the runtime's [`BlobStore`](crate::blob::BlobStore) under
//! `workspaces/<ws>/documents/<doc_id>/<name>`, their metadata in the run store.

use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use super::Runtime;
use crate::blob::BlobKey;
use crate::engine::InputDocument;
use crate::error::{Error, Result};
use crate::event::{DocumentId, Timestamp, WorkspaceId};
use crate::store::Document;

/// A file name safe to write anywhere: the last path segment, with only letters, digits, spaces
/// and `._-()` kept (others become `_`), no leading dots, at most 200 bytes; `document` when
/// nothing is left.
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = last
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-' | '(' | ')') { c } else { '_' })
        .collect();
    clean = clean.trim().trim_start_matches('.').to_owned();
    while clean.len() > 200 {
        clean.pop();
    }
    if clean.is_empty() { "document".to_owned() } else { clean }
}

/// The media type of a file from its name's extension (`application/octet-stream` when unknown):
/// what documents are recorded with and what output downloads are served as.
pub fn content_type_for(filename: &str) -> &'static str {
    let extension = filename.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "csv" => "text/csv",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xls" => "application/vnd.ms-excel",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "ndjson" => "application/x-ndjson",
        _ => "application/octet-stream",
    }
}

impl Runtime {
    /// Stores a document read from `body` (at most `max_bytes`), computing its size and sha256 as
    /// it is written.
    ///
    /// # Errors
    /// [`Error::DocumentTooLarge`] (nothing is kept), I/O and store errors.
    pub async fn upload_document(
        &self,
        workspace_id: &WorkspaceId,
        filename: &str,
        content_type: Option<&str>,
        body: impl AsyncRead + Send + Unpin,
        max_bytes: u64,
    ) -> Result<Document> {
        let id = DocumentId::new();
        let filename = sanitize_filename(filename);
        let key = BlobKey::document(workspace_id, id, &filename)?;
        let mut body = Hashing { inner: body, hasher: Sha256::new() };
        let byte_size = match self.blob_store().put(&key, &mut body, max_bytes).await {
            Ok(size) => size,
            Err(Error::BlobTooLarge { limit }) => return Err(Error::DocumentTooLarge { limit }),
            Err(error) => return Err(error),
        };
        let document = Document {
            id,
            workspace_id: workspace_id.clone(),
            content_type: content_type.map_or_else(|| content_type_for(&filename).to_owned(), str::to_owned),
            filename,
            byte_size,
            sha256: format!("{:x}", body.hasher.finalize()),
            created_at: Timestamp::now(),
        };
        if let Err(error) = self.run_store().create_document(&document).await {
            // Unrecorded bytes would never be found again.
            if let Err(cleanup) = self.blob_store().delete(&key).await {
                tracing::warn!(error = %cleanup, %key, "could not remove the bytes of an unrecorded document");
            }
            return Err(error);
        }
        Ok(document)
    }

    /// Stores a file from disk as a document.
    ///
    /// # Errors
    /// As [`upload_document`](Self::upload_document).
    pub async fn upload_file(&self, workspace_id: &WorkspaceId, path: &std::path::Path) -> Result<Document> {
        let file = tokio::fs::File::open(path).await.map_err(|source| Error::Io {
            action: "open",
            path: path.to_owned(),
            source,
        })?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.upload_document(workspace_id, &name, None, file, u64::MAX).await
    }

    /// A document's metadata (scoped like runs).
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_document(&self, workspace_id: Option<&WorkspaceId>, id: DocumentId) -> Result<Option<Document>> {
        self.run_store().get_document(workspace_id, id).await
    }

    /// The documents of a run, as local files, for its engine.
    pub(super) async fn input_documents(
        &self,
        workspace_id: &WorkspaceId,
        ids: &[DocumentId],
    ) -> Result<Vec<InputDocument>> {
        let mut inputs = Vec::with_capacity(ids.len());
        for id in ids {
            let document =
                self.run_store().get_document(Some(workspace_id), *id).await?.ok_or(Error::UnknownDocument(*id))?;
            let key = BlobKey::document(workspace_id, *id, &document.filename)?;
            let path = self.blob_store().local_path(&key).await?.ok_or_else(|| Error::Io {
                action: "find the bytes of a document at",
                path: key.as_str().into(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
            inputs.push(InputDocument { id: *id, filename: document.filename, path });
        }
        Ok(inputs)
    }
}

/// A body that feeds what is read from it to a sha256, so a document is hashed as it is stored.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: AsyncRead + Unpin> AsyncRead for Hashing<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            this.hasher.update(&buf.filled()[before..]);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sha2::{Digest, Sha256};

    use super::{content_type_for, sanitize_filename};
    use crate::Runtime;
    use crate::blob::{BlobKey, DirBlobStore};
    use crate::error::Error;
    use crate::event::WorkspaceId;

    #[tokio::test]
    async fn uploads_are_stored_in_the_blob_store_with_their_size_and_sha256() {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = Runtime::builder().data_dir(dir.path()).in_memory().workers(1).build().await.expect("runtime");
        let workspace = WorkspaceId::default();
        let bytes = b"id,name\n1,Ada\n";
        let document =
            runtime.upload_document(&workspace, "../up/members.csv", None, &bytes[..], 1024).await.expect("upload");
        assert_eq!(document.filename, "members.csv");
        assert_eq!(document.byte_size, bytes.len() as u64);
        assert_eq!(document.sha256, format!("{:x}", Sha256::digest(bytes)));
        assert_eq!(document.content_type, "text/csv");
        // The layout of the data directory is unchanged.
        let on_disk = dir.path().join(format!("workspaces/default/documents/{}/members.csv", document.id));
        assert_eq!(std::fs::read(&on_disk).expect("on disk"), bytes);
        let inputs = runtime.input_documents(&workspace, &[document.id]).await.expect("inputs");
        assert_eq!(inputs[0].path, on_disk);
        let key = BlobKey::document(&workspace, document.id, "members.csv").expect("key");
        assert_eq!(runtime.blob_store().open(&key).await.expect("open").map(|blob| blob.size()), Some(14));
        runtime.shutdown().await;
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_leaves_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = Runtime::builder().data_dir(dir.path()).in_memory().workers(1).build().await.expect("runtime");
        let too_big = runtime.upload_document(&WorkspaceId::default(), "big.csv", None, &[b'x'; 100][..], 10).await;
        assert!(matches!(too_big, Err(Error::DocumentTooLarge { limit: 10 })), "{too_big:?}");
        let documents = dir.path().join("workspaces/default/documents");
        let left: Vec<_> = std::fs::read_dir(&documents).map(|entries| entries.collect()).unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
        runtime.shutdown().await;
    }

    #[tokio::test]
    async fn documents_go_to_the_configured_blob_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = tempfile::tempdir().expect("temp dir");
        let runtime = Runtime::builder()
            .data_dir(dir.path())
            .in_memory()
            .workers(1)
            .blob_store(Arc::new(DirBlobStore::new(blobs.path())))
            .build()
            .await
            .expect("runtime");
        let workspace = WorkspaceId::default();
        let document = runtime.upload_document(&workspace, "a.csv", None, &b"a\n"[..], 10).await.expect("upload");
        let inputs = runtime.input_documents(&workspace, &[document.id]).await.expect("inputs");
        assert!(inputs[0].path.starts_with(blobs.path()), "{:?}", inputs[0].path);
        assert!(!dir.path().join("workspaces").exists());
        // Bytes that went missing are an error of the run's inputs, not a path handed to the engine.
        std::fs::remove_file(&inputs[0].path).expect("remove");
        let missing = runtime.input_documents(&workspace, &[document.id]).await;
        assert!(matches!(missing, Err(Error::Io { .. })), "{missing:?}");
        runtime.shutdown().await;
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type_for("members.CSV"), "text/csv");
        assert_eq!(
            content_type_for("normalized.xlsx"),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        assert_eq!(content_type_for("count.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type_for("events.ndjson"), "application/x-ndjson");
        assert_eq!(content_type_for("no-extension"), "application/octet-stream");
        assert_eq!(content_type_for("archive.tar.gz"), "application/octet-stream");
    }

    #[test]
    fn file_names_cannot_escape_or_hide() {
        assert_eq!(sanitize_filename("members-2026.xlsx"), "members-2026.xlsx");
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_filename(".hidden"), "hidden");
        assert_eq!(sanitize_filename("a\u{0}b|c?.csv"), "a_b_c_.csv");
        assert_eq!(sanitize_filename(""), "document");
        assert_eq!(sanitize_filename(".."), "document");
        assert!(sanitize_filename(&"x".repeat(1000)).len() <= 200);
    }
}
