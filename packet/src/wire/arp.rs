//! ARP view for IPv4 over Ethernet (RFC 826; 28 bytes). The sender and
//! target address fields are at the offsets of that layout; check
//! [`ArpPacket::is_ethernet_ipv4`] before trusting them on other ARP.

use super::{check_len, get_u16, get_u32, set_u16, set_u32, Header, WireError};

mod field {
    use std::ops::Range;

    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::END;

/// ARP request operation.
pub const OPER_REQUEST: u16 = 1;
/// ARP reply operation.
pub const OPER_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking its length; accessors panic if it is
    /// shorter than [`PACKET_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds [`PACKET_LEN`] bytes.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if `buffer` is shorter.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(Header::Arp, buffer.as_ref().len(), PACKET_LEN)?;
        Ok(ArpPacket { buffer })
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn htype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 for IPv4).
    #[inline]
    pub fn ptype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length (6 for Ethernet).
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4 for IPv4).
    #[inline]
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Whether this is ARP for IPv4 over Ethernet (htype 1, ptype 0x0800,
    /// hlen 6, plen 4), the only layout the address accessors describe.
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.htype() == 1 && self.ptype() == 0x0800 && self.hlen() == 6 && self.plen() == 4
    }

    /// Operation ([`OPER_REQUEST`] or [`OPER_REPLY`]).
    #[inline]
    pub fn oper(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        mac
    }

    /// Sender protocol address (host order).
    #[inline]
    pub fn spa(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        mac
    }

    /// Target protocol address (host order).
    #[inline]
    pub fn tpa(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the Ethernet/IPv4 constants: htype 1, ptype 0x0800, hlen 6,
    /// plen 4.
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        let buf = self.buffer.as_mut();
        set_u16(buf, field::HTYPE, 1);
        set_u16(buf, field::PTYPE, 0x0800);
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_oper(&mut self, oper: u16) {
        set_u16(self.buffer.as_mut(), field::OPER, oper);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sha(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&mac);
    }

    /// Sets the sender protocol address (host order).
    #[inline]
    pub fn set_spa(&mut self, addr: u32) {
        set_u32(self.buffer.as_mut(), field::SPA, addr);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_tha(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&mac);
    }

    /// Sets the target protocol address (host order).
    #[inline]
    pub fn set_tpa(&mut self, addr: u32) {
        set_u32(self.buffer.as_mut(), field::TPA, addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype ptype hlen plen oper
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 10, 0, 0, 1, // sha spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2, // tha tpa
    ];

    #[test]
    fn reads_fields() {
        let arp = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert!(arp.is_ethernet_ipv4());
        assert_eq!(arp.oper(), OPER_REQUEST);
        assert_eq!(arp.sha(), [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(arp.spa(), 0x0a00_0001);
        assert_eq!(arp.tha(), [0; 6]);
        assert_eq!(arp.tpa(), 0x0a00_0002);
    }

    #[test]
    fn writes_round_trip() {
        let mut buf = [0u8; 28];
        let mut arp = ArpPacket::new_checked(&mut buf[..]).unwrap();
        arp.set_ethernet_ipv4();
        arp.set_oper(OPER_REQUEST);
        arp.set_sha([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        arp.set_spa(0x0a00_0001);
        arp.set_tha([0; 6]);
        arp.set_tpa(0x0a00_0002);
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn short_buffer_is_refused() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]),
            Err(WireError::Truncated {
                header: Header::Arp,
                len: 27,
                needed: 28
            })
        );
    }
}
