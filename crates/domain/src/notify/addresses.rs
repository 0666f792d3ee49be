//! Where a webhook may be sent (SPEC section 7, "Outbound webhooks' address policy"): only to the
//! global unicast space. The special-purpose blocks below are IANA's IPv4 and IPv6 Special-Purpose
//! Address Registries (iana-ipv4-special-registry, iana-ipv6-special-registry, as of 2024-06),
//! row for row with their "Globally Reachable" column, plus the multicast blocks (their own
//! registries) and the deprecated blocks SPEC names. No crate carries them whole: `std`'s
//! `is_global` is unstable, and `ip_network` 0.4's IPv6 `is_global` lets 2001::/23, 100::/64 and
//! 64:ff9b::/96 through (docs/decisions.md).
//!
//! Where an IPv6 address carries an IPv4 one that the packet really reaches (IPv4-mapped, the
//! NAT64 prefix, 6to4), it is judged as that IPv4 address; the IPv4-compatible ::/96 is refused
//! outright, as SPEC lists it (no host is reached that way today).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a block is to a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Globally reachable: a target like any public address.
    Global,
    /// Inside someone's network, or a range nobody routes (documentation, benchmarking,
    /// protocol assignments): refused unless `webhooks.allow_private` (tests).
    Private,
    /// Never a target: unspecified, broadcast, multicast, reserved.
    Unroutable,
}

struct Block<T> {
    network: T,
    prefix: u8,
    reach: Reach,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, reach: Reach) -> Block<u32> {
    Block { network: u32::from_be_bytes([a, b, c, d]), prefix, reach }
}

const fn v6(segments: [u16; 8], prefix: u8, reach: Reach) -> Block<u128> {
    let mut n: u128 = 0;
    let mut i = 0;
    while i < 8 {
        n = (n << 16) | segments[i] as u128;
        i += 1;
    }
    Block { network: n, prefix, reach }
}

use Reach::{Global, Private, Unroutable};

/// IANA's IPv4 Special-Purpose Address Registry, then multicast (224/4). The most specific block
/// containing an address decides.
const V4: &[Block<u32>] = &[
    v4(0, 0, 0, 0, 8, Unroutable),          // "This network" (RFC 791)
    v4(10, 0, 0, 0, 8, Private),            // Private-Use (RFC 1918)
    v4(100, 64, 0, 0, 10, Private),         // Shared Address Space (RFC 6598)
    v4(127, 0, 0, 0, 8, Private),           // Loopback (RFC 1122)
    v4(169, 254, 0, 0, 16, Private),        // Link Local (RFC 3927)
    v4(172, 16, 0, 0, 12, Private),         // Private-Use (RFC 1918)
    v4(192, 0, 0, 0, 24, Private),          // IETF Protocol Assignments (RFC 6890)
    v4(192, 0, 0, 0, 29, Private),          // IPv4 Service Continuity Prefix (RFC 7335)
    v4(192, 0, 0, 8, 32, Private),          // IPv4 dummy address (RFC 7600)
    v4(192, 0, 0, 9, 32, Global),           // Port Control Protocol Anycast (RFC 7723)
    v4(192, 0, 0, 10, 32, Global),          // Traversal Using Relays around NAT Anycast (RFC 8155)
    v4(192, 0, 0, 170, 32, Private),        // NAT64/DNS64 Discovery (RFC 8880)
    v4(192, 0, 0, 171, 32, Private),        // NAT64/DNS64 Discovery (RFC 8880)
    v4(192, 0, 2, 0, 24, Private),          // Documentation, TEST-NET-1 (RFC 5737)
    v4(192, 31, 196, 0, 24, Global),        // AS112-v4 (RFC 7535)
    v4(192, 52, 193, 0, 24, Global),        // AMT (RFC 7450)
    v4(192, 88, 99, 0, 24, Private),        // Deprecated 6to4 Relay Anycast (RFC 7526)
    v4(192, 168, 0, 0, 16, Private),        // Private-Use (RFC 1918)
    v4(192, 175, 48, 0, 24, Global),        // Direct Delegation AS112 Service (RFC 7534)
    v4(198, 18, 0, 0, 15, Private),         // Benchmarking (RFC 2544)
    v4(198, 51, 100, 0, 24, Private),       // Documentation, TEST-NET-2 (RFC 5737)
    v4(203, 0, 113, 0, 24, Private),        // Documentation, TEST-NET-3 (RFC 5737)
    v4(224, 0, 0, 0, 4, Unroutable),        // Multicast (RFC 5771)
    v4(240, 0, 0, 0, 4, Unroutable),        // Reserved (RFC 1112)
    v4(255, 255, 255, 255, 32, Unroutable), // Limited Broadcast (RFC 919)
];

/// The IPv6 address space, then IANA's IPv6 Special-Purpose Address Registry, multicast (ff00::/8) and the deprecated
/// site-local fec0::/10. 2002::/16 (6to4) and the IPv4-carrying prefixes are judged before this
/// table (`reach`).
const V6: &[Block<u128>] = &[
    // IANA's IPv6 Address Space registry: only 2000::/3 is Global Unicast; the rest is reserved
    // by the IETF, unique-local, link-local or multicast (so ::ffff:0:a.b.c.d, SIIT's
    // IPv4-translated form, is not a way in either).
    v6([0, 0, 0, 0, 0, 0, 0, 0], 0, Private),
    v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, Global),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, Unroutable), // Unspecified (RFC 4291)
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Private),    // Loopback (RFC 4291)
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, Private),     // IPv4-compatible, deprecated (RFC 4291)
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, Private), // IPv4-mapped (RFC 4291)
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, Private), // IPv4-IPv6 Translation (RFC 6052)
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Private), // IPv4-IPv6 Translation, local (RFC 8215)
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Private), // Discard-Only (RFC 6666)
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Private), // IETF Protocol Assignments (RFC 2928)
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Private), // Documentation (RFC 3849)
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, Global), // Direct Delegation AS112 Service (RFC 7534)
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Private), // Documentation (RFC 9637)
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, Private), // Segment Routing SIDs (RFC 9602)
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Private), // Unique-Local (RFC 4193)
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Private), // Link-Local Unicast (RFC 4291)
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Private), // Site-Local, deprecated (RFC 3879)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Unroutable), // Multicast (RFC 4291)
];

fn most_specific<T: Copy + Into<u128>>(table: &[Block<T>], addr: u128, width: u8) -> Reach {
    table
        .iter()
        .filter(|b| {
            let shift = width - b.prefix;
            let network: u128 = b.network.into();
            shift >= 128 || (addr >> shift) == (network >> shift)
        })
        .max_by_key(|b| b.prefix)
        .map_or(Global, |b| b.reach)
}

/// The IPv4 address an IPv6 address delivers to, where it carries one that is really reached:
/// IPv4-mapped (::ffff:0:0/96), the NAT64 well-known prefix (64:ff9b::/96) and 6to4 (2002::/16,
/// the IPv4 address in bits 16–47).
pub fn carried_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(from(s[1], s[2]));
    }
    None
}

/// What `ip` is to a webhook.
pub fn reach(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => most_specific(V4, u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => match carried_v4(v6) {
            Some(v4) => reach(IpAddr::V4(v4)),
            None => most_specific(V6, u128::from(v6), 128),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Reach {
        reach(text.parse().unwrap())
    }

    #[test]
    fn spec_sections_seven_ipv4_blocks_are_not_global() {
        for a in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.0.1",
            "192.0.2.10",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert_ne!(of(a), Global, "{a}");
        }
    }

    #[test]
    fn spec_sections_seven_ipv6_blocks_are_not_global() {
        for a in [
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:0:7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert_ne!(of(a), Global, "{a}");
        }
    }

    #[test]
    fn public_addresses_and_the_registrys_global_exceptions_are_global() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.0.9",
            "192.0.0.10",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:200::1",
            "2620:4f:8000::1",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(of(a), Global, "{a}");
        }
    }

    #[test]
    fn nothing_lets_unspecified_broadcast_or_multicast_through() {
        for a in ["0.0.0.0", "255.255.255.255", "224.0.0.251", "::", "ff05::2", "::ffff:224.0.0.1", "2002:e000:1::"] {
            assert_eq!(of(a), Unroutable, "{a}");
        }
    }
}
