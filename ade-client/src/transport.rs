//! The seam between [`Client`](crate::Client) and a transport other than HTTP: the operations
//! of the API, answered with the errors the server would answer. `local.rs` (feature `local`)
//! implements it for `ade_core::Runtime`.

use ade_model::config::Configuration;
use ade_model::event::{ConfigurationId, DocumentId, Envelope, RunId, WorkspaceId};
use ade_model::run::{Created, Document, Run};
use async_trait::async_trait;

use crate::client::{EventPage, ListRuns, NewRun, Output, RunList};
use crate::error::Result;
use crate::stream::EventStream;

/// The operations of the API over something in this process.
#[async_trait]
pub(crate) trait InProcess: Send + Sync + std::fmt::Debug {
    async fn upload_document(
        &self,
        filename: &str,
        bytes: &[u8],
        workspace_id: Option<&WorkspaceId>,
    ) -> Result<Document>;
    async fn get_document(&self, id: DocumentId) -> Result<Document>;
    fn list_configurations(&self) -> Result<Vec<Configuration>>;
    fn get_configuration(&self, id: &ConfigurationId) -> Result<Configuration>;
    fn put_configuration(&self, configuration: &Configuration) -> Result<Configuration>;
    async fn create_run(&self, run: &NewRun) -> Result<Created>;
    async fn get_run(&self, id: RunId) -> Result<Run>;
    async fn list_runs(&self, list: &ListRuns) -> Result<RunList>;
    async fn cancel(&self, id: RunId) -> Result<Run>;
    async fn events_page(&self, id: RunId, after: u64, limit: Option<usize>) -> Result<EventPage>;
    async fn events_log(&self, id: RunId, after: u64) -> Result<Vec<Envelope>>;
    async fn list_outputs(&self, id: RunId) -> Result<Vec<Output>>;
    async fn download_output(&self, id: RunId, name: &str) -> Result<bytes::Bytes>;
    /// Ordered, gap- and duplicate-free, ending after `run.completed`.
    fn events(&self, id: RunId, after: u64) -> EventStream;
}
