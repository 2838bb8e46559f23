//! Which client an address stands for, for limits counted per address.

use std::net::{IpAddr, Ipv6Addr};

/// The key a per-address limit counts `ip` under: an IPv4 address as it is
/// (an IPv4-mapped IPv6 address as its IPv4 form), an IPv6 address by its
/// /64 prefix, since one IPv6 host is routinely given a whole /64 and could
/// otherwise step around a per-address cap by changing its low bits.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::V4(0.into()));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::V4(0.into()));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(client_key(mapped), IpAddr::V4([10, 0, 0, 7].into()));
    }
}
