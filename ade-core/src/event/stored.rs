//! [`StoredEvent`]: an envelope together with its one serialized form.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::event::Envelope;

/// An event as stored and sent: the typed envelope and its compact JSON line (no newline).
///
/// The dispatcher serializes each event exactly once; every store, subscriber and transport
/// shares this value behind an `Arc` and writes `json` as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    envelope: Envelope,
    json: Bytes,
}

impl StoredEvent {
    /// Serializes an envelope.
    ///
    /// # Errors
    /// [`Error::Json`] when the payload holds something JSON cannot express.
    pub fn new(envelope: Envelope) -> Result<Self> {
        let json = serde_json::to_vec(&envelope)?;
        Ok(Self { envelope, json: Bytes::from(json) })
    }

    /// Parses one stored line (without its newline).
    ///
    /// # Errors
    /// [`Error::Json`] when the line is not an envelope.
    pub fn from_json(json: Bytes) -> Result<Self> {
        let envelope: Envelope = serde_json::from_slice(&json)?;
        Ok(Self { envelope, json })
    }

    /// The typed event.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The compact JSON form, one line without a newline.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The event's sequence in its run.
    pub fn sequence(&self) -> u64 {
        self.envelope.sequence
    }

    /// Whether this is `run.completed`, the run's last event.
    pub fn is_terminal(&self) -> bool {
        self.envelope.is_terminal()
    }

    /// Takes the typed event out.
    pub fn into_envelope(self) -> Envelope {
        self.envelope
    }
}

impl From<StoredEvent> for Envelope {
    fn from(event: StoredEvent) -> Self {
        event.envelope
    }
}

impl TryFrom<Envelope> for StoredEvent {
    type Error = Error;

    fn try_from(envelope: Envelope) -> Result<Self> {
        Self::new(envelope)
    }
}
