//! The local transport: [`Client`](crate::Client) operations over an embedded [`Runtime`], with
//! the errors the server would answer.

use ade_core::config::Configuration;
use ade_core::dispatch::After;
use ade_core::event::{ConfigurationId, DocumentId, Envelope, RunId, WorkspaceId};
use ade_core::run::Run;
use ade_core::store::{Document, RunKey};
use ade_core::{CreateRun, Created, Runtime};
use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};

use crate::client::{EventPage, ListRuns, NewRun, RunList};
use crate::error::{Error, Problem, Result};
use crate::stream::EventStream;
use crate::transport::InProcess;

/// Largest document the local transport accepts (the server's default upload limit).
const MAX_UPLOAD: u64 = 100 * 1024 * 1024;
/// Runs per page when the filter names no limit (the server's default).
const DEFAULT_RUNS_LIMIT: usize = 50;
/// Most runs per page.
const MAX_RUNS_LIMIT: usize = 200;
/// Events per page when none is named, and the most (as the server).
const DEFAULT_EVENTS_LIMIT: usize = 1000;
const MAX_EVENTS_LIMIT: usize = 10_000;

/// A problem as the server would write it.
fn api(status: u16, slug: &str, title: &str, detail: String) -> Error {
    Error::Api(Problem { type_: format!("urn:ade:problem:{slug}"), title: title.to_owned(), status, detail })
}

fn not_found(detail: String) -> Error {
    api(404, "not-found", "Not Found", detail)
}

fn bad_request(detail: String) -> Error {
    api(400, "bad-request", "Bad Request", detail)
}

/// The problem the server answers for a core error.
fn problem(error: ade_core::Error) -> Error {
    use ade_core::Error as Core;
    let unprocessable = |detail: String| api(422, "unprocessable", "Unprocessable Entity", detail);
    match error {
        Core::InvalidId { .. } => unprocessable(error.to_string()),
        Core::RunNotFound(id) => not_found(format!("no run {id}")),
        Core::UnknownConfiguration(id) => unprocessable(format!("unknown configuration {id}")),
        Core::UnknownDocument(id) => unprocessable(format!("unknown document {id}")),
        Core::IdempotencyConflict => unprocessable(
            "the Idempotency-Key was already used in this workspace with a different request body".to_owned(),
        ),
        Core::AlreadyTerminal(id) => api(409, "conflict", "Conflict", format!("run {id} has already ended")),
        Core::InvalidCursor(_) => bad_request("`cursor` is not a cursor this server made".to_owned()),
        Core::DocumentTooLarge { limit } => api(
            413,
            "payload-too-large",
            "Payload Too Large",
            format!("the document is larger than the upload limit of {limit} bytes"),
        ),
        Core::Config { reason, .. } => unprocessable(format!("invalid configuration: {reason}")),
        other => api(500, "internal", "Internal Server Error", other.to_string()),
    }
}

fn envelope(event: &ade_core::event::StoredEvent) -> Result<Envelope> {
    event.envelope().cloned().map_err(|e| Error::Decode { what: "a stored event", reason: e.to_string() })
}

#[async_trait]
impl InProcess for Runtime {
    async fn upload_document(
        &self,
        filename: &str,
        bytes: &[u8],
        workspace_id: Option<&WorkspaceId>,
    ) -> Result<Document> {
        if filename.trim().is_empty() {
            return Err(bad_request("a raw upload needs a file name".to_owned()));
        }
        let workspace = workspace_id.cloned().unwrap_or_default();
        Runtime::upload_document(self, &workspace, filename, None, bytes, MAX_UPLOAD).await.map_err(problem)
    }

    async fn get_document(&self, id: DocumentId) -> Result<Document> {
        Runtime::get_document(self, None, id)
            .await
            .map_err(problem)?
            .ok_or_else(|| not_found(format!("no document {id}")))
    }

    fn list_configurations(&self) -> Result<Vec<Configuration>> {
        Ok(self.configurations().iter().map(|c| c.as_ref().clone()).collect())
    }

    fn get_configuration(&self, id: &ConfigurationId) -> Result<Configuration> {
        self.configuration(id).map(|c| c.as_ref().clone()).ok_or_else(|| not_found(format!("no configuration {id}")))
    }

    async fn create_run(&self, run: &NewRun) -> Result<Created> {
        let mut create = CreateRun::new(run.configuration_id.clone())
            .workspace(run.workspace_id.clone().unwrap_or_default())
            .options(run.options.clone().unwrap_or_default());
        if let Some(mode) = run.mode {
            create = create.mode(mode);
        }
        for id in &run.document_ids {
            create = create.document(*id);
        }
        if let Some(key) = &run.idempotency_key {
            // As the server: sha256 of the body as canonical JSON (keys sorted, no whitespace).
            let body = serde_json::to_value(run).map_err(|e| bad_request(e.to_string()))?;
            create = create.idempotency_key(key.clone(), format!("sha256:{:x}", Sha256::digest(body.to_string())));
        }
        Runtime::create_run(self, create).await.map_err(problem)
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        Runtime::get_run(self, None, id).await.map_err(problem)?.ok_or_else(|| not_found(format!("no run {id}")))
    }

    async fn list_runs(&self, list: &ListRuns) -> Result<RunList> {
        let limit = list.limit.unwrap_or(DEFAULT_RUNS_LIMIT);
        if !(1..=MAX_RUNS_LIMIT).contains(&limit) {
            return Err(bad_request(format!("`limit` must be an integer from 1 to {MAX_RUNS_LIMIT}, not {limit}")));
        }
        let page = Runtime::list_runs(self, &list.filter, limit, list.cursor.as_deref()).await.map_err(problem)?;
        Ok(RunList { runs: page.runs, next_cursor: page.next_cursor })
    }

    async fn cancel(&self, id: RunId) -> Result<Run> {
        Runtime::cancel(self, None, id).await.map_err(problem)
    }

    async fn events_page(&self, id: RunId, after: u64, limit: Option<usize>) -> Result<EventPage> {
        let limit = limit.unwrap_or(DEFAULT_EVENTS_LIMIT);
        if !(1..=MAX_EVENTS_LIMIT).contains(&limit) {
            return Err(bad_request(format!("`limit` must be an integer from 1 to {MAX_EVENTS_LIMIT}, not {limit}")));
        }
        let run = InProcess::get_run(self, id).await?;
        let key = RunKey::new(run.workspace_id, id);
        let store = self.dispatcher().store();
        let stored: Vec<_> = store
            .read_after(&key, after)
            .await
            .map_err(problem)?
            .take(limit + 1)
            .try_collect()
            .await
            .map_err(problem)?;
        let more = stored.len() > limit;
        let events = stored.iter().take(limit).map(|e| envelope(e)).collect::<Result<Vec<_>>>()?;
        let next_after_sequence = if more { events.last().map(|e| e.sequence) } else { None };
        Ok(EventPage { events, next_after_sequence })
    }

    async fn events_log(&self, id: RunId, after: u64) -> Result<Vec<Envelope>> {
        let run = InProcess::get_run(self, id).await?;
        let key = RunKey::new(run.workspace_id, id);
        let store = self.dispatcher().store();
        let last = store.tail(&key).await.map_err(problem)?.last_sequence;
        let stored: Vec<_> = store
            .read_after(&key, after)
            .await
            .map_err(problem)?
            .try_take_while(move |event| std::future::ready(Ok(event.sequence() <= last)))
            .try_collect()
            .await
            .map_err(problem)?;
        stored.iter().map(|e| envelope(e)).collect()
    }

    fn events(&self, id: RunId, after: u64) -> EventStream {
        let runtime = self.clone();
        let stream = futures::stream::once(async move { runtime.subscribe(None, id, After(after)).await })
            .map(|subscribed| match subscribed {
                Ok(events) => events.map(|item| item.map_err(problem).and_then(|e| envelope(&e))).boxed(),
                Err(error) => futures::stream::once(std::future::ready(Err(problem(error)))).boxed(),
            })
            .flatten();
        EventStream::from_stream(stream)
    }
}
