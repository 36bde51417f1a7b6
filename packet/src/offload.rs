//! The virtio-net header that a TAP with `IFF_VNET_HDR` puts in front of
//! every frame, and the two software fallbacks for destinations that cannot
//! take what it describes: TCP segmentation ([`segment_tcp_gso`]) and
//! checksum completion ([`complete_partial_checksum`]).
//!
//! Wire layout (`struct virtio_net_hdr_mrg_rxbuf`, little-endian, 12 bytes):
//!
//! | offset | field         |
//! |--------|---------------|
//! | 0      | `flags`       |
//! | 1      | `gso_type`    |
//! | 2..4   | `hdr_len`     |
//! | 4..6   | `gso_size`    |
//! | 6..8   | `csum_start`  |
//! | 8..10  | `csum_offset` |
//! | 10..12 | `num_buffers` |

use crate::buffer::{BufPool, PacketBuf};
use crate::checksum::{fold, sum_words};
use thiserror::Error;

/// Bytes of the virtio-net header this crate asks the TAP for
/// (`TUNSETVNETHDRSZ`): the 12-byte `virtio_net_hdr_mrg_rxbuf`.
pub const VNET_HDR_LEN: usize = 12;

/// Bytes of the basic `struct virtio_net_hdr` (without `num_buffers`), as
/// AF_PACKET's `PACKET_VNET_HDR` uses.
pub const VNET_HDR_BASE_LEN: usize = 10;

/// `flags`: the checksum from `csum_start` to the end of the frame still
/// has to be computed and stored at `csum_start + csum_offset`.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum has been validated.
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;

/// `gso_type`: not a GSO frame.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4, to be cut into `gso_size` segments.
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// `gso_type`: UDP fragmentation offload (UFO).
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
/// `gso_type`: TCP over IPv6.
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
/// `gso_type`: UDP segmentation offload (USO, `UDP_SEGMENT`).
pub const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: the TCP stream uses ECN (keep CWR on the first segment).
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// A parsed virtio-net header: whether a frame is a GSO super-frame and
/// whether its L4 checksum is only partial.
///
/// All zero ([`VnetHeader::NONE`]) means an ordinary, complete frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// `VIRTIO_NET_HDR_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` (with the ECN bit).
    pub gso_type: u8,
    /// Length of the headers (Ethernet to L4) to replicate in each segment;
    /// a hint, recomputed by [`segment_tcp_gso`].
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Where the checksummed area starts (from the Ethernet header).
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// An ordinary, complete frame.
    pub const NONE: VnetHeader = VnetHeader {
        flags: 0,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Parses the first [`VNET_HDR_BASE_LEN`] bytes of `bytes`
    /// (little-endian; a following `num_buffers` is ignored); `None` when
    /// `bytes` is shorter.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..VNET_HDR_BASE_LEN)?;
        Some(VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_le_bytes([b[2], b[3]]),
            gso_size: u16::from_le_bytes([b[4], b[5]]),
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
        })
    }

    /// Writes the header (with `num_buffers` 0) into `out`.
    #[inline]
    pub fn emit(&self, out: &mut [u8; VNET_HDR_LEN]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        out[10..12].copy_from_slice(&0u16.to_le_bytes());
    }

    /// The GSO kind, without the ECN bit.
    #[inline]
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !VIRTIO_NET_HDR_GSO_ECN
    }

    /// True for a GSO super-frame (larger than the MTU, to be segmented).
    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso_kind() != VIRTIO_NET_HDR_GSO_NONE
    }

    /// True for a TCP GSO super-frame (IPv4 or IPv6).
    #[inline]
    pub fn is_tcp_gso(&self) -> bool {
        matches!(
            self.gso_kind(),
            VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_TCPV6
        )
    }

    /// True when the L4 checksum is partial (see
    /// [`VIRTIO_NET_HDR_F_NEEDS_CSUM`]).
    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
    }
}

/// Why a frame could not be segmented or have its checksum completed.
/// `Copy`, so the fast path can count it by name without allocating.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// The header does not describe TCP GSO.
    #[error("not a TCP GSO frame (gso_type {0:#x})")]
    NotTcpGso(u8),
    /// The frame is neither IPv4 nor IPv6 (ethertype).
    #[error("unsupported ethertype {0:#06x}")]
    UnsupportedEthertype(u16),
    /// The headers are shorter than they claim, or not TCP.
    #[error("malformed or non-TCP headers")]
    BadHeaders,
    /// `gso_size` is zero.
    #[error("gso_size is zero")]
    ZeroMss,
    /// A segment does not fit in the pool's buffers.
    #[error("segment of {need} bytes does not fit in a {room}-byte buffer")]
    BufferTooSmall {
        /// Bytes a segment needs.
        need: usize,
        /// Bytes a buffer holds.
        room: usize,
    },
    /// `csum_start + csum_offset` lies outside the frame.
    #[error("checksum position {start}+{offset} outside a {len}-byte frame")]
    BadCsumPosition {
        /// `csum_start`.
        start: u16,
        /// `csum_offset`.
        offset: u16,
        /// Frame length.
        len: usize,
    },
}

/// Completes a partial checksum in place (what a NIC does for
/// `CHECKSUM_PARTIAL`): the one's-complement sum of `frame[csum_start..]`,
/// whose checksum field already holds the pseudo-header sum, is folded,
/// inverted and stored at `csum_start + csum_offset` (0 is sent as 0xffff,
/// as Linux's `skb_checksum_help` does). Clears
/// [`VIRTIO_NET_HDR_F_NEEDS_CSUM`] in `vnet`; does nothing when it is not set.
///
/// Reads and writes only `frame[csum_start..]`; cost is one pass over it.
pub fn complete_partial_checksum(
    frame: &mut [u8],
    vnet: &mut VnetHeader,
) -> Result<(), OffloadError> {
    if !vnet.needs_csum() {
        return Ok(());
    }
    let start = usize::from(vnet.csum_start);
    let at = start + usize::from(vnet.csum_offset);
    if at + 2 > frame.len() {
        return Err(OffloadError::BadCsumPosition {
            start: vnet.csum_start,
            offset: vnet.csum_offset,
            len: frame.len(),
        });
    }
    let sum = !fold(sum_words(0, &frame[start..]));
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    vnet.flags &= !VIRTIO_NET_HDR_F_NEEDS_CSUM;
    Ok(())
}

const ETH_HLEN: usize = 14;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Where the headers of a TCP frame are.
#[derive(Debug, Clone, Copy)]
struct TcpLayout {
    l3: usize,
    l4: usize,
    /// End of the TCP header: where the payload starts.
    payload: usize,
    ipv6: bool,
}

/// Where the L3 and L4 headers of an IPv4 or IPv6 frame start, and the L4
/// protocol (IPv6 without extension headers).
fn l4_layout(frame: &[u8]) -> Result<(usize, usize, u8, bool), OffloadError> {
    let ethertype_at = |off: usize| -> Result<u16, OffloadError> {
        frame
            .get(off..off + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(OffloadError::BadHeaders)
    };
    let mut l3 = ETH_HLEN;
    let mut ethertype = ethertype_at(12)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = ethertype_at(16)?;
        l3 += 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 => {
            let vihl = *frame.get(l3).ok_or(OffloadError::BadHeaders)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Err(OffloadError::BadHeaders);
            }
            let proto = *frame.get(l3 + 9).ok_or(OffloadError::BadHeaders)?;
            Ok((l3, l3 + ihl, proto, false))
        }
        ETHERTYPE_IPV6 => {
            // No extension headers: the kernel's TSO frames have none.
            let next = *frame.get(l3 + 6).ok_or(OffloadError::BadHeaders)?;
            Ok((l3, l3 + 40, next, true))
        }
        other => Err(OffloadError::UnsupportedEthertype(other)),
    }
}

/// Completes the TCP or UDP checksum of a frame whose checksum field holds
/// only the pseudo-header sum (Linux `CHECKSUM_PARTIAL`, which AF_PACKET
/// reports as `TP_STATUS_CSUMNOTREADY`), finding the L4 header by parsing
/// (IPv4, or IPv6 without extension headers, optionally 802.1Q-tagged).
pub fn complete_l4_checksum(frame: &mut [u8]) -> Result<(), OffloadError> {
    let (_, l4, proto, _) = l4_layout(frame)?;
    let csum_offset = match proto {
        IPPROTO_TCP => 16,
        IPPROTO_UDP => 6,
        _ => return Err(OffloadError::BadHeaders),
    };
    let mut vnet = VnetHeader {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        csum_start: u16::try_from(l4).map_err(|_| OffloadError::BadHeaders)?,
        csum_offset,
        ..VnetHeader::NONE
    };
    complete_partial_checksum(frame, &mut vnet)
}

fn tcp_layout(frame: &[u8]) -> Result<TcpLayout, OffloadError> {
    let (l3, l4, proto, ipv6) = l4_layout(frame)?;
    if proto != IPPROTO_TCP {
        return Err(OffloadError::BadHeaders);
    }
    let doff = *frame.get(l4 + 12).ok_or(OffloadError::BadHeaders)?;
    let thl = usize::from(doff >> 4) * 4;
    if thl < 20 || l4 + thl > frame.len() {
        return Err(OffloadError::BadHeaders);
    }
    Ok(TcpLayout {
        l3,
        l4,
        payload: l4 + thl,
        ipv6,
    })
}

/// Splits a TCP GSO super-frame (IPv4 or IPv6, optionally 802.1Q-tagged)
/// into frames of at most `vnet.gso_size` payload bytes each, as the
/// kernel's `tcp_gso_segment` would, and hands each to `emit` in order.
/// Returns the number of segments.
///
/// Each segment gets the original headers with: IPv4 total length, id
/// (`id + i`, wrapping) and header checksum, or the IPv6 payload length;
/// TCP sequence number `seq + i * mss`; FIN and PSH only on the last
/// segment, CWR only on the first; and a full TCP checksum (the input's
/// partial checksum is ignored). Buffers come from `pool`; nothing is
/// emitted when an error is returned. A frame that is not larger than one
/// segment is emitted as one segment with its checksums completed.
pub fn segment_tcp_gso(
    frame: &[u8],
    vnet: &VnetHeader,
    pool: &mut BufPool,
    mut emit: impl FnMut(PacketBuf),
) -> Result<usize, OffloadError> {
    if !vnet.is_tcp_gso() {
        return Err(OffloadError::NotTcpGso(vnet.gso_type));
    }
    let mss = usize::from(vnet.gso_size);
    if mss == 0 {
        return Err(OffloadError::ZeroMss);
    }
    let lay = tcp_layout(frame)?;
    let hdrs = &frame[..lay.payload];
    let payload = &frame[lay.payload..];
    let room = pool.buf_size().saturating_sub(crate::buffer::HEADROOM);
    let need = lay.payload + mss.min(payload.len());
    if need > room {
        return Err(OffloadError::BufferTooSmall { need, room });
    }
    let segments = payload.len().div_ceil(mss).max(1);
    let seq0 = u32::from_be_bytes([
        hdrs[lay.l4 + 4],
        hdrs[lay.l4 + 5],
        hdrs[lay.l4 + 6],
        hdrs[lay.l4 + 7],
    ]);
    let flags0 = hdrs[lay.l4 + 13];
    let id0 = u16::from_be_bytes([hdrs[lay.l3 + 4], hdrs[lay.l3 + 5]]);
    let thl = lay.payload - lay.l4;

    for i in 0..segments {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let len = lay.payload + chunk.len();
        let mut buf = pool.get();
        let area = buf.receive_area();
        area[..lay.payload].copy_from_slice(hdrs);
        area[lay.payload..len].copy_from_slice(chunk);
        let seg = &mut area[..len];

        let l4_len = thl + chunk.len();
        // L3: lengths, id, header checksum; the pseudo-header sum for L4.
        let pseudo = if lay.ipv6 {
            seg[lay.l3 + 4..lay.l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            let s = sum_words(0, &seg[lay.l3 + 8..lay.l3 + 40]);
            s + u32::from(IPPROTO_TCP) + l4_len as u32
        } else {
            let ihl = lay.l4 - lay.l3;
            let tot = (ihl + l4_len) as u16;
            seg[lay.l3 + 2..lay.l3 + 4].copy_from_slice(&tot.to_be_bytes());
            let id = id0.wrapping_add(i as u16);
            seg[lay.l3 + 4..lay.l3 + 6].copy_from_slice(&id.to_be_bytes());
            seg[lay.l3 + 10..lay.l3 + 12].copy_from_slice(&[0, 0]);
            let hc = !fold(sum_words(0, &seg[lay.l3..lay.l4]));
            seg[lay.l3 + 10..lay.l3 + 12].copy_from_slice(&hc.to_be_bytes());
            let s = sum_words(0, &seg[lay.l3 + 12..lay.l3 + 20]);
            s + u32::from(IPPROTO_TCP) + l4_len as u32
        };
        // L4: sequence number, flags, full checksum.
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[lay.l4 + 4..lay.l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if i + 1 < segments {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            flags &= !TCP_CWR;
        }
        seg[lay.l4 + 13] = flags;
        seg[lay.l4 + 16..lay.l4 + 18].copy_from_slice(&[0, 0]);
        let tc = !fold(sum_words(pseudo, &seg[lay.l4..]));
        seg[lay.l4 + 16..lay.l4 + 18].copy_from_slice(&tc.to_be_bytes());

        buf.set_len(len);
        emit(buf);
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = VnetHeader {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut b = [0u8; VNET_HDR_LEN];
        h.emit(&mut b);
        assert_eq!(b, [1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0, 0, 0]);
        assert_eq!(VnetHeader::parse(&b), Some(h));
        assert!(h.is_gso() && h.is_tcp_gso() && h.needs_csum());
        assert_eq!(VnetHeader::parse(&b[..10]), Some(h));
        assert_eq!(VnetHeader::parse(&b[..9]), None);
        assert!(!VnetHeader::NONE.is_gso());
    }

    #[test]
    fn bad_csum_position_is_refused() {
        let mut f = [0u8; 20];
        let mut h = VnetHeader {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            csum_start: 14,
            csum_offset: 6,
            ..VnetHeader::NONE
        };
        assert!(matches!(
            complete_partial_checksum(&mut f, &mut h),
            Err(OffloadError::BadCsumPosition { .. })
        ));
        assert!(h.needs_csum());
    }
}
