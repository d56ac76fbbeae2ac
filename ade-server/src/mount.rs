//! Where the API is mounted, so that the links it returns (`links`, `Location`, outputs' `href`)
//! and the viewer's own URLs work from wherever clients reach it.
//!
//! Two sources, the first that applies:
//! 1. a configured public base URL ([`ServerConfig::with_public_url`], `--public-url`,
//!    `ADE_PUBLIC_URL`), for a server behind a proxy that strips a prefix or serves another host:
//!    links are then absolute URLs under it (`https://example.com/ade/runs/run_…`);
//! 2. the prefix the router was nested under (`Router::new().nest("/ade", ade_server::router(state))`):
//!    axum strips it from the request's URI and keeps the original in [`OriginalUri`], and the
//!    difference is the prefix; links are then absolute paths under it (`/ade/runs/run_…`).
//!
//! Served at the root (the default), links stay as SPEC §3 shows them: `/runs/run_…`.
//!
//! [`ServerConfig::with_public_url`]: crate::ServerConfig::with_public_url

use ade_core::run::{Run, RunLinks};
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;

use crate::state::AppState;

/// The base URL under which clients reach the server: `scheme://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Without a trailing `/`.
    url: String,
    /// Where the path starts in `url` (`url.len()` when there is none).
    path_start: usize,
}

/// Why a public URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("public URL {url:?}: {reason}")]
pub struct PublicUrlError {
    url: String,
    reason: &'static str,
}

impl PublicUrl {
    /// Parses `http(s)://host[:port][/path]`; a trailing `/` is dropped.
    ///
    /// # Errors
    /// [`PublicUrlError`] when it is not an http(s) URL, has a query, a fragment, user
    /// information or characters that cannot be in a URL.
    pub fn parse(text: &str) -> Result<Self, PublicUrlError> {
        let refuse = |reason| PublicUrlError { url: text.to_owned(), reason };
        let trimmed = text.trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"))
            .ok_or_else(|| refuse("expected http(s)://host[:port][/path]"))?;
        if trimmed.contains(['?', '#']) {
            return Err(refuse("a base URL has no query or fragment"));
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) || trimmed.contains(['"', '<', '>', '\\', '`', '{', '}']) {
            return Err(refuse("it holds characters that cannot be in a URL (percent-encode them)"));
        }
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.is_empty() {
            return Err(refuse("it has no host"));
        }
        if authority.contains('@') {
            return Err(refuse("a base URL has no user information"));
        }
        let path_start = trimmed.len() - rest.len() + authority_end;
        Ok(Self { url: trimmed.to_owned(), path_start })
    }

    /// The URL, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Its path, without a trailing `/` (empty at the host's root).
    pub fn path(&self) -> &str {
        &self.url[self.path_start..]
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The mount point of a request: what goes before the API's own paths in links.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    /// Prefix of links: the public URL, the nesting prefix, or empty.
    base: String,
    /// Prefix of the viewer's requests: always a path (the page asks its own origin).
    path: String,
}

impl Mount {
    /// The link to the API path `path` (`/runs/…`).
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `run` with its links under this mount point.
    pub(crate) fn run(&self, mut run: Run) -> Run {
        let links = RunLinks::for_run(run.id);
        run.links = RunLinks {
            self_: self.link(&links.self_),
            events: self.link(&links.events),
            outputs: self.link(&links.outputs),
        };
        run
    }

    /// The path the viewer puts before the API's paths (`/ade`, or empty at the root).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }
}

impl FromRequestParts<AppState> for Mount {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(public) = &state.config().public_url {
            return Ok(Self { base: public.as_str().to_owned(), path: public.path().to_owned() });
        }
        let prefix = parts
            .extensions
            .get::<OriginalUri>()
            .map(|OriginalUri(original)| nesting_prefix(original.path(), parts.uri.path()))
            .unwrap_or_default();
        Ok(Self { base: prefix.to_owned(), path: prefix.to_owned() })
    }
}

/// What a nesting router stripped from `original` to leave `inner`: `/ade` for `/ade/runs` and
/// `/runs`, or for `/ade` (or `/ade/`) and `/`. Empty when nothing was stripped or the two do
/// not fit together.
fn nesting_prefix<'a>(original: &'a str, inner: &str) -> &'a str {
    if inner == "/" {
        return original.strip_suffix('/').unwrap_or(original);
    }
    original.strip_suffix(inner).filter(|prefix| prefix.starts_with('/')).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_what_nesting_stripped() {
        assert_eq!(nesting_prefix("/runs/run_1", "/runs/run_1"), "");
        assert_eq!(nesting_prefix("/", "/"), "");
        assert_eq!(nesting_prefix("/ade/runs/run_1", "/runs/run_1"), "/ade");
        assert_eq!(nesting_prefix("/a/b/runs", "/runs"), "/a/b");
        assert_eq!(nesting_prefix("/ade", "/"), "/ade");
        assert_eq!(nesting_prefix("/ade/", "/"), "/ade");
        assert_eq!(nesting_prefix("/other", "/runs"), "");
        assert_eq!(nesting_prefix("x/runs", "/runs"), "");
    }

    #[test]
    fn a_public_url_is_an_http_base_without_query() {
        let url = PublicUrl::parse("https://example.com:8443/ade/").expect("valid");
        assert_eq!((url.as_str(), url.path()), ("https://example.com:8443/ade", "/ade"));
        let url = PublicUrl::parse("http://example.com").expect("valid");
        assert_eq!((url.as_str(), url.path()), ("http://example.com", ""));
        for (text, reason) in [
            ("example.com/ade", "http(s)://"),
            ("ftp://example.com", "http(s)://"),
            ("https://example.com/ade?x=1", "query"),
            ("https://user@example.com", "user"),
            ("https:///ade", "no host"),
            ("https://example.com/a b", "characters"),
            ("https://example.com/\"x", "characters"),
        ] {
            let error = PublicUrl::parse(text).expect_err(text).to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
