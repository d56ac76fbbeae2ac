//! Cross-origin requests (CORS): off unless origins are configured ([`ServerConfig::with_cors`],
//! `--cors-origin`, `ADE_CORS_ORIGINS`), so that a frontend served from another origin (its dev
//! server, say) can call the API and open an `EventSource` on a run's events.
//!
//! The layer sits outside the auth middleware: a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered without a token, as browsers send none on it. It
//! grants no credentials (cookies): the API authenticates with bearer tokens, which a page sends
//! itself (`Authorization`, or `?access_token=` on an `EventSource`), so an allowed origin gets no
//! more than a token it already holds gives it.
//!
//! [`ServerConfig::with_cors`]: crate::ServerConfig::with_cors

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a cross-origin page may send.
const ALLOWED_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("last-event-id"),
];

/// Response headers a cross-origin page may read (beyond the CORS-safelisted ones): where a
/// created run or document is, a download's file name, why a request was refused, and the links
/// and retry hints of responses that carry them.
const EXPOSED_HEADERS: [HeaderName; 5] =
    [header::LOCATION, header::LINK, header::RETRY_AFTER, header::CONTENT_DISPOSITION, header::WWW_AUTHENTICATE];

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The origins allowed to call the server from a browser: a list of origins, or any origin (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsOrigins {
    /// `None`: any origin.
    list: Option<Vec<String>>,
}

/// Why a CORS origin was refused.
#[derive(Debug, thiserror::Error)]
#[error("CORS origin {origin:?}: {reason}")]
pub struct CorsError {
    origin: String,
    reason: String,
}

impl CorsOrigins {
    /// Any origin (`Access-Control-Allow-Origin: *`). The API still wants a token on every data
    /// route; `*` only lets any page use one it has.
    pub fn any() -> Self {
        Self { list: None }
    }

    /// Parses origins as written in `--cors-origin` or `ADE_CORS_ORIGINS` (each entry may itself
    /// be a comma-separated list; blanks around entries and empty entries are ignored). An origin
    /// is `scheme://host[:port]`, as a browser sends it in `Origin`: no path (a single trailing
    /// `/` is dropped), no query, no user. Scheme and host are lowercased and a default port
    /// (`:80` for http, `:443` for https) is dropped, as browsers do. `*` alone means any origin;
    /// `*` with other origins, or a pattern such as `https://*.example.com`, is refused.
    ///
    /// `Ok(None)` when nothing was given (CORS stays off).
    ///
    /// # Errors
    /// [`CorsError`] naming the first entry that is not an origin.
    pub fn parse<I, S>(entries: I) -> Result<Option<Self>, CorsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut origins = Vec::new();
        let mut any = false;
        for entry in entries {
            for text in entry.as_ref().split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if text == "*" {
                    any = true;
                } else {
                    let origin = normalize(text)?;
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
            }
        }
        match (any, origins.is_empty()) {
            (false, true) => Ok(None),
            (true, true) => Ok(Some(Self::any())),
            (true, false) => Err(CorsError {
                origin: "*".to_owned(),
                reason: "`*` (any origin) cannot be combined with a list of origins".to_owned(),
            }),
            (false, false) => Ok(Some(Self { list: Some(origins) })),
        }
    }

    /// Whether any origin is allowed.
    pub fn is_any(&self) -> bool {
        self.list.is_none()
    }

    /// The allowed origins, normalized; empty when any origin is.
    pub fn origins(&self) -> &[String] {
        self.list.as_deref().unwrap_or_default()
    }

    /// The layer that answers preflights and marks responses for these origins.
    pub(crate) fn layer(&self) -> CorsLayer {
        let allow_origin = match &self.list {
            None => AllowOrigin::any(),
            // Normalized origins are visible ASCII: every one is a header value.
            Some(list) => AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok())),
        };
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

/// `scheme://host[:port]`, lowercased, without a default port or a trailing `/`.
fn normalize(text: &str) -> Result<String, CorsError> {
    let refuse = |reason: &str| CorsError { origin: text.to_owned(), reason: reason.to_owned() };
    let (scheme, rest) = text.split_once("://").ok_or_else(|| refuse("expected scheme://host[:port]"))?;
    let scheme = scheme.to_ascii_lowercase();
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(refuse("the scheme is not a URL scheme"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(refuse("an origin has no path, query or fragment: scheme://host[:port]"));
    }
    if authority.contains('@') {
        return Err(refuse("an origin has no user name or password"));
    }
    if authority.contains('*') {
        return Err(refuse("wildcard patterns are not supported: list each origin, or give `*` alone"));
    }
    let (host, port) = split_port(authority).ok_or_else(|| refuse("the port is not a number from 1 to 65535"))?;
    let host = host.to_ascii_lowercase();
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
    } else {
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    if !host_ok {
        return Err(refuse("the host is not a host name or an IP address"));
    }
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Ok(match port {
        Some(port) if Some(port) != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `host[:port]` (an IPv6 host in brackets); `None` when the port is not 1..=65535.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let colon = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => i,
        _ => return Some((authority, None)),
    };
    let digits = &authority[colon + 1..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = digits.parse::<u16>().ok().filter(|p| *p > 0)?;
    Some((&authority[..colon], Some(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(entries: &[&str]) -> Vec<String> {
        CorsOrigins::parse(entries).expect("valid").expect("some").origins().to_vec()
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        assert_eq!(
            parsed(&["HTTP://LocalHost:5173/", " https://app.example.com:443 , http://127.0.0.1:80"]),
            ["http://localhost:5173", "https://app.example.com", "http://127.0.0.1"]
        );
        assert_eq!(parsed(&["http://[::1]:8080", "http://[::1]:8080"]), ["http://[::1]:8080"]);
        assert_eq!(parsed(&["app://bundle"]), ["app://bundle"]);
    }

    #[test]
    fn nothing_given_is_off_and_a_lone_star_is_any_origin() {
        assert_eq!(CorsOrigins::parse(Vec::<String>::new()).expect("valid"), None);
        assert_eq!(CorsOrigins::parse([" ", ","]).expect("valid"), None);
        let any = CorsOrigins::parse(["*"]).expect("valid").expect("some");
        assert!(any.is_any() && any.origins().is_empty());
    }

    #[test]
    fn what_is_not_an_origin_is_refused_with_a_reason() {
        for (text, reason) in [
            ("localhost:5173", "scheme://host"),
            ("http://app.example.com/path", "no path"),
            ("http://app.example.com?x=1", "no path, query"),
            ("http://user@app.example.com", "user name"),
            ("https://*.example.com", "wildcard"),
            ("http://app.example.com:0", "port"),
            ("http://app.example.com:70000", "port"),
            ("http://app.example.com:", "port"),
            ("http://", "host"),
            ("http://exa mple.com", "host"),
            ("1http://example.com", "scheme"),
        ] {
            let error = CorsOrigins::parse([text]).expect_err(text).to_string();
            assert!(error.contains(reason) && error.contains(text), "{text}: {error}");
        }
        let error = CorsOrigins::parse(["*", "http://a.example"]).expect_err("mixed").to_string();
        assert!(error.contains("cannot be combined"), "{error}");
    }
}
