//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): a secret `whsec_<base64>`,
//! and `webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The prefix of a secret's text.
const PREFIX: &str = "whsec_";

/// Bytes of a secret this crate makes (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A subscription's signing secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A new random secret, from the operating system's generator.
    ///
    /// # Errors
    /// [`Error::Random`] when the operating system has no randomness to give.
    pub fn generate() -> Result<Self> {
        let mut key = vec![0; SECRET_BYTES];
        getrandom::fill(&mut key).map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self { key })
    }

    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] for another prefix, bad base64 or a key shorter than 16 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        let encoded = text.strip_prefix(PREFIX).ok_or(Error::InvalidSecret("it must start with whsec_"))?;
        let key = STANDARD.decode(encoded).map_err(|_| Error::InvalidSecret("it is not base64 after whsec_"))?;
        if key.len() < 16 {
            return Err(Error::InvalidSecret("its key is shorter than 16 bytes"));
        }
        Ok(Self { key })
    }

    /// The secret as given to the subscriber: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The `webhook-signature` header's value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes()))
    }

    /// Whether `header` (space-separated `v1,<base64>` signatures) holds a valid signature of the
    /// message, compared in constant time. What a receiver checks (with the timestamp's age).
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').filter_map(|signature| signature.strip_prefix("v1,")).any(|encoded| {
            STANDARD.decode(encoded).is_ok_and(|tag| self.mac(id, timestamp, body).verify_slice(&tag).is_ok())
        })
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_the_specifications_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body, &format!("v1,bad= {signature}")));
        assert!(!secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_331, body, &signature), "timestamp signed");
        assert!(!secret.verify("msg_other", 1_614_265_330, body, &signature), "id signed");
        assert!(!secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, b"{}", &signature), "body signed");
    }

    #[test]
    fn generated_secrets_round_trip_and_differ() {
        let (a, b) = (Secret::generate().expect("random"), Secret::generate().expect("random"));
        assert_ne!(a, b);
        assert_eq!(Secret::parse(&a.expose()).expect("parse"), a);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(format!("{a:?}"), "Secret(…)", "never printed");
        for bad in ["", "whsec_", "whsec_!!!", "sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2hvcnQ="] {
            assert!(Secret::parse(bad).is_err(), "{bad}");
        }
    }
}
