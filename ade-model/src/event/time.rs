//! [`Timestamp`]: the one clock type of ade, RFC 3339 UTC with microseconds.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Timelike, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, excerpt};

/// A point in time, always UTC, always at microsecond precision.
///
/// Serializes as `2026-11-26T18:52:57.802612Z`. Parsing accepts any RFC 3339 offset and normalizes
/// it to UTC; precision below a microsecond is dropped so a value survives a round trip unchanged.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now().trunc_subsecs(6))
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// Builds a timestamp from microseconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(Self)
    }

    /// Whole milliseconds from `earlier` to `self`, 0 when `earlier` is later.
    pub fn millis_since(&self, earlier: Timestamp) -> u64 {
        u64::try_from((self.0 - earlier.0).num_milliseconds()).unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Self(t.with_timezone(&Utc).trunc_subsecs(6)))
            .map_err(|e| Error::InvalidTimestamp { value: excerpt(text), reason: e.to_string() })
    }
}

impl Timestamp {
    /// Writes `YYYY-MM-DDTHH:MM:SS.ffffffZ` into a stack buffer: every event carries one, so this
    /// avoids an allocation and a format-string interpreter per event. `None` for years outside
    /// 0000–9999, which RFC 3339 cannot express in four digits.
    fn write_rfc3339(&self, buf: &mut [u8; 27]) -> Option<()> {
        let year = u32::try_from(self.0.year()).ok().filter(|y| *y <= 9999)?;
        let mut put = |at: usize, value: u32, digits: usize| {
            let mut value = value;
            for i in (0..digits).rev() {
                buf[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, year, 4);
        put(5, self.0.month(), 2);
        put(8, self.0.day(), 2);
        put(11, self.0.hour(), 2);
        put(14, self.0.minute(), 2);
        // A leap second is held as 1_000_000_000+ nanoseconds; keep it within the field.
        put(17, self.0.second(), 2);
        put(20, (self.0.nanosecond() / 1000).min(999_999), 6);
        buf[4] = b'-';
        buf[7] = b'-';
        buf[10] = b'T';
        buf[13] = b':';
        buf[16] = b':';
        buf[19] = b'.';
        buf[26] = b'Z';
        Some(())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 27];
        match self.write_rfc3339(&mut buf).and_then(|()| std::str::from_utf8(&buf).ok()) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 UTC with microseconds, e.g. 2026-11-26T18:52:57.802612Z.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_utc_with_microseconds() {
        let t: Timestamp = "2026-11-26T20:52:57.802612345+02:00".parse().expect("valid");
        assert_eq!(t.to_string(), "2026-11-26T18:52:57.802612Z");
        let whole: Timestamp = "2026-11-26T18:52:57Z".parse().expect("valid");
        assert_eq!(serde_json::to_string(&whole).ok().as_deref(), Some("\"2026-11-26T18:52:57.000000Z\""));
        let now = Timestamp::now();
        assert_eq!(now.to_string().parse::<Timestamp>().ok(), Some(now));
    }

    #[test]
    fn the_fast_format_matches_chrono() {
        for micros in [0, 1, 951_782_400_000_000, 1_764_183_177_802_612, 4_102_444_799_999_999, 253_402_300_799_999_999]
        {
            let t = Timestamp::from_unix_micros(micros).expect("in range");
            let fast = serde_json::to_string(&t).expect("json");
            assert_eq!(fast, format!("\"{}\"", t.0.to_rfc3339_opts(SecondsFormat::Micros, true)), "{micros}");
        }
        let far = Timestamp::from_unix_micros(300_000_000_000_000_000).expect("year 11476");
        assert_eq!(serde_json::to_string(&far).ok(), Some(format!("\"{far}\"")));
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in ["", "yesterday", "2026-11-26", "2026-11-26 18:52:57", "2026-13-01T00:00:00Z"] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} was accepted");
        }
    }
}
