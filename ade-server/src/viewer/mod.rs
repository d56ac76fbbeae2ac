//! The run viewer (SPEC §4 `GET /`): one self-contained page, HTML, CSS and plain JavaScript
//! embedded in the binary. No build step and no external resource; the page holds no data of
//! its own: everything it shows comes from the authenticated API, so the page itself is public.
//! Mounted under a prefix, the page asks for its assets and the API under that prefix.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::mount::Mount;

const INDEX_HTML: &str = include_str!("index.html");
const VIEWER_JS: &str = include_str!("viewer.js");
const VIEWER_CSS: &str = include_str!("viewer.css");

/// Only the page's own script and style, and requests to its own origin: a stray reference to
/// anything outside would be blocked, not silently loaded.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What `index.html` says where the API's paths start (`/ade` when mounted there, else empty).
const BASE_PLACEHOLDER: &str = "__ADE_BASE__";

/// `GET /`: the page, with its assets and API requests under the mount point ([`Mount`]): the
/// `ade-base` meta element gives viewer.js the path to put before the API's paths.
pub(crate) async fn index(mount: Mount) -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML.replace(BASE_PLACEHOLDER, &attribute(mount.path())))
}

/// `text` escaped for an HTML attribute value in double quotes.
fn attribute(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `GET /viewer.js`: the page's script.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", VIEWER_JS)
}

/// `GET /viewer.css`: the page's style sheet.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", VIEWER_CSS)
}

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Always revalidated: a new server version is never shown with an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_escaped_for_its_attribute() {
        assert_eq!(attribute("/ade"), "/ade");
        assert_eq!(attribute(r#"/a"><script>'&"#), "/a&quot;&gt;&lt;script&gt;&#39;&amp;");
        assert!(INDEX_HTML.contains(&format!(r#"<meta name="ade-base" content="{BASE_PLACEHOLDER}">"#)));
    }
}
