//! The build cache: artifacts by fingerprint, in memory and under `<data_dir>/builds/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::dispatch::lock;
use crate::engine::BuildArtifact;

/// Built configurations by fingerprint. Files survive restarts; memory saves the reads.
#[derive(Debug, Default)]
pub(super) struct BuildCache {
    entries: Mutex<HashMap<String, Arc<BuildArtifact>>>,
}

/// `<data_dir>/builds/<hex of the fingerprint>.json`.
fn artifact_path(data_dir: &Path, fingerprint: &str) -> PathBuf {
    let name: String = fingerprint.chars().filter(char::is_ascii_alphanumeric).collect();
    data_dir.join("builds").join(format!("{name}.json"))
}

impl BuildCache {
    /// The cached artifact of `fingerprint`, if any.
    pub(super) async fn get(&self, data_dir: &Path, fingerprint: &str) -> Option<Arc<BuildArtifact>> {
        if let Some(artifact) = lock(&self.entries).get(fingerprint) {
            return Some(artifact.clone());
        }
        let text = tokio::fs::read(artifact_path(data_dir, fingerprint)).await.ok()?;
        let artifact: BuildArtifact = match serde_json::from_slice(&text) {
            Ok(artifact) => artifact,
            Err(error) => {
                tracing::warn!(fingerprint, %error, "ignoring an unreadable cached build");
                return None;
            }
        };
        if artifact.fingerprint != fingerprint || !artifact.dir.exists() {
            return None;
        }
        let artifact = Arc::new(artifact);
        lock(&self.entries).insert(fingerprint.to_owned(), artifact.clone());
        Some(artifact)
    }

    /// Keeps an artifact; failing to write the file only costs a rebuild after a restart.
    pub(super) async fn put(&self, data_dir: &Path, artifact: Arc<BuildArtifact>) {
        lock(&self.entries).insert(artifact.fingerprint.clone(), artifact.clone());
        let path = artifact_path(data_dir, &artifact.fingerprint);
        let written = async {
            let json = serde_json::to_vec_pretty(&*artifact).map_err(std::io::Error::other)?;
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            let temporary = path.with_extension("json.tmp");
            tokio::fs::write(&temporary, json).await?;
            tokio::fs::rename(&temporary, &path).await
        };
        if let Err(error) = written.await {
            tracing::warn!(path = %path.display(), %error, "could not persist a build");
        }
    }
}
