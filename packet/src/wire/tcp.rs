//! TCP header view (RFC 9293): a 20-byte fixed header, options up to the
//! data offset, then the payload. The buffer is the whole segment (the IP
//! payload), so the payload runs to its end.

use super::{check_len, get_u16, get_u32, ipv4_pseudo_sum, set_u16, set_u32, Header, WireError};
use crate::checksum;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of the TCP header without options.
pub const MIN_HEADER_LEN: usize = field::OPTIONS;

/// IP protocol number of TCP.
const PROTOCOL: u8 = 6;

/// TCP flag bits of [`TcpPacket::flags`].
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo.
    pub const ECE: u8 = 0x40;
    /// Congestion Window Reduced.
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP header at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter
    /// than [`MIN_HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking that it holds the fixed header and
    /// that the data offset is at least 5 words and within the buffer.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if the buffer is too short,
    /// [`WireError::BadLength`] if the data offset is below 5.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        check_len(Header::Tcp, len, MIN_HEADER_LEN)?;
        let packet = TcpPacket { buffer };
        let header_len = packet.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::BadLength {
                header: Header::Tcp,
                value: header_len,
            });
        }
        check_len(Header::Tcp, len, header_len)?;
        Ok(packet)
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Window size.
    #[inline]
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options (clamped to the buffer).
    #[inline]
    pub fn options(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = self.header_len().min(buf.len());
        &buf[field::OPTIONS.min(end)..end]
    }

    /// The payload: the bytes after the header (clamped to the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[self.header_len().min(buf.len())..]
    }

    /// Whether the stored checksum is correct for a segment carried in IPv4
    /// from `src` to `dst` (the buffer must be exactly the segment).
    #[inline]
    pub fn verify_checksum_ipv4(&self, src: u32, dst: u32) -> bool {
        let buf = self.buffer.as_ref();
        let sum = ipv4_pseudo_sum(src, dst, PROTOCOL, buf.len());
        checksum::fold(checksum::sum_words(sum, buf)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, seq: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ, seq);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, ack: u32) {
        set_u32(self.buffer.as_mut(), field::ACK, ack);
    }

    /// Sets the header length in bytes (a multiple of 4 from 20 to 60; the
    /// low two bits are dropped). The reserved bits are cleared.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = (((len / 4) & 0x0f) as u8) << 4;
    }

    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window(&mut self, window: u16) {
        set_u16(self.buffer.as_mut(), field::WINDOW, window);
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, check);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, urgent: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, urgent);
    }

    /// Computes and stores the checksum for a segment carried in IPv4 from
    /// `src` to `dst` (the buffer must be exactly the segment).
    #[inline]
    pub fn compute_checksum_ipv4(&mut self, src: u32, dst: u32) {
        self.set_checksum(0);
        let buf = self.buffer.as_ref();
        let sum = ipv4_pseudo_sum(src, dst, PROTOCOL, buf.len());
        let check = !checksum::fold(checksum::sum_words(sum, buf));
        self.set_checksum(check);
    }

    /// The payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let buf = self.buffer.as_mut();
        let start = start.min(buf.len());
        &mut buf[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1:40000 -> 10.0.0.2:80, SYN|ACK, 4 option bytes, 2 payload bytes.
    const SRC: u32 = 0x0a00_0001;
    const DST: u32 = 0x0a00_0002;

    fn segment() -> [u8; 26] {
        [
            0x9c, 0x40, 0x00, 0x50, // ports
            0x01, 0x02, 0x03, 0x04, // seq
            0x05, 0x06, 0x07, 0x08, // ack
            0x60, 0x12, 0xff, 0xff, // data offset 6, SYN|ACK, window
            0x00, 0x00, 0x00, 0x00, // checksum, urgent
            0x01, 0x01, 0x01, 0x00, // options: NOP NOP NOP EOL
            b'h', b'i',
        ]
    }

    #[test]
    fn reads_fields() {
        let bytes = segment();
        let tcp = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(tcp.src_port(), 40000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq_number(), 0x0102_0304);
        assert_eq!(tcp.ack_number(), 0x0506_0708);
        assert_eq!(tcp.header_len(), 24);
        assert_eq!(tcp.flags(), flags::SYN | flags::ACK);
        assert_eq!(tcp.window(), 0xffff);
        assert_eq!(tcp.checksum(), 0);
        assert_eq!(tcp.urgent(), 0);
        assert_eq!(tcp.options(), &[1, 1, 1, 0]);
        assert_eq!(tcp.payload(), b"hi");
    }

    #[test]
    fn writes_round_trip() {
        let mut buf = [0u8; 26];
        buf[20..].copy_from_slice(&[0x01, 0x01, 0x01, 0x00, b'h', b'i']);
        let mut tcp = TcpPacket::new_unchecked(&mut buf[..]);
        tcp.set_src_port(40000);
        tcp.set_dst_port(80);
        tcp.set_seq_number(0x0102_0304);
        tcp.set_ack_number(0x0506_0708);
        tcp.set_header_len(24);
        tcp.set_flags(flags::SYN | flags::ACK);
        tcp.set_window(0xffff);
        tcp.set_checksum(0);
        tcp.set_urgent(0);
        assert_eq!(buf, segment());
    }

    #[test]
    fn checksum_round_trip() {
        let mut bytes = segment();
        let mut tcp = TcpPacket::new_checked(&mut bytes[..]).unwrap();
        tcp.compute_checksum_ipv4(SRC, DST);
        assert_ne!(tcp.checksum(), 0);
        assert!(tcp.verify_checksum_ipv4(SRC, DST));
        tcp.set_dst_port(8080);
        assert!(!tcp.verify_checksum_ipv4(SRC, DST));
    }

    #[test]
    fn bad_lengths_are_refused() {
        let bytes = segment();
        assert_eq!(
            TcpPacket::new_checked(&bytes[..19]),
            Err(WireError::Truncated {
                header: Header::Tcp,
                len: 19,
                needed: 20
            })
        );
        assert_eq!(
            TcpPacket::new_checked(&bytes[..23]),
            Err(WireError::Truncated {
                header: Header::Tcp,
                len: 23,
                needed: 24
            })
        );
        let mut bad = segment();
        bad[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bad[..]),
            Err(WireError::BadLength {
                header: Header::Tcp,
                value: 16
            })
        );
    }

    #[test]
    fn accessors_survive_a_changed_length() {
        let mut bytes = segment();
        bytes[12] = 0x50;
        let mut tcp = TcpPacket::new_checked(&mut bytes[..20]).unwrap();
        tcp.set_header_len(60);
        assert!(tcp.payload().is_empty());
        assert!(tcp.options().is_empty());
        assert!(tcp.payload_mut().is_empty());
    }
}
