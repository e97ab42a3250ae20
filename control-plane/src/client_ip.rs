//! Which address a request came from: the socket's peer, or what a trusted proxy says.
//!
//! Behind a proxy (Fly's edge, a load balancer) every connection comes from the proxy, so
//! per-address login throttling would put every client in one bucket and the audit log
//! would record the proxy. The proxy's `Fly-Client-IP` or `X-Forwarded-For` headers name
//! the client, but anyone can send those headers: they are read only when the peer is one
//! of the configured trusted proxies (`server.trusted_proxies`), and otherwise ignored.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address range, `10.0.0.0/8` or `fdaa::/16`; a bare address is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("{text:?} is not an address or an address/prefix range");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| invalid())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
            None => bits,
        };
        if prefix > bits {
            return Err(invalid());
        }
        Ok(Self { network, prefix })
    }
}

impl IpRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Which peers may name the client. Empty (the default): none, the socket address is used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientIpPolicy {
    trusted_proxies: Vec<IpRange>,
}

impl ClientIpPolicy {
    pub fn new(trusted_proxies: Vec<IpRange>) -> Self {
        Self { trusted_proxies }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|range| range.contains(ip))
    }

    /// Whether a trusted proxy says the client reached it over TLS (`X-Forwarded-Proto:
    /// https`, its first value). From any other peer the header proves nothing.
    pub fn forwarded_https(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        let Some(peer) = peer else { return false };
        self.trusts(peer.to_canonical())
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    /// The client's address for a request from `peer` with `headers`.
    ///
    /// From a trusted proxy: `Fly-Client-IP` if present, else the right-most address of
    /// `X-Forwarded-For` that is not itself a trusted proxy (addresses to its left were
    /// written by the client and prove nothing). Otherwise the peer.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        if let Some(fly) = headers
            .get("fly-client-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Some(fly.to_canonical());
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else {
                return Some(peer);
            };
            for hop in value.split(',') {
                match hop.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(ip.to_canonical()),
                    // A malformed hop: nothing left of it can be trusted, and what is right
                    // of it was checked below.
                    Err(_) => hops.clear(),
                }
            }
        }
        Some(
            hops.iter()
                .rev()
                .copied()
                .find(|hop| !self.trusts(*hop))
                .or_else(|| hops.first().copied())
                .unwrap_or(peer),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header"));
        }
        map
    }

    #[test]
    fn ranges_parse_and_match() {
        let range: IpRange = "10.0.0.0/8".parse().expect("range");
        assert!(range.contains(ip("10.1.2.3")));
        assert!(range.contains(ip("::ffff:10.1.2.3")));
        assert!(!range.contains(ip("11.0.0.1")));
        let v6: IpRange = "fdaa::/16".parse().expect("range");
        assert!(v6.contains(ip("fdaa:0:1::2")));
        assert!(!v6.contains(ip("fdab::1")));
        let one: IpRange = "127.0.0.1".parse().expect("range");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all: IpRange = "0.0.0.0/0".parse().expect("range");
        assert!(all.contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("nonsense".parse::<IpRange>().is_err());
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let forwarded = headers(&[
            ("fly-client-ip", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        let untrusting = ClientIpPolicy::default();
        assert_eq!(
            untrusting.client_ip(Some(ip("10.0.0.5")), &forwarded),
            Some(ip("10.0.0.5"))
        );
        let trusting = ClientIpPolicy::new(vec!["10.0.0.0/8".parse().expect("range")]);
        assert_eq!(
            trusting.client_ip(Some(ip("10.0.0.5")), &forwarded),
            Some(ip("203.0.113.9"))
        );
        // A client outside the range cannot name another address.
        assert_eq!(
            trusting.client_ip(Some(ip("192.0.2.7")), &forwarded),
            Some(ip("192.0.2.7"))
        );
        // X-Forwarded-For: the right-most hop that is not a trusted proxy.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.1, 10.0.0.9")]);
        assert_eq!(
            trusting.client_ip(Some(ip("10.0.0.5")), &chain),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(trusting.client_ip(None, &chain), None);
    }
}
