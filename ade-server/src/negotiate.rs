//! `Accept` negotiation for `GET /runs/{id}/events` (SPEC §4.1), with q-values.

use axum::http::{HeaderMap, header};

use crate::error::Error;

/// The representations of a run's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsFormat {
    /// `application/json`: one page.
    Json,
    /// `application/x-ndjson`: every stored event, streamed.
    Ndjson,
    /// `text/event-stream`: replay, then live.
    Sse,
}

impl EventsFormat {
    const ALL: [(Self, &'static str, &'static str); 3] = [
        (Self::Json, "application", "json"),
        (Self::Ndjson, "application", "x-ndjson"),
        (Self::Sse, "text", "event-stream"),
    ];
}

/// Picks the representation an `Accept` header prefers: for each candidate, the quality of the
/// most specific range that matches it; the highest quality wins, then the more specific match,
/// then the range listed first, then JSON before NDJSON before SSE. No `Accept` (or an empty one),
/// and `*/*`, mean JSON.
///
/// # Errors
/// [`Error::NotAcceptable`] when every candidate has quality 0.
pub fn negotiate_events(headers: &HeaderMap) -> Result<EventsFormat, Error> {
    let mut ranges = Vec::new();
    for value in headers.get_all(header::ACCEPT) {
        let text = value.to_str().map_err(|_| Error::BadRequest("the Accept header is not text".to_owned()))?;
        ranges.extend(text.split(',').filter(|r| !r.trim().is_empty()).map(parse_range));
    }
    if ranges.is_empty() {
        return Ok(EventsFormat::Json);
    }
    // (quality, specificity, -position, -candidate order)
    let mut best: Option<((u32, u8, isize, isize), EventsFormat)> = None;
    for (order, (format, kind, subtype)) in EventsFormat::ALL.iter().enumerate() {
        let mut matched: Option<(u8, u32, usize)> = None;
        for (position, range) in ranges.iter().enumerate() {
            let Some(range) = range else { continue };
            let specificity = if range.kind == *kind && range.subtype == *subtype {
                3
            } else if range.kind == *kind && range.subtype == "*" {
                2
            } else if range.kind == "*" && range.subtype == "*" {
                1
            } else {
                continue;
            };
            if matched.is_none_or(|(s, _, _)| specificity > s) {
                matched = Some((specificity, range.quality, position));
            }
        }
        if let Some((specificity, quality, position)) = matched {
            if quality == 0 {
                continue;
            }
            let key = (quality, specificity, -(position as isize), -(order as isize));
            if best.is_none_or(|(k, _)| key > k) {
                best = Some((key, *format));
            }
        }
    }
    best.map(|(_, format)| format).ok_or_else(|| {
        Error::NotAcceptable(
            "this resource is available as application/json, application/x-ndjson or text/event-stream; \
             the Accept header allows none of them"
                .to_owned(),
        )
    })
}

/// Whether a request asks for an SSE stream (for `POST /runs`): `text/event-stream` is acceptable
/// and preferred over JSON.
pub(crate) fn prefers_sse(headers: &HeaderMap) -> bool {
    matches!(negotiate_events(headers), Ok(EventsFormat::Sse))
}

struct Range {
    kind: String,
    subtype: String,
    /// Thousandths.
    quality: u32,
}

/// One media range; `None` when it is not `type/subtype` (it then matches nothing).
fn parse_range(text: &str) -> Option<Range> {
    let mut parts = text.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = media.split_once('/')?;
    if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
        return None;
    }
    let mut quality = 1000;
    for parameter in parts {
        if let Some((name, value)) = parameter.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            quality = parse_quality(value.trim())?;
        }
    }
    Some(Range { kind: kind.to_owned(), subtype: subtype.to_owned(), quality })
}

/// `0`, `1`, `0.x` with up to three decimals (RFC 9110 §12.4.2).
fn parse_quality(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{fraction:0<3}");
    let thousandths: u32 = digits.parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn pick(accept: &str) -> Result<EventsFormat, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(accept).expect("header"));
        negotiate_events(&headers)
    }

    #[test]
    fn q_values_decide() {
        use EventsFormat::*;
        assert_eq!(negotiate_events(&HeaderMap::new()).ok(), Some(Json));
        assert_eq!(pick("*/*").ok(), Some(Json));
        assert_eq!(pick("text/event-stream").ok(), Some(Sse));
        assert_eq!(pick("application/x-ndjson").ok(), Some(Ndjson));
        assert_eq!(pick("text/*").ok(), Some(Sse));
        assert_eq!(pick("application/json;q=0.5, text/event-stream").ok(), Some(Sse));
        assert_eq!(pick("text/event-stream;q=0.2, application/x-ndjson;q=0.9").ok(), Some(Ndjson));
        assert_eq!(pick("*/*;q=0.1, text/event-stream").ok(), Some(Sse));
        assert_eq!(pick("text/event-stream, application/json").ok(), Some(Sse), "first listed wins a tie");
        assert_eq!(pick("*/*, application/json;q=0").ok(), Some(Ndjson), "an exact q=0 excludes JSON only");
        assert_eq!(pick("Text/Event-Stream; Q=1.000").ok(), Some(Sse));
    }

    #[test]
    fn unacceptable_or_garbage_is_406() {
        for accept in ["text/html", "image/png, text/plain", "application/json;q=0", "garbage", "*/json"] {
            assert!(matches!(pick(accept), Err(Error::NotAcceptable(_))), "{accept}");
        }
        assert!(matches!(pick("text/event-stream;q=2"), Err(Error::NotAcceptable(_))));
    }
}
