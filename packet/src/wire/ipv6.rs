//! IPv6 fixed header view (RFC 8200; 40 bytes). Extension headers are
//! part of the payload.

use super::{check_len, get_u16, get_u32, set_u16, set_u32, Header, WireError};

mod field {
    use std::ops::Range;

    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
    pub const PAYLOAD: usize = 40;
}

/// Length of the IPv6 fixed header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of an IPv6 header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking that it holds the fixed header and the
    /// payload length it declares. The version is not checked.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if the buffer is shorter.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        check_len(Header::Ipv6, len, HEADER_LEN)?;
        let packet = Ipv6Packet { buffer };
        check_len(
            Header::Ipv6,
            len,
            HEADER_LEN + usize::from(packet.payload_len()),
        )?;
        Ok(packet)
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (6 for IPv6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (extension headers included), in bytes.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address (host order).
    #[inline]
    pub fn src(&self) -> u128 {
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        u128::from_be_bytes(addr)
    }

    /// Destination address (host order).
    #[inline]
    pub fn dst(&self) -> u128 {
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        u128::from_be_bytes(addr)
    }

    /// The payload: the payload length's worth of bytes after the header,
    /// clamped to the buffer (so it cannot panic even if the length field
    /// was changed after `new_checked`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = (field::PAYLOAD + usize::from(self.payload_len())).min(buf.len());
        &buf[field::PAYLOAD.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version, traffic class and flow label (the low 20 bits).
    #[inline]
    pub fn set_version_tc_flow(&mut self, version: u8, traffic_class: u8, flow_label: u32) {
        let word = (u32::from(version) << 28)
            | (u32::from(traffic_class) << 20)
            | (flow_label & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, next: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = next;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hops: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hops;
    }

    /// Sets the source address (host order).
    #[inline]
    pub fn set_src(&mut self, addr: u128) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.to_be_bytes());
    }

    /// Sets the destination address (host order).
    #[inline]
    pub fn set_dst(&mut self, addr: u128) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.to_be_bytes());
    }

    /// The payload, mutably (same range as [`Ipv6Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.payload_len());
        let buf = self.buffer.as_mut();
        let end = (field::PAYLOAD + len).min(buf.len());
        &mut buf[field::PAYLOAD.min(end)..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0001;
    const DST: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0002;

    fn packet() -> [u8; 44] {
        let mut p = [0u8; 44];
        p[..8].copy_from_slice(&[0x6a, 0xb1, 0x23, 0x45, 0x00, 0x04, 17, 64]);
        p[8..24].copy_from_slice(&SRC.to_be_bytes());
        p[24..40].copy_from_slice(&DST.to_be_bytes());
        p[40..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        p
    }

    #[test]
    fn reads_fields() {
        let bytes = packet();
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.traffic_class(), 0xab);
        assert_eq!(ip.flow_label(), 0x1_2345);
        assert_eq!(ip.payload_len(), 4);
        assert_eq!(ip.next_header(), 17);
        assert_eq!(ip.hop_limit(), 64);
        assert_eq!(ip.src(), SRC);
        assert_eq!(ip.dst(), DST);
        assert_eq!(ip.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn writes_round_trip() {
        let mut buf = [0u8; 44];
        buf[40..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut ip = Ipv6Packet::new_unchecked(&mut buf[..]);
        ip.set_version_tc_flow(6, 0xab, 0x1_2345);
        ip.set_payload_len(4);
        ip.set_next_header(17);
        ip.set_hop_limit(64);
        ip.set_src(SRC);
        ip.set_dst(DST);
        assert_eq!(buf, packet());
    }

    #[test]
    fn short_buffers_are_refused() {
        let bytes = packet();
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..39]),
            Err(WireError::Truncated {
                header: Header::Ipv6,
                len: 39,
                needed: 40
            })
        );
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..43]),
            Err(WireError::Truncated {
                header: Header::Ipv6,
                len: 43,
                needed: 44
            })
        );
    }

    #[test]
    fn payload_survives_a_changed_length() {
        let mut bytes = packet();
        let mut ip = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
        ip.set_payload_len(0xffff);
        assert_eq!(ip.payload().len(), 4);
        assert_eq!(ip.payload_mut().len(), 4);
    }
}
