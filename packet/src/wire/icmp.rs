//! ICMP (RFC 792) and ICMPv6 (RFC 4443) header view: type, code and
//! checksum (4 bytes), then the message body (for echo: identifier and
//! sequence number, then data).

use super::{check_len, get_u16, set_u16, Header, WireError};
use crate::checksum;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const BODY: usize = 4;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const ECHO_END: usize = 8;
}

/// Length of the ICMP header (type, code, checksum).
pub const HEADER_LEN: usize = field::BODY;

/// A view of an ICMP or ICMPv6 header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter
    /// than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps `buffer` after checking that it holds the 4-byte header.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(Header::Icmp, buffer.as_ref().len(), HEADER_LEN)?;
        Ok(IcmpPacket { buffer })
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier, if the buffer holds one (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> Option<u16> {
        let b = self
            .buffer
            .as_ref()
            .get(field::ECHO_IDENT..field::ECHO_SEQ)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Echo sequence number, if the buffer holds one.
    #[inline]
    pub fn echo_seq(&self) -> Option<u16> {
        let b = self.buffer.as_ref().get(field::ECHO_SEQ..field::ECHO_END)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The message body after type, code and checksum.
    #[inline]
    pub fn body(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[field::BODY.min(buf.len())..]
    }

    /// Whether the ICMP (IPv4) checksum over the whole buffer is correct.
    /// ICMPv6 checksums include a pseudo-header and are not checked here.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum_words(0, self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, check);
    }

    /// Computes and stores the ICMP (IPv4) checksum over the whole buffer
    /// (which must be exactly the message).
    #[inline]
    pub fn compute_checksum(&mut self) {
        self.set_checksum(0);
        let check = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(check);
    }

    /// The message body, mutably.
    #[inline]
    pub fn body_mut(&mut self) -> &mut [u8] {
        let buf = self.buffer.as_mut();
        let start = field::BODY.min(buf.len());
        &mut buf[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request, ident 0x1234, seq 1, data "ab", checksum 0x8468.
    const ECHO: [u8; 10] = [8, 0, 0x84, 0x68, 0x12, 0x34, 0x00, 0x01, b'a', b'b'];

    #[test]
    fn reads_fields() {
        let icmp = IcmpPacket::new_checked(&ECHO[..]).unwrap();
        assert_eq!(icmp.msg_type(), 8);
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(icmp.checksum(), 0x8468);
        assert_eq!(icmp.echo_ident(), Some(0x1234));
        assert_eq!(icmp.echo_seq(), Some(1));
        assert_eq!(icmp.body(), &[0x12, 0x34, 0x00, 0x01, b'a', b'b']);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn writes_round_trip() {
        let mut buf = [0u8; 10];
        buf[4..].copy_from_slice(&[0x12, 0x34, 0x00, 0x01, b'a', b'b']);
        let mut icmp = IcmpPacket::new_checked(&mut buf[..]).unwrap();
        icmp.set_msg_type(8);
        icmp.set_msg_code(0);
        icmp.compute_checksum();
        assert_eq!(buf, ECHO);
    }

    #[test]
    fn short_buffers() {
        assert_eq!(
            IcmpPacket::new_checked(&ECHO[..3]),
            Err(WireError::Truncated {
                header: Header::Icmp,
                len: 3,
                needed: 4
            })
        );
        let mut bytes = ECHO;
        let mut icmp = IcmpPacket::new_checked(&mut bytes[..4]).unwrap();
        assert_eq!(icmp.echo_ident(), None);
        assert_eq!(icmp.echo_seq(), None);
        assert!(icmp.body().is_empty());
        assert!(icmp.body_mut().is_empty());
    }
}
