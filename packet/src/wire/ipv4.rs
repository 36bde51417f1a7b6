//! IPv4 header view (RFC 791): a 20-byte fixed header, then options up to
//! the header length, then the payload up to the total length. Bytes after
//! the total length (Ethernet padding) belong to neither.

use super::{check_len, get_u16, get_u32, set_u16, set_u32, Header, WireError};
use crate::checksum;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
}

/// Length of the IPv4 header without options.
pub const MIN_HEADER_LEN: usize = field::OPTIONS;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter
    /// than [`MIN_HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking that it holds the fixed header, that
    /// the header length is at least 20 and the total length at least the
    /// header length, and that both lie within the buffer. The version is
    /// not checked.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if a length exceeds the buffer,
    /// [`WireError::BadLength`] if one is below its minimum.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        check_len(Header::Ipv4, len, MIN_HEADER_LEN)?;
        let packet = Ipv4Packet { buffer };
        let header_len = packet.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::BadLength {
                header: Header::Ipv4,
                value: header_len,
            });
        }
        check_len(Header::Ipv4, len, header_len)?;
        let total_len = usize::from(packet.total_len());
        if total_len < header_len {
            return Err(WireError::BadLength {
                header: Header::Ipv4,
                value: total_len,
            });
        }
        check_len(Header::Ipv4, len, total_len)?;
        Ok(packet)
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN (the former TOS byte).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of header and payload, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset, in units of 8 bytes as on the wire (0 for an
    /// unfragmented packet or a first fragment).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address (host order).
    #[inline]
    pub fn src(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address (host order).
    #[inline]
    pub fn dst(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::DST)
    }

    /// The header bytes, options included (clamped to the buffer).
    #[inline]
    fn header(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[..self.header_len().min(buf.len())]
    }

    /// The options (empty when the header length is 20).
    #[inline]
    pub fn options(&self) -> &[u8] {
        let header = self.header();
        &header[field::OPTIONS.min(header.len())..]
    }

    /// Whether the stored checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum_words(0, self.header())) == 0xffff
    }

    /// The payload: from the end of the header to the total length. Never
    /// panics, even if a length field was changed after `new_checked`: the
    /// range is clamped to the buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(buf.len());
        let start = self.header_len().min(end);
        &buf[start..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version and the header length (in bytes, a multiple of 4
    /// from 20 to 60; the low two bits are dropped).
    #[inline]
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ihl;
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Sets the flags and fragment offset (in units of 8 bytes).
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut value = offset & FRAG_OFFSET_MASK;
        if dont_frag {
            value |= FLAG_DF;
        }
        if more_frags {
            value |= FLAG_MF;
        }
        set_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, check);
    }

    /// Sets the source address (host order).
    #[inline]
    pub fn set_src(&mut self, addr: u32) {
        set_u32(self.buffer.as_mut(), field::SRC, addr);
    }

    /// Sets the destination address (host order).
    #[inline]
    pub fn set_dst(&mut self, addr: u32) {
        set_u32(self.buffer.as_mut(), field::DST, addr);
    }

    /// Computes the header checksum and stores it.
    #[inline]
    pub fn compute_checksum(&mut self) {
        self.set_checksum(0);
        let check = checksum::checksum(self.header());
        self.set_checksum(check);
    }

    /// The payload, mutably (same range as [`Ipv4Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.total_len());
        let start = self.header_len();
        let buf = self.buffer.as_mut();
        let end = end.min(buf.len());
        &mut buf[start.min(end)..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, checksum 0xb8bc, then 4 payload
    // bytes and 2 bytes of Ethernet padding.
    const PACKET: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0xbc, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00,
    ];

    #[test]
    fn reads_fields() {
        let ip = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.dscp_ecn(), 0);
        assert_eq!(ip.total_len(), 24);
        assert_eq!(ip.ident(), 0);
        assert!(ip.dont_frag());
        assert!(!ip.more_frags());
        assert_eq!(ip.frag_offset(), 0);
        assert_eq!(ip.ttl(), 64);
        assert_eq!(ip.protocol(), 17);
        assert_eq!(ip.checksum(), 0xb8bc);
        assert_eq!(ip.src(), 0xc0a8_0001);
        assert_eq!(ip.dst(), 0xc0a8_00c7);
        assert!(ip.options().is_empty());
        assert_eq!(ip.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(ip.verify_checksum());
    }

    #[test]
    fn writes_round_trip() {
        let mut buf = [0u8; 26];
        buf[20..24].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.set_version_and_header_len(4, 20);
        ip.set_dscp_ecn(0);
        ip.set_total_len(24);
        ip.set_ident(0);
        ip.set_frag(true, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(17);
        ip.set_src(0xc0a8_0001);
        ip.set_dst(0xc0a8_00c7);
        ip.compute_checksum();
        assert!(ip.verify_checksum());
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn checksum_detects_a_change() {
        let mut buf = PACKET;
        let mut ip = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        ip.set_ttl(63);
        assert!(!ip.verify_checksum());
        ip.compute_checksum();
        assert!(ip.verify_checksum());
    }

    #[test]
    fn options_are_in_the_header() {
        let mut buf = [0u8; 28];
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.set_version_and_header_len(4, 24);
        ip.set_total_len(28);
        ip.buffer[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        ip.compute_checksum();
        let ip = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(ip.options(), &[1, 1, 1, 0]);
        assert_eq!(ip.payload().len(), 4);
        assert!(ip.verify_checksum());
    }

    #[test]
    fn bad_lengths_are_refused() {
        let short = Ipv4Packet::new_checked(&PACKET[..19]);
        assert_eq!(
            short,
            Err(WireError::Truncated {
                header: Header::Ipv4,
                len: 19,
                needed: 20
            })
        );

        let mut buf = PACKET;
        buf[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]),
            Err(WireError::BadLength {
                header: Header::Ipv4,
                value: 16
            })
        );
        buf[0] = 0x4f; // IHL 15: 60 bytes
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]),
            Err(WireError::Truncated {
                header: Header::Ipv4,
                len: 26,
                needed: 60
            })
        );

        let mut buf = PACKET;
        buf[3] = 19; // total length below the header
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]),
            Err(WireError::BadLength {
                header: Header::Ipv4,
                value: 19
            })
        );
        buf[3] = 27; // beyond the buffer
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]),
            Err(WireError::Truncated {
                header: Header::Ipv4,
                len: 26,
                needed: 27
            })
        );
    }

    #[test]
    fn accessors_survive_a_changed_length() {
        let mut buf = PACKET;
        let mut ip = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        ip.set_total_len(0xffff);
        ip.set_version_and_header_len(4, 60);
        assert!(ip.payload().is_empty());
        assert_eq!(ip.options().len(), 6);
        assert!(ip.payload_mut().is_empty());
        let _ = ip.verify_checksum();
        ip.compute_checksum();
    }
}
