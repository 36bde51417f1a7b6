//! The UMEM: the frame area every descriptor of one socket points into,
//! memory the kernel and the queue share.
//!
//! The UMEM of a queue is split in two fixed halves: RX frames (always in
//! the fill ring, with the kernel, in the RX ring, or being copied out) and
//! TX frames (free, in the TX ring, or waiting in the completion ring).
//! Frames are `frame_size` bytes (a power of two, aligned chunk mode), so a
//! descriptor's frame is `addr & !(frame_size - 1)`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::mapping::{Mapping, Populate};

/// The frame area of one socket.
#[derive(Debug)]
pub(crate) struct Umem {
    map: Mapping,
    frame_size: usize,
    /// Frames `[0, rx_frames)` are RX frames, the rest TX frames.
    rx_frames: usize,
}

impl Umem {
    /// `rx_frames + tx_frames` frames of `frame_size` bytes.
    pub(crate) fn new(rx_frames: usize, tx_frames: usize, frame_size: usize) -> io::Result<Self> {
        let len = (rx_frames + tx_frames)
            .checked_mul(frame_size)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(Umem {
            map: Mapping::anonymous(len, Populate::Yes)?,
            frame_size,
            rx_frames,
        })
    }

    /// Registers the area with the socket (`XDP_UMEM_REG`), no headroom,
    /// aligned chunks.
    pub(crate) fn register(&self, fd: &OwnedFd) -> io::Result<()> {
        // SAFETY: xdp_umem_reg is plain old data; all-zero is a valid value.
        let mut reg: libc::xdp_umem_reg = unsafe { std::mem::zeroed() };
        reg.addr = self.map.ptr() as u64;
        reg.len = self.map.len() as u64;
        reg.chunk_size = self.frame_size as u32;
        reg.headroom = 0;
        crate::sockopt::set(fd.as_fd(), libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)
    }

    /// Frame size in bytes.
    #[inline]
    pub(crate) fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Number of RX frames (the first ones).
    #[inline]
    pub(crate) fn rx_frames(&self) -> usize {
        self.rx_frames
    }

    /// Total number of frames.
    #[inline]
    pub(crate) fn frames(&self) -> usize {
        self.map.len() / self.frame_size
    }

    /// The address (UMEM offset) of frame `i`.
    #[inline]
    pub(crate) fn frame_addr(&self, i: usize) -> u64 {
        (i * self.frame_size) as u64
    }

    /// The frame that holds descriptor address `addr`, if it is an RX
    /// frame.
    #[inline]
    pub(crate) fn rx_frame_of(&self, addr: u64) -> Option<u64> {
        let base = addr & !(self.frame_size as u64 - 1);
        (base < (self.rx_frames * self.frame_size) as u64).then_some(base)
    }

    /// Bytes `[addr, addr + len)` when they lie inside one frame.
    #[inline]
    fn checked(&self, addr: u64, len: usize) -> Option<usize> {
        let addr = usize::try_from(addr).ok()?;
        let in_frame = addr % self.frame_size;
        (addr < self.map.len() && in_frame + len <= self.frame_size).then_some(addr)
    }

    /// The bytes `[addr, addr + len)` of a frame the queue owns (taken
    /// from the RX ring and not yet given back); `None` when they do not
    /// lie inside one frame.
    #[inline]
    pub(crate) fn frame(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let at = self.checked(addr, len)?;
        // SAFETY: `[at, at + len)` is inside the mapping (checked), which
        // lives as long as `self`; the kernel does not write a frame while
        // user space owns it (between the RX ring and the fill ring).
        Some(unsafe { std::slice::from_raw_parts(self.map.ptr().add(at), len) })
    }

    /// The bytes `[addr, addr + len)` of a free TX frame, to fill before
    /// it goes on the TX ring; `None` when they do not lie inside one frame.
    #[inline]
    pub(crate) fn frame_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let at = self.checked(addr, len)?;
        // SAFETY: as in `frame`; the frame is free (not in any ring), so
        // neither the kernel nor another reference touches it, and the
        // borrow of `self` is exclusive.
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.ptr().add(at), len) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_bounds_checked() {
        let mut u = Umem::new(2, 2, 2048).unwrap();
        assert_eq!(u.frames(), 4);
        assert_eq!(u.frame_addr(3), 6144);
        assert!(u.frame(0, 2048).is_some());
        assert!(u.frame(256, 1792).is_some());
        assert!(u.frame(256, 1793).is_none(), "crosses into the next frame");
        assert!(u.frame(8192, 1).is_none(), "past the end");
        assert!(u.frame(u64::MAX, 1).is_none());
        assert!(u.frame_mut(6144, 2048).is_some());
        assert_eq!(u.rx_frame_of(2048 + 256), Some(2048));
        assert_eq!(u.rx_frame_of(4096), None, "a TX frame");
    }
}
