//! [`Client`]: the typed operations of the HTTP API (SPEC §4).

use std::time::Duration;

use std::sync::Arc;

use ade_model::config::Configuration;
use ade_model::event::{ConfigurationId, DocumentId, Envelope, RunId, WorkspaceId};
use ade_model::run::{Created, Document, Run, RunFilter, RunMode, RunOptions, RunStatus};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, Result};
use crate::stream::{EventStream, Reconnect};
use crate::transport::InProcess;

/// A client of ade: of one server over HTTP ([`Client::new`]), or (feature `local`) of an
/// embedded `ade_core::Runtime` in this process (`Client::local`), with the same operations and
/// errors. Cheap to clone (the connection pool or the runtime is shared).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: Option<String>,
    pub(crate) reconnect: Reconnect,
    /// The in-process transport, when this client has one instead of a server.
    pub(crate) local: Option<Arc<dyn InProcess>>,
}

/// What to create with [`Client::create_run`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct NewRun {
    /// The workspace; when absent, the token's workspace if it has exactly one, else `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<WorkspaceId>,
    /// The configuration to execute.
    pub configuration_id: ConfigurationId,
    /// The input documents.
    pub document_ids: Vec<DocumentId>,
    /// What the engine is asked to do (the server's default when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RunMode>,
    /// Options of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<RunOptions>,
    /// Sent as the `Idempotency-Key` header: the same key and body return the original run.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

impl NewRun {
    /// A run of `configuration_id` with no documents yet.
    pub fn new(configuration_id: ConfigurationId) -> Self {
        Self {
            workspace_id: None,
            configuration_id,
            document_ids: Vec::new(),
            mode: None,
            options: None,
            idempotency_key: None,
        }
    }

    /// In `workspace_id`.
    #[must_use]
    pub fn workspace(mut self, workspace_id: WorkspaceId) -> Self {
        self.workspace_id = Some(workspace_id);
        self
    }

    /// Adds an input document.
    #[must_use]
    pub fn document(mut self, id: DocumentId) -> Self {
        self.document_ids.push(id);
        self
    }

    /// With `mode`.
    #[must_use]
    pub fn mode(mut self, mode: RunMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// With `options`.
    #[must_use]
    pub fn options(mut self, options: RunOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// With an `Idempotency-Key`.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// Which runs [`Client::list_runs`] lists: the runtime's [`RunFilter`], plus paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListRuns {
    /// Workspace, status and configuration; every field narrows the list.
    pub filter: RunFilter,
    /// At most this many (1..=200; the server's default when absent).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListRuns {
    /// Only `workspace_id`.
    #[must_use]
    pub fn workspace(mut self, workspace_id: WorkspaceId) -> Self {
        self.filter = self.filter.workspace(workspace_id);
        self
    }

    /// Only runs in `status`.
    #[must_use]
    pub fn status(mut self, status: RunStatus) -> Self {
        self.filter = self.filter.status(status);
        self
    }

    /// Only runs of `configuration_id`.
    #[must_use]
    pub fn configuration(mut self, configuration_id: ConfigurationId) -> Self {
        self.filter = self.filter.configuration(configuration_id);
        self
    }

    /// At most `limit` runs.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after `cursor`.
    #[must_use]
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunList {
    /// The runs.
    pub runs: Vec<Run>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of a run's events (`GET /runs/{id}/events`, `Accept: application/json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventPage {
    /// The events, in order.
    pub events: Vec<Envelope>,
    /// The cursor of the next page when more events exist now; `None` otherwise.
    pub next_after_sequence: Option<u64>,
}

#[derive(Deserialize)]
struct Configurations {
    configurations: Vec<Configuration>,
}

/// One output file of a run (`GET /runs/{id}/outputs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Output {
    /// The file's name in the run's `outputs/` directory.
    pub name: String,
    /// Its size in bytes.
    pub byte_size: u64,
    /// Its media type, from its extension.
    pub content_type: String,
    /// Where to download it (resolve it with [`Client::resolve`]).
    pub href: String,
}

impl Output {
    /// An output named `name` of run `run_id`, as the server lists it.
    pub fn new(run_id: RunId, name: impl Into<String>, byte_size: u64, content_type: impl Into<String>) -> Self {
        let name = name.into();
        let href = format!("/runs/{run_id}/outputs/{name}");
        Self { name, byte_size, content_type: content_type.into(), href }
    }
}

#[derive(Deserialize)]
struct Outputs {
    outputs: Vec<Output>,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `base_url` is not an `http://` or `https://` URL;
    /// [`Error::Transport`] when the HTTP client cannot be built.
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        let base = base_url.into().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.contains(char::is_whitespace) {
            return Err(Error::Invalid(format!("{base:?} is not an http(s) URL")));
        }
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Self { http, base, token: None, reconnect: Reconnect::default(), local: None })
    }

    /// A client of `runtime`, in this process: no network; errors are the problems the server
    /// would answer (404 unknown run, 422 unknown configuration, …). Sees every workspace.
    #[cfg(feature = "local")]
    pub fn local(runtime: ade_core::Runtime) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: "local:".to_owned(),
            token: None,
            reconnect: Reconnect::default(),
            local: Some(Arc::new(runtime)),
        }
    }

    /// Whether this client talks to an embedded runtime rather than a server.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// The same client, sending `token` as a bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same client, with `reconnect` as the event streams' reconnection policy.
    #[must_use]
    pub fn with_reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// The server's base URL (`local:` for a local client).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The URL of a link the server returned (a run's `links`, a `Location`, an output's
    /// `href`), resolved against the base URL as a browser would: an absolute URL stays as it is
    /// (a server with a public URL returns those), a path from the root (`/ade/runs/run_…`, from
    /// a server mounted under `/ade`) goes to the base URL's origin, and anything else is taken
    /// as relative to the base URL.
    pub fn resolve(&self, link: &str) -> String {
        if link.starts_with("http://") || link.starts_with("https://") {
            return link.to_owned();
        }
        if let Some(path) = link.strip_prefix('/') {
            let origin = self
                .base
                .split_once("://")
                .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)));
            if let Some(origin) = origin {
                return format!("{origin}/{path}");
            }
        }
        format!("{}/{}", self.base, link.trim_start_matches('/'))
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Uploads `bytes` as a document named `filename` (in `workspace_id`, or the token's default).
    ///
    /// # Errors
    /// [`Error::Api`] (e.g. 413 over the upload limit), [`Error::Transport`], [`Error::Decode`].
    pub async fn upload_document(
        &self,
        filename: &str,
        bytes: impl Into<bytes::Bytes>,
        workspace_id: Option<&WorkspaceId>,
    ) -> Result<Document> {
        let bytes = bytes.into();
        if let Some(runtime) = &self.local {
            return runtime.upload_document(filename, &bytes, workspace_id).await;
        }
        let mut query = vec![("filename", filename.to_owned())];
        if let Some(workspace) = workspace_id {
            query.push(("workspace_id", workspace.as_str().to_owned()));
        }
        let request = self
            .request(Method::POST, "/documents")
            .query(&query)
            .header("content-type", "application/octet-stream")
            .body(bytes);
        json(send(request).await?, "a document").await
    }

    /// A document's metadata.
    ///
    /// # Errors
    /// [`Error::Api`] (404 when unknown), [`Error::Transport`], [`Error::Decode`].
    pub async fn get_document(&self, id: DocumentId) -> Result<Document> {
        if let Some(runtime) = &self.local {
            return runtime.get_document(id).await;
        }
        json(send(self.request(Method::GET, &format!("/documents/{id}"))).await?, "a document").await
    }

    /// The configurations the server knows.
    ///
    /// # Errors
    /// [`Error::Api`], [`Error::Transport`], [`Error::Decode`].
    pub async fn list_configurations(&self) -> Result<Vec<Configuration>> {
        if let Some(runtime) = &self.local {
            return runtime.list_configurations();
        }
        let list: Configurations =
            json(send(self.request(Method::GET, "/configurations")).await?, "configurations").await?;
        Ok(list.configurations)
    }

    /// One configuration.
    ///
    /// # Errors
    /// [`Error::Api`] (404 when unknown), [`Error::Transport`], [`Error::Decode`].
    pub async fn get_configuration(&self, id: &ConfigurationId) -> Result<Configuration> {
        if let Some(runtime) = &self.local {
            return runtime.get_configuration(id);
        }
        let request = self.request(Method::GET, &format!("/configurations/{}", id.as_str()));
        json(send(request).await?, "a configuration").await
    }

    /// Creates or replaces a configuration (`PUT /configurations/{id}`): the configuration as
    /// the server keeps it. A server takes data-only (`extract`) configurations only; a local
    /// client registers any configuration the runtime has an engine for, in memory.
    ///
    /// # Errors
    /// [`Error::Api`] (403 for a token not allowed in every workspace, 409 for a configuration of
    /// the server's configuration directory, 422 for an invalid one), [`Error::Transport`],
    /// [`Error::Decode`].
    pub async fn put_configuration(&self, configuration: &Configuration) -> Result<Configuration> {
        if let Some(runtime) = &self.local {
            return runtime.put_configuration(configuration);
        }
        let request =
            self.request(Method::PUT, &format!("/configurations/{}", configuration.id.as_str())).json(configuration);
        json(send(request).await?, "a configuration").await
    }

    /// Creates a run: [`Created::New`] (201), or [`Created::Existing`] (200) when its
    /// idempotency key was seen with the same body.
    ///
    /// # Errors
    /// [`Error::Api`] (422 unknown configuration or document, or a key reused with another body),
    /// [`Error::Transport`], [`Error::Decode`].
    pub async fn create_run(&self, run: &NewRun) -> Result<Created> {
        if let Some(runtime) = &self.local {
            return runtime.create_run(run).await;
        }
        let mut request = self.request(Method::POST, "/runs").json(run);
        if let Some(key) = &run.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = send(request).await?;
        let existing = response.status() == StatusCode::OK;
        let run: Run = json(response, "a run").await?;
        Ok(if existing { Created::Existing(run) } else { Created::New(run) })
    }

    /// A run, with its summary (live while it runs, final once it has ended).
    ///
    /// # Errors
    /// [`Error::Api`] (404 when unknown), [`Error::Transport`], [`Error::Decode`].
    pub async fn get_run(&self, id: RunId) -> Result<Run> {
        if let Some(runtime) = &self.local {
            return runtime.get_run(id).await;
        }
        json(send(self.request(Method::GET, &format!("/runs/{id}"))).await?, "a run").await
    }

    /// Runs, newest first, one page at a time.
    ///
    /// # Errors
    /// [`Error::Api`] (400 for a bad filter or cursor), [`Error::Transport`], [`Error::Decode`].
    pub async fn list_runs(&self, list: &ListRuns) -> Result<RunList> {
        if let Some(runtime) = &self.local {
            return runtime.list_runs(list).await;
        }
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(workspace) = &list.filter.workspace_id {
            query.push(("workspace_id", workspace.as_str().to_owned()));
        }
        if let Some(status) = list.filter.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(configuration) = &list.filter.configuration_id {
            query.push(("configuration_id", configuration.as_str().to_owned()));
        }
        if let Some(limit) = list.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &list.cursor {
            query.push(("cursor", cursor.clone()));
        }
        json(send(self.request(Method::GET, "/runs").query(&query)).await?, "a page of runs").await
    }

    /// Asks a run to stop; it ends `cancelled` soon after. The run as it was when asked.
    ///
    /// # Errors
    /// [`Error::Api`] (404 unknown, 409 already ended), [`Error::Transport`], [`Error::Decode`].
    pub async fn cancel(&self, id: RunId) -> Result<Run> {
        if let Some(runtime) = &self.local {
            return runtime.cancel(id).await;
        }
        json(send(self.request(Method::POST, &format!("/runs/{id}/cancel"))).await?, "a run").await
    }

    /// One page of a run's events with `sequence > after`, at most `limit` (the server's
    /// default, 1000, when absent).
    ///
    /// # Errors
    /// [`Error::Api`] (404 unknown run), [`Error::Transport`], [`Error::Decode`].
    pub async fn events_page(&self, id: RunId, after: u64, limit: Option<usize>) -> Result<EventPage> {
        if let Some(runtime) = &self.local {
            return runtime.events_page(id, after, limit).await;
        }
        let mut query = vec![("after_sequence", after.to_string())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let request =
            self.request(Method::GET, &format!("/runs/{id}/events")).query(&query).header("accept", "application/json");
        json(send(request).await?, "a page of events").await
    }

    /// Every event of a run with `sequence > after` that exists now, read as NDJSON.
    ///
    /// # Errors
    /// [`Error::Api`] (404 unknown run), [`Error::Transport`], [`Error::Decode`].
    pub async fn events_log(&self, id: RunId, after: u64) -> Result<Vec<Envelope>> {
        if let Some(runtime) = &self.local {
            return runtime.events_log(id, after).await;
        }
        let request = self
            .request(Method::GET, &format!("/runs/{id}/events"))
            .query(&[("after_sequence", after.to_string())])
            .header("accept", "application/x-ndjson");
        let text = send(request).await?.text().await?;
        text.lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| Error::Decode { what: "an NDJSON event", reason: e.to_string() })
            })
            .collect()
    }

    /// A run's output files, sorted by name.
    ///
    /// # Errors
    /// [`Error::Api`] (404 unknown run), [`Error::Transport`], [`Error::Decode`].
    pub async fn list_outputs(&self, id: RunId) -> Result<Vec<Output>> {
        if let Some(runtime) = &self.local {
            return runtime.list_outputs(id).await;
        }
        let list: Outputs =
            json(send(self.request(Method::GET, &format!("/runs/{id}/outputs"))).await?, "outputs").await?;
        Ok(list.outputs)
    }

    /// The bytes of a run's output file `name`.
    ///
    /// # Errors
    /// [`Error::Api`] (404 unknown run or output), [`Error::Transport`].
    pub async fn download_output(&self, id: RunId, name: &str) -> Result<bytes::Bytes> {
        if let Some(runtime) = &self.local {
            return runtime.download_output(id, name).await;
        }
        let mut url = reqwest::Url::parse(&format!("{}/runs/{id}/outputs", self.base))
            .map_err(|e| Error::Invalid(format!("the outputs' URL: {e}")))?;
        // One path segment, percent-encoded: a name is never a path.
        url.path_segments_mut().map_err(|()| Error::Invalid("the base URL cannot have a path".to_owned()))?.push(name);
        let mut request = self.http.request(Method::GET, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        Ok(send(request).await?.bytes().await?)
    }

    /// The events of a run with `sequence > after`, replayed then live, as a stream that
    /// reconnects by itself (see [`EventStream`]) and ends after `run.completed`.
    pub fn events(&self, id: RunId, after: u64) -> EventStream {
        if let Some(runtime) = &self.local {
            return runtime.events(id, after);
        }
        EventStream::new(self.clone(), id, after)
    }

    /// Follows a run to its end; the final run with its summary.
    ///
    /// # Errors
    /// [`Error::Api`] (404 unknown run), or the event stream's errors ([`Error::Gap`],
    /// [`Error::GaveUp`], …).
    pub async fn wait(&self, id: RunId) -> Result<Run> {
        use futures::StreamExt as _;
        let run = self.get_run(id).await?;
        if run.status.is_terminal() {
            return Ok(run);
        }
        let mut events = self.events(id, run.last_sequence);
        while let Some(event) = events.next().await {
            if event?.is_terminal() {
                break;
            }
        }
        self.get_run(id).await
    }
}

/// Sends `request`; a non-2xx answer becomes [`Error::Api`].
pub(crate) async fn send(request: RequestBuilder) -> Result<Response> {
    let response = request.send().await?;
    if response.status().is_success() {
        return Ok(response);
    }
    Err(problem(response).await)
}

/// The [`Error::Api`] of a non-2xx answer.
pub(crate) async fn problem(response: Response) -> Error {
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return Error::Transport(error),
    };
    let problem = serde_json::from_str::<Problem>(&text).ok().filter(|p| p.status == status.as_u16());
    Error::Api(problem.unwrap_or_else(|| Problem {
        type_: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: text.chars().take(200).collect(),
    }))
}

pub(crate) async fn json<T: DeserializeOwned>(response: Response, what: &'static str) -> Result<T> {
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Decode { what, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_against_the_base_url_as_a_browser_would() {
        let root = Client::new("http://127.0.0.1:8080/").expect("a client");
        assert_eq!(root.resolve("/runs/run_1/outputs"), "http://127.0.0.1:8080/runs/run_1/outputs");
        let mounted = Client::new("https://example.com:8443/ade").expect("a client");
        // A server mounted under /ade returns paths that already carry the prefix.
        assert_eq!(mounted.resolve("/ade/runs/run_1"), "https://example.com:8443/ade/runs/run_1");
        assert_eq!(mounted.resolve("runs/run_1"), "https://example.com:8443/ade/runs/run_1");
        // A server with a public URL returns absolute URLs.
        assert_eq!(mounted.resolve("https://public.example/api/runs/run_1"), "https://public.example/api/runs/run_1");
    }
}
