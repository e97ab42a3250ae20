//! Which URLs wisp sends webhooks to. A webhook URL is given by a tenant, and wisp's
//! network position is not theirs: without care it could be made to call services only
//! wisp can reach (server-side request forgery).
//!
//! So a URL must be `http` or `https` with a host, no user info, and at most 2048 bytes;
//! and unless the operator allows private targets (`alerts.allow_private_targets`), every
//! address it is sent to must be public: not loopback, private (RFC 1918, unique local),
//! link-local (including cloud metadata at 169.254.169.254), shared (CGNAT), unspecified,
//! multicast, broadcast, documentation or reserved. Host names are checked on each
//! address they resolve to, at the time of sending (the sender's resolver refuses the
//! others), so a name that later resolves elsewhere gains nothing; redirects are not
//! followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The operator's policy on targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback, private and link-local addresses (tests, private networks).
    pub allow_private: bool,
}

/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    #[error("the URL does not parse")]
    Malformed,
    #[error("the URL is longer than {MAX_URL_BYTES} bytes")]
    TooLong,
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL must not carry a user name or password")]
    UserInfo,
    #[error("{0} is not a public address (the operator did not allow private targets)")]
    NotPublic(IpAddr),
}

impl TargetPolicy {
    /// Checks a URL's form and, if its host is an address, that address.
    pub fn check_url(&self, text: &str) -> Result<Url, TargetRefused> {
        if text.len() > MAX_URL_BYTES {
            return Err(TargetRefused::TooLong);
        }
        let url = Url::parse(text).map_err(|_| TargetRefused::Malformed)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetRefused::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetRefused::UserInfo);
        }
        match url.host() {
            None => return Err(TargetRefused::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// Checks one address a URL's host resolved to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetRefused> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(TargetRefused::NotPublic(ip))
        }
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // shared address space (CGNAT), 100.64.0.0/10
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24
        || (a == 192 && b == 0 && c == 0)
        // benchmarking, 198.18.0.0/15
        || (a == 198 && (b == 18 || b == 19))
        // reserved, 240.0.0.0/4
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // unique local, fc00::/7
        || (first & 0xfe00) == 0xfc00
        // link-local, fe80::/10
        || (first & 0xffc0) == 0xfe80
        // documentation, 2001:db8::/32
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // NAT64 and IPv4-compatible forms could hide a private IPv4 address
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_http_targets_by_default() {
        let policy = TargetPolicy::default();
        assert!(policy.check_url("https://hooks.example.com/wisp").is_ok());
        assert!(policy.check_url("http://93.184.216.34:8080/x").is_ok());
        for (url, refused) in [
            ("ftp://example.com/", TargetRefused::Scheme),
            ("file:///etc/passwd", TargetRefused::Scheme),
            ("https://user:pw@example.com/", TargetRefused::UserInfo),
            ("not a url", TargetRefused::Malformed),
        ] {
            assert_eq!(policy.check_url(url).unwrap_err(), refused, "{url}");
        }
        for url in [
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                matches!(policy.check_url(url), Err(TargetRefused::NotPublic(_))),
                "{url}"
            );
        }
        let open = TargetPolicy {
            allow_private: true,
        };
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert_eq!(
            open.check_url("gopher://127.0.0.1/").unwrap_err(),
            TargetRefused::Scheme
        );
    }
}
