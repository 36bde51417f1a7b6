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
    /// IPv4 source address (host order); IPv6: see `src_ip6`.
    pub src_ip: u32,
    /// IPv4 destination address (host order).
    pub dst_ip: u32,
    /// IPv6 source address (host order), zero for IPv4.
    pub src_ip6: u128,
    /// IPv6 destination address (host order), zero for IPv4.
    pub dst_ip6: u128,
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

/// Parses `frame`. PLACEHOLDER: being written (see the brief).
pub fn parse(frame: &[u8]) -> Result<PacketMeta, Malformed> {
    let _ = frame;
    Err(Malformed::TruncatedEthernet)
}
