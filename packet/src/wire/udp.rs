//! UDP header view (RFC 768; 8 bytes). Also fits UDP-Lite, whose length
//! field is a checksum coverage instead (RFC 3828), so only the UDP
//! interpretation of it is checked.

use super::{check_len, get_u16, ipv4_pseudo_sum, set_u16, Header, WireError};
use crate::checksum;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// IP protocol number of UDP.
const PROTOCOL: u8 = 17;

/// A view of a UDP header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking that it holds the header. The length
    /// field is not checked (UDP-Lite reuses it); [`UdpPacket::payload`]
    /// clamps it to the buffer.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(Header::Udp, buffer.as_ref().len(), HEADER_LEN)?;
        Ok(UdpPacket { buffer })
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length of header and payload (UDP-Lite: checksum coverage).
    #[inline]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the length field is 0 (only meaningful for UDP-Lite, where
    /// it means "the checksum covers the whole datagram").
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checksum as stored (0: none was computed).
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload: from the end of the header to the length field, clamped
    /// to the buffer; the rest of the buffer if the length is below 8.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let (start, end) = payload_range(self.len(), buf.len());
        &buf[start..end]
    }

    /// Whether the checksum is correct for a datagram carried in IPv4 from
    /// `src` to `dst` (the buffer must be exactly the datagram). A zero
    /// checksum (none computed) counts as correct.
    #[inline]
    pub fn verify_checksum_ipv4(&self, src: u32, dst: u32) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let buf = self.buffer.as_ref();
        let sum = ipv4_pseudo_sum(src, dst, PROTOCOL, buf.len());
        checksum::fold(checksum::sum_words(sum, buf)) == 0xffff
    }
}

/// The payload range for a length field `len` in a buffer of `buf_len`
/// bytes: never out of bounds.
#[inline]
fn payload_range(len: u16, buf_len: usize) -> (usize, usize) {
    let len = usize::from(len);
    let end = if len < HEADER_LEN {
        buf_len
    } else {
        len.min(buf_len)
    };
    (HEADER_LEN.min(end), end)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, check);
    }

    /// Computes and stores the checksum for a datagram carried in IPv4 from
    /// `src` to `dst` (the buffer must be exactly the datagram); a computed
    /// 0 is stored as 0xffff (RFC 768).
    #[inline]
    pub fn compute_checksum_ipv4(&mut self, src: u32, dst: u32) {
        self.set_checksum(0);
        let buf = self.buffer.as_ref();
        let sum = ipv4_pseudo_sum(src, dst, PROTOCOL, buf.len());
        let check = match !checksum::fold(checksum::sum_words(sum, buf)) {
            0 => 0xffff,
            c => c,
        };
        self.set_checksum(check);
    }

    /// The payload, mutably (same range as [`UdpPacket::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        let buf = self.buffer.as_mut();
        let (start, end) = payload_range(len, buf.len());
        &mut buf[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: u32 = 0x0a00_0001;
    const DST: u32 = 0x0a00_0002;

    // 10.0.0.1:5353 -> 10.0.0.2:53, 4 payload bytes, then 2 padding bytes.
    const DATAGRAM: [u8; 14] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00,
    ];

    #[test]
    fn reads_fields() {
        let udp = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(udp.src_port(), 5353);
        assert_eq!(udp.dst_port(), 53);
        assert_eq!(udp.len(), 12);
        assert!(!udp.is_empty());
        assert_eq!(udp.checksum(), 0);
        assert_eq!(udp.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(udp.verify_checksum_ipv4(SRC, DST));
    }

    #[test]
    fn writes_round_trip() {
        let mut buf = [0u8; 14];
        buf[8..12].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut udp = UdpPacket::new_checked(&mut buf[..]).unwrap();
        udp.set_src_port(5353);
        udp.set_dst_port(53);
        udp.set_len(12);
        udp.set_checksum(0);
        assert_eq!(buf, DATAGRAM);
    }

    #[test]
    fn checksum_round_trip() {
        let mut bytes = [0u8; 12];
        bytes.copy_from_slice(&DATAGRAM[..12]);
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        udp.compute_checksum_ipv4(SRC, DST);
        assert_ne!(udp.checksum(), 0);
        assert!(udp.verify_checksum_ipv4(SRC, DST));
        udp.set_src_port(5354);
        assert!(!udp.verify_checksum_ipv4(SRC, DST));
    }

    #[test]
    fn short_buffer_is_refused_and_lengths_are_clamped() {
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]),
            Err(WireError::Truncated {
                header: Header::Udp,
                len: 7,
                needed: 8
            })
        );
        let mut bytes = DATAGRAM;
        let mut udp = UdpPacket::new_checked(&mut bytes[..10]).unwrap();
        assert_eq!(udp.payload(), &[0xde, 0xad]);
        udp.set_len(3);
        assert_eq!(udp.payload_mut().len(), 2);
        udp.set_len(0xffff);
        assert_eq!(udp.payload().len(), 2);
    }
}
