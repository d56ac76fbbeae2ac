//! Identifier newtypes: prefixed ULIDs minted by ade, and validated names chosen by users.
//!
//! Ids are parsed at every boundary, so a value of one of these types is always well formed, and a
//! name that ends up in a file path (workspace, configuration) can never escape its directory.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use crate::error::{Error, excerpt};

/// Length of a ULID in Crockford base32.
const ULID_LEN: usize = 26;

macro_rules! prefixed_ulid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Ulid);

        impl $name {
            /// The text every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Mints a new, time-ordered id.
            #[allow(clippy::new_without_default)] // a fresh id is not a "default"
            pub fn new() -> Self {
                Self(Ulid::generate())
            }

            /// Wraps an existing ULID.
            pub const fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            /// The ULID behind the id.
            pub const fn ulid(&self) -> Ulid {
                self.0
            }

            /// Writes the text form into a stack buffer, without allocating.
            fn write_to<'b>(&self, buf: &'b mut [u8; $prefix.len() + ULID_LEN]) -> &'b str {
                buf[..$prefix.len()].copy_from_slice($prefix.as_bytes());
                let mut ulid_buf = [0u8; ULID_LEN];
                self.0.array_to_str(&mut ulid_buf);
                buf[$prefix.len()..].copy_from_slice(&ulid_buf);
                // Both halves are ASCII, so this cannot fail; fall back to "" rather than panic.
                std::str::from_utf8(buf).unwrap_or_default()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; $prefix.len() + ULID_LEN];
                f.write_str(self.write_to(&mut buf))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self, Error> {
                parse_prefixed_ulid(text, $prefix, $kind).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut buf = [0u8; $prefix.len() + ULID_LEN];
                serializer.serialize_str(self.write_to(&mut buf))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "description": concat!("`", $prefix, "` followed by a ULID (26 Crockford base32 characters)."),
                    "pattern": concat!("^", $prefix, "[0-7][0-9A-HJKMNP-TV-Z]{25}$"),
                })
            }
        }
    };
}

prefixed_ulid_id!(
    /// Identifies one event, globally: `evt_` + ULID. Minted by the dispatcher only.
    EventId, "evt_", "event id"
);
prefixed_ulid_id!(
    /// Identifies a run: `run_` + ULID.
    RunId, "run_", "run id"
);
prefixed_ulid_id!(
    /// Identifies a build of a configuration: `build_` + ULID.
    BuildId, "build_", "build id"
);
prefixed_ulid_id!(
    /// Identifies an uploaded input document: `doc_` + ULID.
    DocumentId, "doc_", "document id"
);

fn parse_prefixed_ulid(text: &str, prefix: &str, kind: &'static str) -> Result<Ulid, Error> {
    let invalid = |reason| Error::InvalidId { kind, value: excerpt(text), reason };
    let body = text.strip_prefix(prefix).ok_or_else(|| invalid("wrong prefix"))?;
    if body.len() != ULID_LEN {
        return Err(invalid("expected 26 characters after the prefix"));
    }
    // Canonical ids are upper case; lower case would make two spellings of one id.
    if !body
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'H' | b'J' | b'K' | b'M' | b'N' | b'P'..=b'T' | b'V'..=b'Z'))
    {
        return Err(invalid("not upper-case Crockford base32"));
    }
    // 26 base32 digits hold 130 bits; a ULID is 128, so the first digit is at most 7.
    if body.as_bytes()[0] > b'7' {
        return Err(invalid("ULID out of range"));
    }
    Ulid::from_string(body).map_err(|_| invalid("ULID out of range"))
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// 1 to 64 characters of `A-Z a-z 0-9 _ - .`, starting with a letter or digit, so that
        /// the name is safe as a directory name and in a URL path segment.
        // `Arc<str>`: stamped on every event, so a clone must not allocate.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps a name.
            ///
            /// # Errors
            /// [`Error::InvalidId`] when the name is empty, too long, or has other characters.
            pub fn new(name: impl Into<String>) -> Result<Self, Error> {
                let name = name.into();
                validate_name(&name, $kind)?;
                Ok(Self(name.into()))
            }

            /// The name as text.
            #[inline]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self, Error> {
                Self::new(text)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <Cow<'de, str>>::deserialize(deserializer)?;
                validate_name(&name, $kind).map_err(serde::de::Error::custom)?;
                Ok(Self(name.into()))
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": NAME_PATTERN,
                })
            }
        }
    };
}

/// The pattern every user-chosen name must match (see [`WorkspaceId`]).
const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";

fn validate_name(name: &str, kind: &'static str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidId { kind, value: excerpt(name), reason };
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Err(invalid("must not be empty")),
        Some(first) if !first.is_ascii_alphanumeric() => {
            return Err(invalid("must start with a letter or digit"));
        }
        Some(_) => {}
    }
    if name.len() > 64 {
        return Err(invalid("must be at most 64 characters"));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err(invalid("may contain only letters, digits, '_', '-' and '.'"));
    }
    Ok(())
}

name_id!(
    /// A workspace: the tenancy boundary. Every run, document and event belongs to one.
    WorkspaceId, "workspace id"
);
name_id!(
    /// A configuration's id, chosen by whoever writes the configuration.
    ConfigurationId, "configuration id"
);

impl Default for WorkspaceId {
    /// The workspace used when a request names none: `default`.
    fn default() -> Self {
        Self("default".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_ids_round_trip_through_text_and_json() {
        let id = RunId::new();
        let text = id.to_string();
        assert!(text.starts_with("run_") && text.len() == 30, "{text}");
        assert_eq!(text.parse::<RunId>().ok(), Some(id));
        let json = serde_json::to_string(&id).ok();
        assert_eq!(json, Some(format!("\"{text}\"")));
    }

    #[test]
    fn prefixed_ids_reject_bad_text() {
        for bad in [
            "",
            "run_",
            "evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N",      // wrong prefix
            "run_01JK3J0YRKJ7Q2M5XW8T4V6B9",       // 25 chars
            "run_01JK3J0YRKJ7Q2M5XW8T4V6B9NN",     // 27 chars
            "run_01jk3j0yrkj7q2m5xw8t4v6b9n",      // lower case
            "run_01JK3J0YRKJ7Q2M5XW8T4V6B9U",      // U is not Crockford
            "run_81JK3J0YRKJ7Q2M5XW8T4V6B9N",      // overflows 128 bits
            "run_01JK3J0YRKJ7Q2M5XW8T4V6B9\u{e9}", // non-ASCII
        ] {
            assert!(bad.parse::<RunId>().is_err(), "{bad:?} was accepted");
        }
        assert!("evt_01JK3J0YRKJ7Q2M5XW8T4V6B9N".parse::<EventId>().is_ok());
    }

    #[test]
    fn names_are_safe_path_segments() {
        for good in ["acme", "default", "a", "members-2026_v1.2", &"x".repeat(64)] {
            assert!(WorkspaceId::new(good).is_ok(), "{good:?} was rejected");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "a\\b", "-x", "a b", "é", &"x".repeat(65)] {
            assert!(WorkspaceId::new(bad).is_err(), "{bad:?} was accepted");
            assert!(serde_json::from_value::<ConfigurationId>(serde_json::json!(bad)).is_err());
        }
    }
}
