//! Who the client is: the socket peer, unless the peer is one of
//! `server.trusted_proxies`; then the right-most `X-Forwarded-For` hop that is
//! not a trusted proxy (each trusted proxy appends the address it got the
//! request from, so hops left of the first untrusted one could be forged). The
//! PROXY protocol's source address counts as the peer when the proxy that sent
//! it is trusted (`server/preread.rs`).

use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Most `X-Forwarded-For` hops looked at, from the right.
const MAX_HOPS: usize = 32;

/// `server.trusted_proxies`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`) and single addresses; the indexes of the
    /// entries that are neither.
    pub fn parse<'a>(list: impl IntoIterator<Item = &'a str>) -> Result<Self, Vec<usize>> {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for (i, s) in list.into_iter().enumerate() {
            let s = s.trim();
            match s.parse::<IpNet>() {
                Ok(n) => nets.push(n),
                Err(_) => match s.parse::<IpAddr>() {
                    Ok(ip) => nets.push(IpNet::from(ip)),
                    Err(_) => bad.push(i),
                },
            }
        }
        if bad.is_empty() {
            Ok(TrustedProxies(nets))
        } else {
            Err(bad)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.contains(peer.ip()) {
            return peer;
        }
        let mut client = peer;
        let values = headers.get_all("x-forwarded-for");
        // right to left over every header line, each right to left
        let hops = values
            .iter()
            .rev()
            .flat_map(|v| v.as_bytes().rsplit(|b| *b == b','))
            .take(MAX_HOPS);
        for hop in hops {
            let Some(ip) = std::str::from_utf8(hop).ok().and_then(parse_hop) else {
                // a hop that is no address ends what can be believed
                return client;
            };
            client = SocketAddr::new(ip, 0);
            if !self.contains(ip) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.7"]).unwrap();
        let ingress: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let client = |h: &[&str]| t.client(ingress, &xff(h)).ip().to_string();
        assert_eq!(client(&["203.0.113.9"]), "203.0.113.9");
        // a client that forges hops only adds them to the left
        assert_eq!(client(&["6.6.6.6, 203.0.113.9"]), "203.0.113.9");
        assert_eq!(client(&["6.6.6.6", "203.0.113.9, 10.9.9.9"]), "203.0.113.9");
        assert_eq!(client(&["[2001:db8::1]:443, 192.168.1.7"]), "2001:db8::1");
        // nothing untrusted: the left-most hop; garbage: the last believable one
        assert_eq!(client(&["10.0.0.5, 10.0.0.6"]), "10.0.0.5");
        assert_eq!(client(&["not-an-ip, 10.0.0.6"]), "10.0.0.6");
        assert_eq!(client(&[]), "10.1.2.3");
        // an untrusted peer's header is ignored
        let direct: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(t.client(direct, &xff(&["1.1.1.1"])), direct);
        assert_eq!(
            TrustedProxies::parse(["10.0.0.0/33", "x", "::1"]),
            Err(vec![0, 1])
        );
    }
}
