//! [`StoredEvent`]: an event's one serialized form, with its typed envelope.

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::event::Envelope;

/// An event as stored and sent: its compact JSON line (no newline) and the typed envelope.
///
/// The dispatcher serializes each event exactly once; every store, subscriber and transport
/// shares this value behind an `Arc` and writes `json` as it is. Events read back from a store
/// are parsed lazily: catching a subscriber up from the store only needs each line's sequence, so
/// the typed envelope is built the first time someone asks for it.
#[derive(Debug)]
pub struct StoredEvent {
    json: Bytes,
    sequence: u64,
    terminal: bool,
    envelope: OnceLock<Result<Envelope, String>>,
    /// The SSE frame, built on first use.
    sse_frame: OnceLock<Bytes>,
}

/// The SSE `event:` name of every ade event (SPEC §4.1).
pub const SSE_EVENT_NAME: &str = "ade.event";

impl Clone for StoredEvent {
    fn clone(&self) -> Self {
        let envelope = OnceLock::new();
        if let Some(parsed) = self.envelope.get() {
            let _ = envelope.set(parsed.clone());
        }
        let sse_frame = self.sse_frame.get().cloned().map_or_else(OnceLock::new, OnceLock::from);
        Self { json: self.json.clone(), sequence: self.sequence, terminal: self.terminal, envelope, sse_frame }
    }
}

impl PartialEq for StoredEvent {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl StoredEvent {
    /// Serializes an envelope.
    ///
    /// # Errors
    /// [`Error::Json`] when the payload holds something JSON cannot express.
    pub fn new(envelope: Envelope) -> Result<Self> {
        let json = serde_json::to_vec(&envelope)?;
        Ok(Self::typed(envelope, Bytes::from(json)))
    }

    /// Serializes an envelope through a reusable buffer, so the stored bytes are one exact-size
    /// allocation.
    ///
    /// # Errors
    /// [`Error::Json`] when the payload holds something JSON cannot express.
    pub fn serialize_with(envelope: Envelope, scratch: &mut Vec<u8>) -> Result<Self> {
        scratch.clear();
        serde_json::to_writer(&mut *scratch, &envelope)?;
        Ok(Self::typed(envelope, Bytes::copy_from_slice(scratch)))
    }

    fn typed(envelope: Envelope, json: Bytes) -> Self {
        Self {
            sequence: envelope.sequence,
            terminal: envelope.is_terminal(),
            envelope: OnceLock::from(Ok(envelope)),
            json,
            sse_frame: OnceLock::new(),
        }
    }

    /// Parses one line (without its newline) completely: for input from outside.
    ///
    /// # Errors
    /// [`Error::Json`] when the line is not an envelope.
    pub fn from_json(json: Bytes) -> Result<Self> {
        let envelope: Envelope = serde_json::from_slice(&json)?;
        Ok(Self {
            sequence: envelope.sequence,
            terminal: envelope.is_terminal(),
            envelope: OnceLock::from(Ok(envelope)),
            json,
            sse_frame: OnceLock::new(),
        })
    }

    /// Reads one line (without its newline) that a store kept: only the sequence and the type are
    /// read now; the typed envelope is parsed on first use by [`envelope`](Self::envelope).
    ///
    /// # Errors
    /// [`Error::Json`] when the line has no integer `sequence` ≥ 1 or no string `type`.
    pub fn from_stored_json(json: Bytes) -> Result<Self> {
        let (sequence, terminal) = match scan_header(&json) {
            Some(header) => header,
            None => {
                let header: Header<'_> = serde_json::from_slice(&json)?;
                (header.sequence, header.event_type == "run.completed")
            }
        };
        if sequence == 0 {
            return Err(Error::Json(serde::de::Error::custom("sequence starts at 1")));
        }
        Ok(Self { json, sequence, terminal, envelope: OnceLock::new(), sse_frame: OnceLock::new() })
    }

    /// The typed event, parsed on first use for events read back from a store.
    ///
    /// # Errors
    /// [`Error::CorruptEvent`] when the stored line is not a valid envelope.
    pub fn envelope(&self) -> Result<&Envelope> {
        self.envelope
            .get_or_init(|| serde_json::from_slice(&self.json).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|reason| Error::CorruptEvent { sequence: self.sequence, reason: reason.clone() })
    }

    /// The compact JSON form, one line without a newline.
    #[inline]
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The event as one Server-Sent Events frame (SPEC §4.1): `id: <sequence>`, `event:
    /// ade.event`, `data: <json>` and the blank line. Built on first use and kept: every subscriber
    /// of a live event sends these same bytes (no copy, no formatting per subscriber).
    pub fn sse_frame(&self) -> &Bytes {
        self.sse_frame.get_or_init(|| {
            let mut frame = Vec::with_capacity(self.json.len() + 48);
            frame.extend_from_slice(b"id: ");
            frame.extend_from_slice(self.sequence.to_string().as_bytes());
            frame.extend_from_slice(b"\nevent: ");
            frame.extend_from_slice(SSE_EVENT_NAME.as_bytes());
            frame.extend_from_slice(b"\ndata: ");
            // Compact JSON never holds a newline.
            frame.extend_from_slice(&self.json);
            frame.extend_from_slice(b"\n\n");
            Bytes::from(frame)
        })
    }

    /// The event's sequence in its run.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether this is `run.completed`, the run's last event.
    #[inline]
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }
}

/// The two fields a reader of a stored log needs, for lines not in ade's own field order.
#[derive(Deserialize)]
struct Header<'a> {
    sequence: u64,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
}

/// Reads `type` and `sequence` from a line in the order ade writes (`{"type":"…","event_id":…,
/// "created_at":…,"sequence":N,…`) without parsing the rest; `None` for any other shape.
fn scan_header(json: &[u8]) -> Option<(u64, bool)> {
    let rest = json.strip_prefix(br#"{"type":""#)?;
    let type_len = rest.iter().position(|b| *b == b'"')?;
    let (event_type, rest) = rest.split_at(type_len);
    if !event_type.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return None;
    }
    // Only `event_id` and `created_at` come between, and neither can hold a quote.
    let rest = &rest[..rest.len().min(128)];
    const KEY: &[u8] = br#","sequence":"#;
    let at = rest.windows(KEY.len()).position(|w| w == KEY)?;
    if rest[1..at].iter().filter(|b| **b == b'"').count() != 8 {
        return None; // not exactly `","event_id":"…","created_at":"…"`
    }
    let digits = &rest[at + KEY.len()..];
    let len = digits.iter().position(|b| !b.is_ascii_digit())?;
    if len == 0 || len > 20 || !matches!(digits[len], b',' | b'}') {
        return None;
    }
    let sequence = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
    Some((sequence, event_type == b"run.completed"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::strategies;

    proptest! {
        #[test]
        fn the_header_scan_agrees_with_a_full_parse(event in strategies::envelope()) {
            let stored = StoredEvent::new(event.clone())?;
            prop_assert!(scan_header(stored.json()).is_some(), "ade's own lines take the fast path");
            let lazy = StoredEvent::from_stored_json(stored.json().clone())?;
            prop_assert_eq!(lazy.sequence(), event.sequence);
            prop_assert_eq!(lazy.is_terminal(), event.is_terminal());
            prop_assert_eq!(lazy.envelope()?, &event);
        }
    }

    #[test]
    fn the_sse_frame_is_the_event_framed_once() {
        let line = r#"{"type":"run.completed","sequence":12,"payload":{}}"#;
        let event = StoredEvent::from_stored_json(Bytes::from(line)).expect("header");
        let frame = event.sse_frame().clone();
        assert_eq!(frame, format!("id: 12\nevent: ade.event\ndata: {line}\n\n").as_bytes());
        assert_eq!(event.sse_frame().as_ptr(), frame.as_ptr(), "built once, then shared");
        assert_eq!(event.clone().sse_frame().as_ptr(), frame.as_ptr(), "clones share it");
    }

    #[test]
    fn other_field_orders_fall_back_to_a_parse() {
        let line = r#"{"sequence":7,"payload":{"phase":"x"},"type":"run.completed","extra":"\"sequence\":9"}"#;
        let event = StoredEvent::from_stored_json(Bytes::from(line)).expect("header");
        assert_eq!((event.sequence(), event.is_terminal()), (7, true));
        assert!(matches!(event.envelope(), Err(Error::CorruptEvent { sequence: 7, .. })), "not a full envelope");
        for bad in [r#"{"type":"x"}"#, r#"{"type":"x","sequence":0}"#, "not json", r#"{"type":"x","sequence":-1}"#] {
            assert!(StoredEvent::from_stored_json(Bytes::from(bad)).is_err(), "{bad}");
        }
    }
}
