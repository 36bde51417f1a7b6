//! The parser: one pass over a frame's headers, producing [`PacketMeta`].
//!
//! Headers parsed: Ethernet, one optional 802.1Q tag, ARP, IPv4 (options
//! skipped), IPv6 (fixed header), TCP, UDP, SCTP (132), UDP-Lite (136) and
//! ICMP. A frame that is truncated or inconsistent is refused with a
//! [`Malformed`] reason, which the dataplane counts and drops on; nothing
//! here can panic, whatever the bytes.

/// The network-layer protocol of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L3Kind {
    /// An ethertype the pipeline does not parse (forwarded to the host).
    #[default]
    Other,
    /// ARP for IPv4 over Ethernet.
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// The transport-layer header found after IPv4/IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L4Kind {
    /// No parsed transport header (unknown protocol, or a non-first fragment).
    #[default]
    None,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (IP protocol 132).
    Sctp,
    /// UDP-Lite (IP protocol 136).
    UdpLite,
    /// ICMP (IPv4) or ICMPv6.
    Icmp,
}

/// What the parser learned about a frame: header offsets and the fields the
/// pipeline matches on. Plain `Copy` data; fields of a layer that the frame
/// lacks are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// Destination MAC has the group bit set (multicast or broadcast).
    pub dst_multicast: bool,
    /// The 802.1Q VLAN id, when the frame carries a tag.
    pub vlan: Option<u16>,
    /// The ethertype after any VLAN tag.
    pub ethertype: u16,
    /// Network layer kind.
    pub l3: L3Kind,
    /// Offset of the network header (ARP, IPv4 or IPv6) in the frame.
    pub l3_offset: u16,
    /// Offset of the transport header in the frame (0 when `l4` is `None`).
    pub l4_offset: u16,
    /// IPv4 protocol or IPv6 next header.
    pub ip_proto: u8,
    /// IPv4 source address (host order); IPv6: see
    /// [`PacketMeta::ipv6_addresses`].
    pub src_ip: u32,
    /// IPv4 destination address (host order).
    pub dst_ip: u32,
    /// Transport layer kind.
    pub l4: L4Kind,
    /// TCP/UDP/SCTP/UDP-Lite source port.
    pub src_port: u16,
    /// TCP/UDP/SCTP/UDP-Lite destination port.
    pub dst_port: u16,
    /// TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub tcp_flags: u8,
    /// ICMP type and code as one 16-bit value (`type << 8 | code`).
    pub icmp_type_code: u16,
    /// ARP target protocol address (host order).
    pub arp_tpa: u32,
}

/// Why a frame was refused. Each reason has its own drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Malformed {
    /// Shorter than an Ethernet header (14 bytes).
    TruncatedEthernet,
    /// A VLAN tag cut short.
    TruncatedVlan,
    /// An ARP packet shorter than 28 bytes.
    TruncatedArp,
    /// ARP that is not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).
    UnsupportedArp,
    /// Fewer bytes than a 20-byte IPv4 header.
    TruncatedIpv4,
    /// IPv4 version field is not 4.
    BadIpv4Version,
    /// IPv4 IHL below 5, or past the end of the frame.
    BadIpv4HeaderLength,
    /// IPv4 total length below the header length or beyond the frame.
    BadIpv4TotalLength,
    /// Fewer bytes than a 40-byte IPv6 header, or payload length beyond the frame.
    TruncatedIpv6,
    /// IPv6 version field is not 6.
    BadIpv6Version,
    /// A TCP header cut short, or a data offset below 5 or past the packet.
    TruncatedTcp,
    /// A UDP header cut short.
    TruncatedUdp,
    /// An SCTP common header cut short.
    TruncatedSctp,
    /// A UDP-Lite header cut short.
    TruncatedUdpLite,
    /// An ICMP header cut short.
    TruncatedIcmp,
}

impl PacketMeta {
    /// The IPv6 source and destination addresses (host order) of `frame`,
    /// the frame this was parsed from; `None` unless it is IPv6. They are
    /// read from the frame on demand: the pipeline never needs them, and
    /// carrying them made every parsed packet 32 bytes larger.
    pub fn ipv6_addresses(&self, frame: &[u8]) -> Option<(u128, u128)> {
        if self.l3 != L3Kind::Ipv6 {
            return None;
        }
        let h: &[u8; IPV6_LEN] = chunk_at(frame, usize::from(self.l3_offset))?;
        let word = |at: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[at..at + 16]);
            u128::from_be_bytes(b)
        };
        Some((word(8), word(24)))
    }
}

impl Malformed {
    /// Every reason, in counter order.
    pub const ALL: [Malformed; 15] = [
        Malformed::TruncatedEthernet,
        Malformed::TruncatedVlan,
        Malformed::TruncatedArp,
        Malformed::UnsupportedArp,
        Malformed::TruncatedIpv4,
        Malformed::BadIpv4Version,
        Malformed::BadIpv4HeaderLength,
        Malformed::BadIpv4TotalLength,
        Malformed::TruncatedIpv6,
        Malformed::BadIpv6Version,
        Malformed::TruncatedTcp,
        Malformed::TruncatedUdp,
        Malformed::TruncatedSctp,
        Malformed::TruncatedUdpLite,
        Malformed::TruncatedIcmp,
    ];

    /// A stable snake_case name, for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Malformed::TruncatedEthernet => "truncated_ethernet",
            Malformed::TruncatedVlan => "truncated_vlan",
            Malformed::TruncatedArp => "truncated_arp",
            Malformed::UnsupportedArp => "unsupported_arp",
            Malformed::TruncatedIpv4 => "truncated_ipv4",
            Malformed::BadIpv4Version => "bad_ipv4_version",
            Malformed::BadIpv4HeaderLength => "bad_ipv4_header_length",
            Malformed::BadIpv4TotalLength => "bad_ipv4_total_length",
            Malformed::TruncatedIpv6 => "truncated_ipv6",
            Malformed::BadIpv6Version => "bad_ipv6_version",
            Malformed::TruncatedTcp => "truncated_tcp",
            Malformed::TruncatedUdp => "truncated_udp",
            Malformed::TruncatedSctp => "truncated_sctp",
            Malformed::TruncatedUdpLite => "truncated_udp_lite",
            Malformed::TruncatedIcmp => "truncated_icmp",
        }
    }
}

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 next-header value of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IP protocol number of SCTP.
pub const IPPROTO_SCTP: u8 = 132;
/// IP protocol number of UDP-Lite.
pub const IPPROTO_UDPLITE: u8 = 136;

const ETH_LEN: usize = 14;
const VLAN_LEN: usize = 4;
const ARP_LEN: usize = 28;
const IPV4_MIN_LEN: usize = 20;
const IPV6_LEN: usize = 40;

/// The `N` bytes of `data` starting at `off`, as an array reference, or
/// `None` if `data` is too short. One bounds check; indexing the array with
/// constants afterwards needs none.
#[inline(always)]
fn chunk_at<const N: usize>(data: &[u8], off: usize) -> Option<&[u8; N]> {
    data.get(off..)?.first_chunk::<N>()
}

#[inline(always)]
fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// Parses `frame` in one pass over its headers.
///
/// Reads: Ethernet, one optional 802.1Q tag, then ARP, IPv4 (options
/// skipped) or IPv6 (fixed header only), then TCP, UDP, SCTP, UDP-Lite or
/// ICMP/ICMPv6. Writes every [`PacketMeta`] field of the layers found; the
/// others stay zero. An unknown ethertype gives [`L3Kind::Other`] and an
/// unknown IP protocol, an IPv6 extension header or a non-first IPv4
/// fragment gives [`L4Kind::None`]; neither is an error.
///
/// IPv4 bytes past `total_length` (Ethernet padding) are ignored, and a
/// transport header must lie within `total_length` (IPv6: within the
/// payload length). For [`L3Kind::Other`], `l3_offset` is still where the
/// unparsed payload begins (14, or 18 after a VLAN tag), and `ethertype` is
/// the one found there (0x8100 for a second VLAN tag). A non-first IPv4
/// fragment keeps `ip_proto` but has `l4_offset` and the ports zero.
///
/// IPv6 checks run in the order: 40 bytes present ([`Malformed::TruncatedIpv6`]),
/// version ([`Malformed::BadIpv6Version`]), payload length within the frame
/// ([`Malformed::TruncatedIpv6`]).
///
/// Never panics and never allocates, whatever the bytes.
///
/// # Errors
///
/// The first [`Malformed`] reason met, in header order.
#[inline]
pub fn parse(frame: &[u8]) -> Result<PacketMeta, Malformed> {
    let mut m = PacketMeta::default();

    let eth: &[u8; ETH_LEN] = frame.first_chunk().ok_or(Malformed::TruncatedEthernet)?;
    m.dst_multicast = eth[0] & 0x01 != 0;
    let mut ethertype = be16(eth[12], eth[13]);
    let mut l3_off = ETH_LEN;
    if ethertype == ETHERTYPE_VLAN {
        let tag: &[u8; VLAN_LEN] = chunk_at(frame, ETH_LEN).ok_or(Malformed::TruncatedVlan)?;
        m.vlan = Some(be16(tag[0], tag[1]) & 0x0fff);
        ethertype = be16(tag[2], tag[3]);
        l3_off += VLAN_LEN;
    }
    m.ethertype = ethertype;
    // l3_off <= 18: the casts to u16 below cannot truncate, and no offset
    // computed from it can exceed 18 + 60 + 60.
    m.l3_offset = l3_off as u16;

    match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(frame, l3_off, &mut m)?,
        ETHERTYPE_IPV6 => parse_ipv6(frame, l3_off, &mut m)?,
        ETHERTYPE_ARP => parse_arp(frame, l3_off, &mut m)?,
        _ => {}
    }
    Ok(m)
}

#[inline(always)]
fn parse_arp(frame: &[u8], off: usize, m: &mut PacketMeta) -> Result<(), Malformed> {
    let a: &[u8; ARP_LEN] = chunk_at(frame, off).ok_or(Malformed::TruncatedArp)?;
    // htype 1 (Ethernet), ptype 0x0800 (IPv4), hlen 6, plen 4.
    if a[..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return Err(Malformed::UnsupportedArp);
    }
    m.l3 = L3Kind::Arp;
    m.arp_tpa = u32::from_be_bytes([a[24], a[25], a[26], a[27]]);
    Ok(())
}

#[inline(always)]
fn parse_ipv4(frame: &[u8], off: usize, m: &mut PacketMeta) -> Result<(), Malformed> {
    let h: &[u8; IPV4_MIN_LEN] = chunk_at(frame, off).ok_or(Malformed::TruncatedIpv4)?;
    if h[0] >> 4 != 4 {
        return Err(Malformed::BadIpv4Version);
    }
    // chunk_at succeeded, so off + 20 <= frame.len().
    let avail = frame.len() - off;
    let hdr_len = usize::from(h[0] & 0x0f) * 4;
    if hdr_len < IPV4_MIN_LEN || hdr_len > avail {
        return Err(Malformed::BadIpv4HeaderLength);
    }
    let total_len = usize::from(be16(h[2], h[3]));
    if total_len < hdr_len || total_len > avail {
        return Err(Malformed::BadIpv4TotalLength);
    }
    m.l3 = L3Kind::Ipv4;
    m.ip_proto = h[9];
    m.src_ip = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    m.dst_ip = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    let frag_off = be16(h[6], h[7]) & 0x1fff;
    if frag_off != 0 {
        return Ok(());
    }
    // hdr_len <= total_len <= avail: in bounds; `get` keeps it panic-free.
    match frame.get(off + hdr_len..off + total_len) {
        Some(l4) => parse_l4(l4, off + hdr_len, h[9], IPPROTO_ICMP, m),
        None => Ok(()),
    }
}

#[inline(always)]
fn parse_ipv6(frame: &[u8], off: usize, m: &mut PacketMeta) -> Result<(), Malformed> {
    let h: &[u8; IPV6_LEN] = chunk_at(frame, off).ok_or(Malformed::TruncatedIpv6)?;
    if h[0] >> 4 != 6 {
        return Err(Malformed::BadIpv6Version);
    }
    let payload_len = usize::from(be16(h[4], h[5]));
    let l4_off = off + IPV6_LEN;
    // chunk_at succeeded, so l4_off <= frame.len().
    if payload_len > frame.len() - l4_off {
        return Err(Malformed::TruncatedIpv6);
    }
    m.l3 = L3Kind::Ipv6;
    m.ip_proto = h[6];
    match frame.get(l4_off..l4_off + payload_len) {
        Some(l4) => parse_l4(l4, l4_off, h[6], IPPROTO_ICMPV6, m),
        None => Ok(()),
    }
}

/// Parses the transport header at the start of `l4` (which ends where the IP
/// packet ends), found at frame offset `off`. `icmp` is the protocol number
/// that means ICMP for this IP version.
#[inline(always)]
fn parse_l4(
    l4: &[u8],
    off: usize,
    proto: u8,
    icmp: u8,
    m: &mut PacketMeta,
) -> Result<(), Malformed> {
    let (kind, ports) = match proto {
        IPPROTO_TCP => {
            let t: &[u8; 20] = l4.first_chunk().ok_or(Malformed::TruncatedTcp)?;
            let data_off = usize::from(t[12] >> 4) * 4;
            if data_off < 20 || data_off > l4.len() {
                return Err(Malformed::TruncatedTcp);
            }
            m.tcp_flags = t[13];
            (L4Kind::Tcp, [t[0], t[1], t[2], t[3]])
        }
        IPPROTO_UDP => {
            let u: &[u8; 8] = l4.first_chunk().ok_or(Malformed::TruncatedUdp)?;
            (L4Kind::Udp, [u[0], u[1], u[2], u[3]])
        }
        IPPROTO_SCTP => {
            let s: &[u8; 12] = l4.first_chunk().ok_or(Malformed::TruncatedSctp)?;
            (L4Kind::Sctp, [s[0], s[1], s[2], s[3]])
        }
        IPPROTO_UDPLITE => {
            let u: &[u8; 8] = l4.first_chunk().ok_or(Malformed::TruncatedUdpLite)?;
            (L4Kind::UdpLite, [u[0], u[1], u[2], u[3]])
        }
        p if p == icmp => {
            let i: &[u8; 4] = l4.first_chunk().ok_or(Malformed::TruncatedIcmp)?;
            m.l4 = L4Kind::Icmp;
            m.l4_offset = off as u16;
            m.icmp_type_code = be16(i[0], i[1]);
            return Ok(());
        }
        _ => return Ok(()),
    };
    m.l4 = kind;
    m.l4_offset = off as u16;
    m.src_port = be16(ports[0], ports[1]);
    m.dst_port = be16(ports[2], ports[3]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC4: u32 = 0x0a00_0001;
    const DST4: u32 = 0x0a00_0002;
    const SRC6: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0001;
    const DST6: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0002;

    /// An Ethernet header to a unicast MAC.
    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// An IPv4 header (IHL 5, no checksum) followed by `l4`.
    fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        p.extend_from_slice(&SRC4.to_be_bytes());
        p.extend_from_slice(&DST4.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    /// An IPv6 header followed by `l4`.
    fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&SRC6.to_be_bytes());
        p.extend_from_slice(&DST6.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    fn cat(a: Vec<u8>, b: &[u8]) -> Vec<u8> {
        let mut a = a;
        a.extend_from_slice(b);
        a
    }

    /// A TCP header, data offset 5, SYN.
    fn tcp() -> Vec<u8> {
        let mut t = vec![0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02];
        t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    /// A UDP (or UDP-Lite) header with 4 payload bytes.
    fn udp() -> Vec<u8> {
        vec![0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0, 0, 1, 2, 3, 4]
    }

    /// An SCTP common header (ports 36412 -> 38412).
    fn sctp() -> Vec<u8> {
        vec![0x8e, 0x3c, 0x96, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0]
    }

    /// An ARP request for 10.0.0.2.
    fn arp() -> Vec<u8> {
        let mut a = vec![
            0, 1, 0x08, 0x00, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 1, 10, 0, 0, 1,
        ];
        a.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        a
    }

    fn with(frame: Vec<u8>, at: usize, byte: u8) -> Vec<u8> {
        let mut f = frame;
        f[at] = byte;
        f
    }

    #[test]
    fn each_malformed_reason() {
        let v4 = |proto, l4: &[u8]| cat(eth(ETHERTYPE_IPV4), &ipv4(proto, l4));
        let v6 = |next, l4: &[u8]| cat(eth(ETHERTYPE_IPV6), &ipv6(next, l4));
        let mut padded_tcp = v4(IPPROTO_TCP, &tcp()[..10]);
        padded_tcp.extend_from_slice(&[0; 10]); // 20 bytes, but past total_length
        let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
            ("empty", vec![], Malformed::TruncatedEthernet),
            (
                "13 bytes",
                eth(0x0800)[..13].to_vec(),
                Malformed::TruncatedEthernet,
            ),
            (
                "vlan cut",
                cat(eth(ETHERTYPE_VLAN), &[0, 5, 8]),
                Malformed::TruncatedVlan,
            ),
            (
                "arp 27",
                cat(eth(ETHERTYPE_ARP), &arp()[..27]),
                Malformed::TruncatedArp,
            ),
            (
                "arp htype 6",
                cat(eth(ETHERTYPE_ARP), &with(arp(), 1, 6)),
                Malformed::UnsupportedArp,
            ),
            (
                "arp ptype",
                cat(eth(ETHERTYPE_ARP), &with(arp(), 2, 0x86)),
                Malformed::UnsupportedArp,
            ),
            (
                "arp hlen",
                cat(eth(ETHERTYPE_ARP), &with(arp(), 4, 8)),
                Malformed::UnsupportedArp,
            ),
            (
                "arp plen",
                cat(eth(ETHERTYPE_ARP), &with(arp(), 5, 16)),
                Malformed::UnsupportedArp,
            ),
            (
                "ipv4 19",
                cat(eth(0x0800), &ipv4(99, &[])[..19]),
                Malformed::TruncatedIpv4,
            ),
            (
                "ipv4 v6",
                cat(eth(0x0800), &with(ipv4(99, &[]), 0, 0x65)),
                Malformed::BadIpv4Version,
            ),
            (
                "ihl 4",
                cat(eth(0x0800), &with(ipv4(99, &[]), 0, 0x44)),
                Malformed::BadIpv4HeaderLength,
            ),
            (
                "ihl 0",
                cat(eth(0x0800), &with(ipv4(99, &[]), 0, 0x40)),
                Malformed::BadIpv4HeaderLength,
            ),
            (
                "ihl 6 past end",
                cat(eth(0x0800), &with(ipv4(99, &[]), 0, 0x46)),
                Malformed::BadIpv4HeaderLength,
            ),
            (
                "total 19",
                cat(eth(0x0800), &with(ipv4(99, &[]), 3, 19)),
                Malformed::BadIpv4TotalLength,
            ),
            (
                "total < ihl",
                cat(eth(0x0800), &with(with(ipv4(99, &[0; 8]), 0, 0x46), 3, 22)),
                Malformed::BadIpv4TotalLength,
            ),
            (
                "total past end",
                cat(eth(0x0800), &with(ipv4(99, &[]), 3, 21)),
                Malformed::BadIpv4TotalLength,
            ),
            (
                "ipv6 39",
                cat(eth(ETHERTYPE_IPV6), &ipv6(59, &[])[..39]),
                Malformed::TruncatedIpv6,
            ),
            (
                "ipv6 payload past end",
                cat(eth(ETHERTYPE_IPV6), &with(ipv6(59, &[]), 5, 1)),
                Malformed::TruncatedIpv6,
            ),
            (
                "ipv6 v4",
                cat(eth(ETHERTYPE_IPV6), &with(ipv6(59, &[]), 0, 0x40)),
                Malformed::BadIpv6Version,
            ),
            (
                "tcp 19",
                v4(IPPROTO_TCP, &tcp()[..19]),
                Malformed::TruncatedTcp,
            ),
            (
                "tcp doff 4",
                v4(IPPROTO_TCP, &with(tcp(), 12, 0x40)),
                Malformed::TruncatedTcp,
            ),
            (
                "tcp doff 6",
                v4(IPPROTO_TCP, &with(tcp(), 12, 0x60)),
                Malformed::TruncatedTcp,
            ),
            ("tcp past total", padded_tcp, Malformed::TruncatedTcp),
            (
                "tcp6 19",
                v6(IPPROTO_TCP, &tcp()[..19]),
                Malformed::TruncatedTcp,
            ),
            (
                "udp 7",
                v4(IPPROTO_UDP, &udp()[..7]),
                Malformed::TruncatedUdp,
            ),
            (
                "udp6 7",
                v6(IPPROTO_UDP, &udp()[..7]),
                Malformed::TruncatedUdp,
            ),
            (
                "sctp 11",
                v4(IPPROTO_SCTP, &sctp()[..11]),
                Malformed::TruncatedSctp,
            ),
            (
                "sctp6 11",
                v6(IPPROTO_SCTP, &sctp()[..11]),
                Malformed::TruncatedSctp,
            ),
            (
                "udplite 7",
                v4(IPPROTO_UDPLITE, &udp()[..7]),
                Malformed::TruncatedUdpLite,
            ),
            (
                "udplite6 7",
                v6(IPPROTO_UDPLITE, &udp()[..7]),
                Malformed::TruncatedUdpLite,
            ),
            (
                "icmp 3",
                v4(IPPROTO_ICMP, &[8, 0, 0]),
                Malformed::TruncatedIcmp,
            ),
            (
                "icmpv6 3",
                v6(IPPROTO_ICMPV6, &[128, 0, 0]),
                Malformed::TruncatedIcmp,
            ),
        ];
        for (name, frame, want) in &cases {
            assert_eq!(parse(frame), Err(*want), "{name}");
        }
        for reason in Malformed::ALL {
            assert!(
                cases.iter().any(|c| c.2 == reason),
                "no case for {}",
                reason.name()
            );
        }
    }

    #[test]
    fn well_formed_frames() {
        let base = PacketMeta {
            ethertype: ETHERTYPE_IPV4,
            l3: L3Kind::Ipv4,
            l3_offset: 14,
            src_ip: SRC4,
            dst_ip: DST4,
            ..PacketMeta::default()
        };
        let base6 = PacketMeta {
            ethertype: ETHERTYPE_IPV6,
            l3: L3Kind::Ipv6,
            l3_offset: 14,
            ..PacketMeta::default()
        };
        let ports = |l4, proto, src_port, dst_port, b: PacketMeta| PacketMeta {
            l4,
            ip_proto: proto,
            l4_offset: b.l3_offset + if b.l3 == L3Kind::Ipv4 { 20 } else { 40 },
            src_port,
            dst_port,
            ..b
        };
        let cases: Vec<(&str, Vec<u8>, PacketMeta)> = vec![
            (
                "ipv4 tcp",
                cat(eth(0x0800), &ipv4(IPPROTO_TCP, &tcp())),
                PacketMeta {
                    tcp_flags: 0x02,
                    ..ports(L4Kind::Tcp, 6, 40000, 80, base)
                },
            ),
            (
                "ipv4 udp",
                cat(eth(0x0800), &ipv4(IPPROTO_UDP, &udp())),
                ports(L4Kind::Udp, 17, 5353, 53, base),
            ),
            (
                "ipv4 sctp",
                cat(eth(0x0800), &ipv4(IPPROTO_SCTP, &sctp())),
                ports(L4Kind::Sctp, 132, 36412, 38412, base),
            ),
            (
                "ipv4 udplite",
                cat(eth(0x0800), &ipv4(IPPROTO_UDPLITE, &udp())),
                ports(L4Kind::UdpLite, 136, 5353, 53, base),
            ),
            (
                "ipv4 icmp",
                cat(eth(0x0800), &ipv4(IPPROTO_ICMP, &[8, 0, 0xf7, 0xff])),
                PacketMeta {
                    icmp_type_code: 0x0800,
                    ..ports(L4Kind::Icmp, 1, 0, 0, base)
                },
            ),
            (
                "ipv4 proto 58 is not icmp",
                cat(eth(0x0800), &ipv4(IPPROTO_ICMPV6, &[128, 0, 0, 0])),
                PacketMeta {
                    ip_proto: 58,
                    ..base
                },
            ),
            (
                "ipv4 unknown proto",
                cat(eth(0x0800), &ipv4(47, &[0; 4])),
                PacketMeta {
                    ip_proto: 47,
                    ..base
                },
            ),
            (
                "ipv4 non-first fragment",
                cat(eth(0x0800), &with(ipv4(IPPROTO_TCP, &[0; 8]), 7, 0x10)),
                PacketMeta {
                    ip_proto: 6,
                    ..base
                },
            ),
            (
                "ipv4 first fragment (MF set)",
                cat(eth(0x0800), &with(ipv4(IPPROTO_UDP, &udp()), 6, 0x20)),
                ports(L4Kind::Udp, 17, 5353, 53, base),
            ),
            (
                "ipv4 padding after total length",
                cat(cat(eth(0x0800), &ipv4(IPPROTO_UDP, &udp())), &[0xee; 18]),
                ports(L4Kind::Udp, 17, 5353, 53, base),
            ),
            (
                "ipv4 udp in options-free header, mac multicast",
                cat(with(eth(0x0800), 0, 0x01), &ipv4(IPPROTO_UDP, &udp())),
                PacketMeta {
                    dst_multicast: true,
                    ..ports(L4Kind::Udp, 17, 5353, 53, base)
                },
            ),
            (
                "ipv6 tcp",
                cat(eth(ETHERTYPE_IPV6), &ipv6(IPPROTO_TCP, &tcp())),
                PacketMeta {
                    tcp_flags: 0x02,
                    ..ports(L4Kind::Tcp, 6, 40000, 80, base6)
                },
            ),
            (
                "ipv6 udp",
                cat(eth(ETHERTYPE_IPV6), &ipv6(IPPROTO_UDP, &udp())),
                ports(L4Kind::Udp, 17, 5353, 53, base6),
            ),
            (
                "ipv6 sctp",
                cat(eth(ETHERTYPE_IPV6), &ipv6(IPPROTO_SCTP, &sctp())),
                ports(L4Kind::Sctp, 132, 36412, 38412, base6),
            ),
            (
                "ipv6 udplite",
                cat(eth(ETHERTYPE_IPV6), &ipv6(IPPROTO_UDPLITE, &udp())),
                ports(L4Kind::UdpLite, 136, 5353, 53, base6),
            ),
            (
                "ipv6 icmpv6",
                cat(eth(ETHERTYPE_IPV6), &ipv6(IPPROTO_ICMPV6, &[128, 0, 0, 0])),
                PacketMeta {
                    icmp_type_code: 0x8000,
                    ..ports(L4Kind::Icmp, 58, 0, 0, base6)
                },
            ),
            (
                "ipv6 hop-by-hop is not walked",
                cat(eth(ETHERTYPE_IPV6), &ipv6(0, &[6, 0, 0, 0, 0, 0, 0, 0])),
                PacketMeta {
                    ip_proto: 0,
                    ..base6
                },
            ),
            (
                "ipv6 proto 1 is not icmp",
                cat(eth(ETHERTYPE_IPV6), &ipv6(IPPROTO_ICMP, &[8, 0, 0, 0])),
                PacketMeta {
                    ip_proto: 1,
                    ..base6
                },
            ),
            (
                "vlan ipv4 udp",
                cat(
                    cat(eth(ETHERTYPE_VLAN), &[0xe0, 0x64, 0x08, 0x00]),
                    &ipv4(IPPROTO_UDP, &udp()),
                ),
                PacketMeta {
                    vlan: Some(100),
                    l4_offset: 38,
                    ..ports(
                        L4Kind::Udp,
                        17,
                        5353,
                        53,
                        PacketMeta {
                            l3_offset: 18,
                            ..base
                        },
                    )
                },
            ),
            (
                "arp",
                cat(eth(ETHERTYPE_ARP), &arp()),
                PacketMeta {
                    ethertype: ETHERTYPE_ARP,
                    l3: L3Kind::Arp,
                    l3_offset: 14,
                    arp_tpa: 0x0a00_0002,
                    ..PacketMeta::default()
                },
            ),
            (
                "vlan arp with padding",
                cat(
                    cat(cat(eth(ETHERTYPE_VLAN), &[0x0f, 0xff, 0x08, 0x06]), &arp()),
                    &[0; 14],
                ),
                PacketMeta {
                    vlan: Some(0xfff),
                    ethertype: ETHERTYPE_ARP,
                    l3: L3Kind::Arp,
                    l3_offset: 18,
                    arp_tpa: 0x0a00_0002,
                    ..PacketMeta::default()
                },
            ),
            (
                "double vlan: inner tag not parsed",
                cat(
                    cat(eth(ETHERTYPE_VLAN), &[0, 5, 0x81, 0x00, 0, 6, 0x08, 0x00]),
                    &ipv4(17, &udp()),
                ),
                PacketMeta {
                    vlan: Some(5),
                    ethertype: ETHERTYPE_VLAN,
                    l3_offset: 18,
                    ..PacketMeta::default()
                },
            ),
            (
                "unknown ethertype, header only",
                eth(0x88cc),
                PacketMeta {
                    ethertype: 0x88cc,
                    l3_offset: 14,
                    ..PacketMeta::default()
                },
            ),
        ];
        for (name, frame, want) in &cases {
            assert_eq!(parse(frame), Ok(*want), "{name}");
            let addrs = (want.l3 == L3Kind::Ipv6).then_some((SRC6, DST6));
            assert_eq!(want.ipv6_addresses(frame), addrs, "{name}");
        }
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let mut ip = ipv4(IPPROTO_TCP, &[1, 1, 1, 0]);
        ip[0] = 0x46;
        ip.extend_from_slice(&tcp());
        ip[3] += 20;
        let m = parse(&cat(eth(0x0800), &ip)).unwrap();
        assert_eq!(
            (m.l4, m.l4_offset, m.src_port, m.dst_port),
            (L4Kind::Tcp, 38, 40000, 80)
        );
    }

    #[test]
    fn tcp_options_must_fit_in_total_length() {
        let mut t = tcp();
        t[12] = 0x60;
        t.extend_from_slice(&[1, 1, 1, 0]);
        let frame = cat(eth(0x0800), &ipv4(IPPROTO_TCP, &t));
        assert_eq!(parse(&frame).map(|m| m.l4), Ok(L4Kind::Tcp));
        let mut cut = frame.clone();
        cut[14 + 3] -= 1; // total length one short of the options
        assert_eq!(parse(&cut), Err(Malformed::TruncatedTcp));
    }

    #[test]
    fn every_prefix_is_refused_or_shorter_than_parsed() {
        let frame = cat(eth(0x0800), &ipv4(IPPROTO_TCP, &tcp()));
        for n in 0..frame.len() {
            assert!(parse(&frame[..n]).is_err(), "prefix {n}");
        }
    }
}
