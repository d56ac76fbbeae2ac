//! The local transport: [`Client`](crate::Client) operations over an embedded [`Runtime`], with
//! the errors the server would answer.

use ade_core::api::{self, Refusal};
use ade_core::blob::BlobKey;
use ade_core::config::Configuration;
use ade_core::dispatch::After;
use ade_core::event::{ConfigurationId, DocumentId, Envelope, RunId, WorkspaceId};
use ade_core::orchestrate::content_type_for;
use ade_core::run::Run;
use ade_core::store::{Document, RunKey};
use ade_core::{CreateRun, Created, Runtime};
use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::client::{EventPage, ListRuns, NewRun, Output, RunList};
use crate::error::{Error, Problem, Result};
use crate::stream::EventStream;
use crate::transport::InProcess;

/// The problem the server answers for a core error (the same mapping: `ade_core::api::Refusal`).
fn problem(error: ade_core::Error) -> Error {
    let refusal = Refusal::from(error);
    api(refusal.status(), refusal.detail().to_owned())
}

/// A problem as the server writes it.
fn api(status: u16, detail: String) -> Error {
    let (slug, title) = match status {
        400 => ("bad-request", "Bad Request"),
        404 => ("not-found", "Not Found"),
        409 => ("conflict", "Conflict"),
        413 => ("payload-too-large", "Payload Too Large"),
        422 => ("unprocessable", "Unprocessable Entity"),
        507 => ("insufficient-storage", "Insufficient Storage"),
        _ => ("internal", "Internal Server Error"),
    };
    Error::Api(Problem { type_: format!("urn:ade:problem:{slug}"), title: title.to_owned(), status, detail })
}

fn not_found(detail: String) -> Error {
    api(404, detail)
}

fn bad_request(detail: String) -> Error {
    api(400, detail)
}

fn refused(refusal: Refusal) -> Error {
    api(refusal.status(), refusal.detail().to_owned())
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
        Runtime::upload_document(self, &workspace, filename, None, bytes, api::DEFAULT_MAX_UPLOAD)
            .await
            .map_err(problem)
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

    fn put_configuration(&self, configuration: &Configuration) -> Result<Configuration> {
        Runtime::put_configuration(self, configuration.clone()).map_err(|e| api(422, e.to_string()))?;
        Ok(configuration.clone())
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
            let body = serde_json::to_value(run).map_err(|e| bad_request(e.to_string()))?;
            create = create.idempotency_key(key.clone(), api::request_hash(&body));
        }
        Runtime::create_run(self, create).await.map_err(problem)
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        Runtime::get_run(self, None, id).await.map_err(problem)?.ok_or_else(|| not_found(format!("no run {id}")))
    }

    async fn list_runs(&self, list: &ListRuns) -> Result<RunList> {
        let asked = list.limit.map(|limit| limit.to_string());
        let limit = api::page_limit(asked.as_deref(), api::DEFAULT_RUNS_LIMIT, api::MAX_RUNS_LIMIT).map_err(refused)?;
        let page = Runtime::list_runs(self, &list.filter, limit, list.cursor.as_deref()).await.map_err(problem)?;
        Ok(RunList { runs: page.runs, next_cursor: page.next_cursor })
    }

    async fn cancel(&self, id: RunId) -> Result<Run> {
        Runtime::cancel(self, None, id).await.map_err(problem)
    }

    async fn events_page(&self, id: RunId, after: u64, limit: Option<usize>) -> Result<EventPage> {
        let asked = limit.map(|limit| limit.to_string());
        let limit =
            api::page_limit(asked.as_deref(), api::DEFAULT_EVENTS_LIMIT, api::MAX_EVENTS_LIMIT).map_err(refused)?;
        let run = InProcess::get_run(self, id).await?;
        let key = RunKey::new(run.workspace_id, id);
        let store = self.dispatcher().store();
        let (stored, more) = api::events_page(store.as_ref(), &key, after, limit).await.map_err(problem)?;
        let events = stored.iter().map(|e| envelope(e)).collect::<Result<Vec<_>>>()?;
        let next_after_sequence = if more { events.last().map(|e| e.sequence) } else { None };
        Ok(EventPage { events, next_after_sequence })
    }

    async fn events_log(&self, id: RunId, after: u64) -> Result<Vec<Envelope>> {
        let run = InProcess::get_run(self, id).await?;
        let key = RunKey::new(run.workspace_id, id);
        let stored: Vec<_> = api::events_now(self.dispatcher().store().as_ref(), &key, after)
            .await
            .map_err(problem)?
            .try_collect()
            .await
            .map_err(problem)?;
        stored.iter().map(|e| envelope(e)).collect()
    }

    async fn list_outputs(&self, id: RunId) -> Result<Vec<Output>> {
        let run = InProcess::get_run(self, id).await?;
        let entries = self.blob_store().list(&BlobKey::run_outputs(&run.workspace_id, id)).await.map_err(problem)?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                let name = entry.key.name().to_owned();
                let content_type = content_type_for(&name);
                Output::new(id, name, entry.size, content_type)
            })
            .collect())
    }

    async fn download_output(&self, id: RunId, name: &str) -> Result<bytes::Bytes> {
        use tokio::io::AsyncReadExt as _;
        let run = InProcess::get_run(self, id).await?;
        let not_found = || not_found(format!("run {id} has no output {name:?}"));
        let Ok(key) = BlobKey::output(&run.workspace_id, id, name) else { return Err(not_found()) };
        let Some(mut blob) = self.blob_store().open(&key).await.map_err(problem)? else { return Err(not_found()) };
        let mut bytes = Vec::with_capacity(usize::try_from(blob.size()).unwrap_or(0));
        blob.read_to_end(&mut bytes).await.map_err(|e| api(500, format!("reading output {name:?}: {e}")))?;
        Ok(bytes.into())
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
