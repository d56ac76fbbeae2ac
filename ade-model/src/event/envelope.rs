//! [`Envelope`]: one event as it is stored and sent everywhere (SPEC §1).

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::event::{BuildId, ConfigurationId, EventId, EventPayload, RunId, Timestamp, WorkspaceId};

/// Who emitted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventSource {
    /// ade itself: the orchestrator or the server.
    Api,
    /// An engine or builder, through its sink.
    Engine,
    /// Reserved for a separate worker host.
    Worker,
}

impl EventSource {
    /// The spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Engine => "engine",
            Self::Worker => "worker",
        }
    }
}

/// One event of a run's log, stamped by the dispatcher.
///
/// Serializes as one compact JSON object with the fields in SPEC order: `type`, `event_id`,
/// `created_at`, `sequence`, `source`, `workspace_id`, `configuration_id`, `run_id`, `build_id`
/// (omitted when absent), `payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Globally unique id, minted by the dispatcher.
    pub event_id: EventId,
    /// When the dispatcher stamped the event.
    pub created_at: Timestamp,
    /// Position in the run's log: starts at 1, +1 per event, no gaps.
    pub sequence: u64,
    /// Who emitted it.
    pub source: EventSource,
    /// The run's workspace.
    pub workspace_id: WorkspaceId,
    /// The run's configuration.
    pub configuration_id: ConfigurationId,
    /// The run.
    pub run_id: RunId,
    /// The run's build, on `build.*` events and every later event of a run that had a build.
    pub build_id: Option<BuildId>,
    /// The type and its payload.
    pub payload: EventPayload,
}

impl Envelope {
    /// The event's `type`.
    pub fn event_type(&self) -> &str {
        self.payload.event_type()
    }

    /// Whether this is the run's last event, `run.completed`.
    pub fn is_terminal(&self) -> bool {
        matches!(self.payload, EventPayload::RunCompleted(_))
    }

    /// The compact one-line JSON form, as stored and sent.
    ///
    /// # Errors
    /// Only when a payload holds something JSON cannot express (a map with non-string keys).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// Serializes [`EventPayload`] as the bare payload object.
struct PayloadOnly<'a>(&'a EventPayload);

impl Serialize for PayloadOnly<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_payload(serializer)
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = if self.build_id.is_some() { 10 } else { 9 };
        let mut s = serializer.serialize_struct("Envelope", fields)?;
        s.serialize_field("type", self.event_type())?;
        s.serialize_field("event_id", &self.event_id)?;
        s.serialize_field("created_at", &self.created_at)?;
        s.serialize_field("sequence", &self.sequence)?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field("workspace_id", &self.workspace_id)?;
        s.serialize_field("configuration_id", &self.configuration_id)?;
        s.serialize_field("run_id", &self.run_id)?;
        if let Some(build_id) = &self.build_id {
            s.serialize_field("build_id", build_id)?;
        } else {
            s.skip_field("build_id")?;
        }
        s.serialize_field("payload", &PayloadOnly(&self.payload))?;
        s.end()
    }
}

/// The envelope's fields, as JSON keys.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Type,
    EventId,
    CreatedAt,
    Sequence,
    Source,
    WorkspaceId,
    ConfigurationId,
    RunId,
    BuildId,
    Payload,
    #[serde(other)]
    Other,
}

/// Reads an envelope in one pass when `type` comes before `payload` (as ade writes it): the
/// payload is then parsed straight into its typed struct. Otherwise the payload is buffered as a
/// JSON value until the type is known.
struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event envelope object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut event_type: Option<String> = None;
        let mut payload: Option<EventPayload> = None;
        let mut early_payload: Option<Value> = None;
        let (mut event_id, mut created_at, mut sequence, mut source) = (None, None, None, None);
        let (mut workspace_id, mut configuration_id, mut run_id, mut build_id) = (None, None, None, None);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Type => event_type = Some(map.next_value()?),
                Field::Payload => match &event_type {
                    Some(event_type) => payload = Some(map.next_value_seed(PayloadSeed(event_type))?),
                    None => early_payload = Some(map.next_value()?),
                },
                Field::EventId => event_id = Some(map.next_value()?),
                Field::CreatedAt => created_at = Some(map.next_value()?),
                Field::Sequence => sequence = Some(map.next_value()?),
                Field::Source => source = Some(map.next_value()?),
                Field::WorkspaceId => workspace_id = Some(map.next_value()?),
                Field::ConfigurationId => configuration_id = Some(map.next_value()?),
                Field::RunId => run_id = Some(map.next_value()?),
                Field::BuildId => build_id = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let event_type = event_type.ok_or_else(|| A::Error::missing_field("type"))?;
        let payload = match payload {
            Some(payload) => payload,
            None => EventPayload::from_parts(&event_type, early_payload.unwrap_or_else(empty_object))
                .map_err(|e| A::Error::custom(format_args!("payload of {event_type:?}: {e}")))?,
        };
        let sequence: u64 = sequence.ok_or_else(|| A::Error::missing_field("sequence"))?;
        if sequence == 0 {
            return Err(A::Error::custom("sequence starts at 1"));
        }
        Ok(Envelope {
            event_id: event_id.ok_or_else(|| A::Error::missing_field("event_id"))?,
            created_at: created_at.ok_or_else(|| A::Error::missing_field("created_at"))?,
            sequence,
            source: source.ok_or_else(|| A::Error::missing_field("source"))?,
            workspace_id: workspace_id.ok_or_else(|| A::Error::missing_field("workspace_id"))?,
            configuration_id: configuration_id.ok_or_else(|| A::Error::missing_field("configuration_id"))?,
            run_id: run_id.ok_or_else(|| A::Error::missing_field("run_id"))?,
            build_id,
            payload,
        })
    }
}

/// Deserializes a payload whose type is already known.
struct PayloadSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = EventPayload;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<EventPayload, D::Error> {
        EventPayload::deserialize_payload(self.0, deserializer)
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::strategies;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_event_round_trips_through_json(event in strategies::envelope()) {
            let json = event.to_json()?;
            let back: Envelope = serde_json::from_str(&json)?;
            prop_assert_eq!(&back, &event);
            // …and the bytes are stable: serializing again gives the same line.
            prop_assert_eq!(back.to_json()?, json);
        }

        #[test]
        fn a_log_round_trips_through_ndjson(events in proptest::collection::vec(strategies::envelope(), 0..20)) {
            let mut ndjson = String::new();
            for event in &events {
                let line = event.to_json()?;
                prop_assert!(!line.contains('\n'), "one event, one line: {}", line);
                ndjson.push_str(&line);
                ndjson.push('\n');
            }
            let back = ndjson.lines().map(serde_json::from_str).collect::<Result<Vec<Envelope>, _>>()?;
            prop_assert_eq!(back, events);
        }

        #[test]
        fn unknown_types_and_fields_survive_a_round_trip(
            event_type in "[a-z]{1,6}\\.[a-z]{1,6}",
            payload in strategies::json_value(),
            extra_value in strategies::json_value(),
        ) {
            prop_assume!(!EventPayload::CATALOG_TYPES.contains(&event_type.as_str()) && !event_type.starts_with("x."));
            let line = serde_json::json!({
                "type": event_type, "event_id": "evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N",
                "created_at": "2026-11-26T18:52:57.802612Z", "sequence": 7, "source": "engine",
                "workspace_id": "acme", "configuration_id": "members",
                "run_id": "run_01JK3HXPQKZ4P6RZ3BET8ESZ1T", "payload": payload,
            });
            let event: Envelope = serde_json::from_value(line.clone())?;
            prop_assert!(matches!(event.payload, EventPayload::Unknown { .. }), "kept as unknown");
            prop_assert_eq!(serde_json::to_value(&event)?, line);

            // An unknown field in a known payload is kept too.
            let known = serde_json::json!({
                "type": "run.phase.started", "event_id": "evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N",
                "created_at": "2026-11-26T18:52:57.802612Z", "sequence": 8, "source": "engine",
                "workspace_id": "acme", "configuration_id": "members",
                "run_id": "run_01JK3HXPQKZ4P6RZ3BET8ESZ1T",
                "payload": { "phase": "mapping", "added_in_v2": extra_value },
            });
            let event: Envelope = serde_json::from_value(known.clone())?;
            prop_assert!(matches!(&event.payload, EventPayload::RunPhaseStarted(p) if p.extra.contains_key("added_in_v2")), "extra kept");
            prop_assert_eq!(serde_json::to_value(&event)?, known);
        }
    }

    #[test]
    fn fields_are_written_in_spec_order_and_build_id_is_omitted_when_absent() {
        let event = Envelope {
            event_id: "evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N".parse().expect("id"),
            created_at: "2026-11-26T18:52:57.802612Z".parse().expect("time"),
            sequence: 23,
            source: EventSource::Engine,
            workspace_id: WorkspaceId::new("acme").expect("ws"),
            configuration_id: ConfigurationId::new("members").expect("cfg"),
            run_id: "run_01JK3HXPQKZ4P6RZ3BET8ESZ1T".parse().expect("run"),
            build_id: None,
            payload: EventPayload::RunPhaseStarted(crate::event::PhaseStarted {
                phase: "mapping".to_owned(),
                message: Some("Mapping columns to fields".to_owned()),
                extra: Default::default(),
            }),
        };
        assert_eq!(
            event.to_json().expect("json"),
            r#"{"type":"run.phase.started","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N","created_at":"2026-11-26T18:52:57.802612Z","sequence":23,"source":"engine","workspace_id":"acme","configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T","payload":{"phase":"mapping","message":"Mapping columns to fields"}}"#
        );
    }

    #[test]
    fn a_bad_payload_of_a_known_type_is_an_error_naming_the_type() {
        let line = r#"{"type":"run.phase.started","event_id":"evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N","created_at":"2026-11-26T18:52:57.802612Z","sequence":1,"source":"engine","workspace_id":"acme","configuration_id":"members","run_id":"run_01JK3HXPQKZ4P6RZ3BET8ESZ1T","payload":{"phase":5}}"#;
        let error = serde_json::from_str::<Envelope>(line).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("run.phase.started"), "{error}");
        let missing_payload = line.replace(r#","payload":{"phase":5}"#, "").replace("run.phase.started", "x.ping");
        let event: Envelope = serde_json::from_str(&missing_payload).expect("payload defaults to {}");
        assert_eq!(event.to_json().ok().map(|j| j.ends_with(r#""payload":{}}"#)), Some(true));
    }
}
