//! Where a webhook may be sent (server-side request forgery): `http`/`https` URLs whose host is a
//! public address. Loopback, private, link-local, shared (CGNAT), unique-local, multicast and
//! unspecified addresses are refused unless the deployment allows them
//! ([`WebhookOptions::allow_private_targets`](crate::WebhookOptions::allow_private_targets)).
//!
//! The check is made when a subscription is created and again at every delivery: on the URL's
//! literal address, or on every address its name resolves to (the client's resolver, so a name
//! that later resolves to a private address, DNS rebinding, is refused at delivery too).

use std::net::{IpAddr, SocketAddr};

use crate::error::{Error, Result};

/// Whether `ip` is an address of the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// The longest URL a subscription may have.
pub const MAX_URL_BYTES: usize = 2048;

/// Checks a subscription's URL: absolute `http` or `https`, with a host, no credentials, and,
/// when the host is an address, a public one (unless `allow_private`).
///
/// # Errors
/// [`Error::InvalidUrl`] or [`Error::PrivateTarget`], saying why.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url> {
    if url.len() > MAX_URL_BYTES {
        return Err(Error::InvalidUrl(format!("longer than {MAX_URL_BYTES} bytes")));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::InvalidUrl(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::InvalidUrl(format!("{url:?}: the scheme must be http or https")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::InvalidUrl(format!("{url:?}: credentials in the URL are not supported")));
    }
    let address = match parsed.host() {
        None => return Err(Error::InvalidUrl(format!("{url:?} has no host"))),
        Some(url::Host::Domain(name)) => {
            let name = name.to_ascii_lowercase();
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                return Err(Error::PrivateTarget(format!("{url:?} names this host")));
            }
            None
        }
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
    };
    if let Some(ip) = address
        && !allow_private
        && !is_public(ip)
    {
        return Err(Error::PrivateTarget(format!("{url:?} is a private, loopback or reserved address")));
    }
    Ok(parsed)
}

/// The HTTP client's resolver: the system's, keeping only public addresses (unless allowed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> =
                found.iter().copied().filter(|address| allow_private || is_public(address.ip())).collect();
            if kept.is_empty() {
                let error = if found.is_empty() {
                    format!("{host} resolves to no address")
                } else {
                    format!("{host} resolves only to private, loopback or reserved addresses (refused)")
                };
                return Err(error.into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_refused_public_ones_taken() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_host_credentials_and_address() {
        assert!(check_url("https://hooks.example.com/ade", false).is_ok());
        assert!(check_url("http://8.8.8.8:8080/x", false).is_ok());
        for (url, what) in [
            ("ftp://example.com/", "scheme"),
            ("not a url", "not a URL"),
            ("https://user:pw@example.com/", "credentials"),
            ("http://127.0.0.1:9000/", "private"),
            ("http://[::1]/", "private"),
            ("http://169.254.169.254/latest/meta-data", "private"),
            ("http://localhost:8080/", "this host"),
            ("http://api.localhost/", "this host"),
        ] {
            let refused = check_url(url, false).expect_err(url).to_string();
            assert!(refused.contains(what), "{url}: {refused}");
        }
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok(), "allowed by the deployment");
        assert!(check_url("http://localhost:9000/", true).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_private_addresses_unless_allowed() {
        use reqwest::dns::Resolve as _;
        let name = || "localhost".parse::<reqwest::dns::Name>().expect("name");
        let refused = GuardedResolver { allow_private: false }.resolve(name()).await;
        let error = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("refused"), "{error}");
        let allowed = GuardedResolver { allow_private: true }.resolve(name()).await.expect("resolves");
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
