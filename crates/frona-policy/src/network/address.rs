//! The classes of addresses frona refuses to connect to unless a policy names them (see the
//! [parent module](super)): loopback, private, link-local, CGNAT, metadata and the rest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// The kind of an address, for the refusal of everything that is not the public internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, and IPv6 unique local (fc00::/7) and the deprecated site-local (fec0::/10).
    Private,
    /// 169.254.0.0/16 and fe80::/10.
    LinkLocal,
    /// 100.64.0.0/10 (carrier-grade NAT).
    Shared,
    /// 0.0.0.0/8 and `::`.
    Unspecified,
    Multicast,
    /// Broadcast, 240.0.0.0/4, benchmarking, documentation, protocol assignments.
    Reserved,
    /// Cloud instance metadata: 169.254.169.254 and fd00:ec2::254.
    Metadata,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Shared => "shared (CGNAT)",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
            AddressClass::Metadata => "cloud metadata",
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, `::a.b.c.d`, `64:ff9b::a.b.c.d`) as the
/// IPv4 address it reaches; other addresses unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let high = bits >> 32;
    // IPv4-mapped ::ffff:0:0/96, the NAT64 well-known prefix 64:ff9b::/96, and the
    // deprecated IPv4-compatible ::/96 (but not :: and ::1 themselves).
    if high == 0xffff || high == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(low);
    }
    (high == 0 && bits > 1).then_some(low)
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == net & mask
}

/// What kind of address `ip` is (IPv4 embedded in IPv6 is classified as the IPv4 address).
pub fn classify(ip: IpAddr) -> AddressClass {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([169, 254, 169, 254], 32, Metadata),
        ([0, 0, 0, 0], 8, Unspecified),
        ([127, 0, 0, 0], 8, Loopback),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([100, 64, 0, 0], 10, Shared),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Reserved),
        ([198, 18, 0, 0], 15, Reserved),
        ([198, 51, 100, 0], 24, Reserved),
        ([203, 0, 113, 0], 24, Reserved),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[(u128, u32, AddressClass)] = &[
        (0xfd00_0ec2_0000_0000_0000_0000_0000_0254, 128, Metadata),
        (0, 128, Unspecified),
        (1, 128, Loopback),
        (0xfc00 << 112, 7, Private),
        (0xfec0 << 112, 10, Private),
        (0xfe80 << 112, 10, LinkLocal),
        (0xff00 << 112, 8, Multicast),
        (0x2001_0db8 << 96, 32, Reserved),
        // Discard-only, and the IETF protocol assignments (Teredo and others reach into IPv4).
        (0x0100 << 112, 64, Reserved),
        (0x2001 << 112, 23, Reserved),
        // 6to4 embeds an IPv4 address the proxy cannot vet.
        (0x2002 << 112, 16, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}
