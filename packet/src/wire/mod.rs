//! Zero-copy header views, one file per protocol, in the style of smoltcp's
//! `wire` module.
//!
//! Each view `XPacket<T: AsRef<[u8]>>` wraps a buffer that starts at the
//! header. `new_unchecked` wraps any buffer; `new_checked` first verifies
//! that the buffer holds the whole header (and, where the header carries
//! length fields, that they are consistent), after which no accessor can
//! panic. Getters need `T: AsRef<[u8]>`; setters need `T: AsMut<[u8]>`.
//! Multi-byte fields are read and written big-endian; IPv4 addresses are
//! `u32` and IPv6 addresses `u128`, both in host order, MACs `[u8; 6]`.
//!
//! The views never copy or cast: every access is a bounds-checked read of
//! a few bytes at a constant offset (`mod field` in each file).

use std::fmt;

use thiserror::Error;

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::EthernetPacket;
pub use icmp::IcmpPacket;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;

/// A header a view is built over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Header {
    /// Ethernet II.
    Ethernet,
    /// ARP.
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Header::Ethernet => "Ethernet",
            Header::Arp => "ARP",
            Header::Ipv4 => "IPv4",
            Header::Ipv6 => "IPv6",
            Header::Tcp => "TCP",
            Header::Udp => "UDP",
            Header::Icmp => "ICMP",
        })
    }
}

/// Why a view's `new_checked` refused a buffer.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the header, or than a length the header
    /// declares (IPv4 header/total length, IPv6 payload length, TCP data
    /// offset, UDP length).
    #[error("{header} header truncated: buffer has {len} bytes, needs {needed}")]
    Truncated {
        /// The header that was too short.
        header: Header,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// A length field is smaller than the header itself (IPv4 IHL below 5,
    /// total length below the header length, TCP data offset below 5, UDP
    /// length below 8).
    #[error("{header} header has a length field below its minimum: {value}")]
    BadLength {
        /// The header with the bad field.
        header: Header,
        /// The length the field declares, in bytes.
        value: usize,
    },
}

/// `Ok(())` if `len >= needed`, else a [`WireError::Truncated`] for `header`.
#[inline]
pub(crate) fn check_len(header: Header, len: usize, needed: usize) -> Result<(), WireError> {
    if len < needed {
        Err(WireError::Truncated {
            header,
            len,
            needed,
        })
    } else {
        Ok(())
    }
}

/// Reads a big-endian `u16` at `off` (panics if out of bounds, as indexing).
#[inline(always)]
pub(crate) fn get_u16(data: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([data[off], data[off + 1]])
}

/// Writes a big-endian `u16` at `off`.
#[inline(always)]
pub(crate) fn set_u16(data: &mut [u8], off: usize, value: u16) {
    data[off..off + 2].copy_from_slice(&value.to_be_bytes());
}

/// Reads a big-endian `u32` at `off`.
#[inline(always)]
pub(crate) fn get_u32(data: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
}

/// Writes a big-endian `u32` at `off`.
#[inline(always)]
pub(crate) fn set_u32(data: &mut [u8], off: usize, value: u32) {
    data[off..off + 4].copy_from_slice(&value.to_be_bytes());
}

/// The unfolded one's-complement sum of an IPv4 pseudo-header (RFC 793,
/// RFC 768) for a transport segment of `len` bytes.
#[inline]
pub(crate) fn ipv4_pseudo_sum(src: u32, dst: u32, protocol: u8, len: usize) -> u32 {
    (src >> 16)
        + (src & 0xffff)
        + (dst >> 16)
        + (dst & 0xffff)
        + u32::from(protocol)
        + (len as u32 & 0xffff)
        + ((len as u32) >> 16)
}
