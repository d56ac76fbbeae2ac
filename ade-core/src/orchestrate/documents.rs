//! Input documents: stored under `workspaces/<ws>/documents/<doc_id>/<name>` and recorded in the
//! run store.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Runtime;
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
    fn document_dir(&self, workspace_id: &WorkspaceId, id: DocumentId) -> PathBuf {
        self.data_dir().join("workspaces").join(workspace_id.as_str()).join("documents").join(id.to_string())
    }

    /// Stores a document read from `body` (at most `max_bytes`), computing its size and sha256.
    ///
    /// # Errors
    /// [`Error::DocumentTooLarge`] (nothing is kept), I/O and store errors.
    pub async fn upload_document(
        &self,
        workspace_id: &WorkspaceId,
        filename: &str,
        content_type: Option<&str>,
        mut body: impl AsyncRead + Unpin,
        max_bytes: u64,
    ) -> Result<Document> {
        let id = DocumentId::new();
        let filename = sanitize_filename(filename);
        let dir = self.document_dir(workspace_id, id);
        let io = |action, path: &PathBuf| {
            let path = path.clone();
            move |source| Error::Io { action, path, source }
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io("create", &dir))?;
        let path = dir.join(&filename);
        let mut file = tokio::fs::File::create(&path).await.map_err(io("create", &path))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let copied: Result<()> = async {
            loop {
                let n = body.read(&mut buf).await.map_err(io("read upload for", &path))?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > max_bytes {
                    return Err(Error::DocumentTooLarge { limit: max_bytes });
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).await.map_err(io("write", &path))?;
            }
            file.flush().await.map_err(io("write", &path))?;
            file.sync_all().await.map_err(io("sync", &path))
        }
        .await;
        if let Err(error) = copied {
            drop(file);
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(error);
        }
        let document = Document {
            id,
            workspace_id: workspace_id.clone(),
            content_type: content_type.map_or_else(|| content_type_for(&filename).to_owned(), str::to_owned),
            filename,
            byte_size: size,
            sha256: format!("{:x}", hasher.finalize()),
            created_at: Timestamp::now(),
        };
        self.run_store().create_document(&document).await?;
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

    /// The documents of a run, on disk, for its engine.
    pub(super) async fn input_documents(
        &self,
        workspace_id: &WorkspaceId,
        ids: &[DocumentId],
    ) -> Result<Vec<InputDocument>> {
        let mut inputs = Vec::with_capacity(ids.len());
        for id in ids {
            let document =
                self.run_store().get_document(Some(workspace_id), *id).await?.ok_or(Error::UnknownDocument(*id))?;
            let path = self.document_dir(workspace_id, *id).join(&document.filename);
            inputs.push(InputDocument { id: *id, filename: document.filename, path });
        }
        Ok(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::{content_type_for, sanitize_filename};

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
