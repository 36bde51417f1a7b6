//! Ethernet II header view (14 bytes: destination MAC, source MAC,
//! ethertype). An 802.1Q tag, if any, is the start of the payload.

use super::{check_len, get_u16, set_u16, Header, WireError};

mod field {
    use std::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of an Ethernet II header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetPacket<T> {
    /// Wraps `buffer` without checking its length; accessors panic if it is
    /// shorter than [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole header.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if `buffer` is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(Header::Ethernet, buffer.as_ref().len(), HEADER_LEN)?;
        Ok(EthernetPacket { buffer })
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        mac
    }

    /// Source MAC.
    #[inline]
    pub fn src(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        mac
    }

    /// Whether the destination is a group address (multicast or broadcast).
    #[inline]
    pub fn dst_is_multicast(&self) -> bool {
        self.buffer.as_ref()[field::DST.start] & 0x01 != 0
    }

    /// The ethertype (0x8100 when an 802.1Q tag follows).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetPacket<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    /// Sets the ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    /// The bytes after the header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 18] = [
        0x01, 0x00, 0x5e, 0x00, 0x00, 0x01, // dst (multicast)
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // src
        0x08, 0x00, // IPv4
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    #[test]
    fn reads_fields() {
        let eth = EthernetPacket::new_checked(&FRAME[..]).unwrap();
        assert_eq!(eth.dst(), [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
        assert_eq!(eth.src(), [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert!(eth.dst_is_multicast());
        assert_eq!(eth.ethertype(), 0x0800);
        assert_eq!(eth.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn writes_round_trip() {
        let mut buf = [0u8; 18];
        buf[14..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut eth = EthernetPacket::new_checked(&mut buf[..]).unwrap();
        eth.set_dst([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
        eth.set_src([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        eth.set_ethertype(0x0800);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn short_buffer_is_refused() {
        assert_eq!(
            EthernetPacket::new_checked(&FRAME[..13]),
            Err(WireError::Truncated {
                header: Header::Ethernet,
                len: 13,
                needed: 14
            })
        );
        let empty = EthernetPacket::new_checked(&FRAME[..14]).unwrap();
        assert!(empty.payload().is_empty());
    }
}
