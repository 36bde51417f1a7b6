//! Owned packet buffers and the pool that recycles them.

use thiserror::Error;

use crate::offload::VnetHeader;

/// Room kept in front of a received frame so a backend can prepend a header
/// (an 802.1Q tag, a virtio-net header) without copying the frame.
pub const HEADROOM: usize = 128;

/// Default buffer size: a 1500-byte MTU frame plus headroom, rounded up.
pub const DEFAULT_BUF_SIZE: usize = 2048;

/// A frame did not fit in a buffer.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("frame of {len} bytes does not fit in a buffer with room for {room}")]
pub struct TooLarge {
    /// Length of the frame that was offered.
    pub len: usize,
    /// Bytes the buffer can hold after its headroom.
    pub room: usize,
}

/// Different cache-line offsets a pool staggers its buffers' frames over
/// (see [`PacketBuf::with_capacity_staggered`]).
pub const STAGGER_LINES: usize = 16;

/// One packet: an owned byte buffer with a window `[start, start + len)`
/// holding the frame, and the port it arrived on or leaves by.
///
/// Buffers are allocated once, by a [`BufPool`], and then moved between
/// ports, batches and pools; the fast path never allocates.
#[derive(Debug)]
pub struct PacketBuf {
    storage: Box<[u8]>,
    /// Where a reset frame starts: [`HEADROOM`] plus this buffer's stagger.
    base: u32,
    start: u32,
    len: u32,
    /// Ingress port on receive; set by the pipeline to the egress port.
    pub port: u32,
    /// Offload state the frame carries between ports, in virtio-net terms:
    /// a partial L4 checksum to complete, or a large segment to split.
    /// All zero ([`VnetHeader::NONE`]) for an ordinary, complete frame.
    pub vnet: VnetHeader,
}

impl PacketBuf {
    /// A new, empty buffer of `capacity` bytes (headroom included).
    pub fn with_capacity(capacity: usize) -> Self {
        PacketBuf::with_capacity_staggered(capacity, 0)
    }

    /// Like [`PacketBuf::with_capacity`], but the frame starts `stagger`
    /// cache lines (modulo [`STAGGER_LINES`]) further in, in storage that
    /// much larger, so the room and headroom are the same.
    ///
    /// Why: allocators place equally sized buffers at the same offset in
    /// their pages (64 KiB ones even 64 KiB-aligned), so the first line of
    /// every frame would fall into the same set of the L1 (and, for large
    /// buffers, L2) cache, whose 8 ways hold a small part of a burst: each
    /// pipeline stage would miss on every packet's headers. A pool gives
    /// consecutive buffers consecutive staggers.
    pub fn with_capacity_staggered(capacity: usize, stagger: usize) -> Self {
        let capacity = capacity.clamp(HEADROOM + 64, u32::MAX as usize / 2);
        let pad = (stagger % STAGGER_LINES) * 64;
        PacketBuf {
            storage: vec![0u8; capacity + pad].into_boxed_slice(),
            base: (HEADROOM + pad) as u32,
            start: (HEADROOM + pad) as u32,
            len: 0,
            port: 0,
            vnet: VnetHeader::NONE,
        }
    }

    /// A buffer holding a copy of `frame` (for tests and cold paths).
    pub fn from_frame(frame: &[u8]) -> Self {
        let mut buf = PacketBuf::with_capacity((frame.len() + HEADROOM).max(DEFAULT_BUF_SIZE));
        // Cannot fail: the buffer was sized for the frame.
        let _ = buf.copy_from(frame);
        buf
    }

    /// The frame.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let start = self.start as usize;
        &self.storage[start..start + self.len as usize]
    }

    /// The frame, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let start = self.start as usize;
        &mut self.storage[start..start + self.len as usize]
    }

    /// Frame length in bytes.
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Total bytes of storage, headroom included (the capacity it was
    /// created with; a stagger adds to the storage, not to this).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage.len() - (self.base as usize - HEADROOM)
    }

    /// Bytes a frame may have when it starts after the standard headroom.
    #[inline]
    pub fn room(&self) -> usize {
        self.storage.len() - self.base as usize
    }

    /// Empties the buffer and restores the standard headroom.
    #[inline]
    pub fn reset(&mut self) {
        self.start = self.base;
        self.len = 0;
        self.port = 0;
        self.vnet = VnetHeader::NONE;
    }

    /// Replaces the frame with a copy of `frame`.
    pub fn copy_from(&mut self, frame: &[u8]) -> Result<(), TooLarge> {
        let room = self.room();
        if frame.len() > room {
            return Err(TooLarge {
                len: frame.len(),
                room,
            });
        }
        let base = self.base as usize;
        self.start = self.base;
        self.len = frame.len() as u32;
        self.storage[base..base + frame.len()].copy_from_slice(frame);
        Ok(())
    }

    /// The writable space after the headroom, for a backend that receives
    /// straight into the buffer; follow with [`PacketBuf::set_len`].
    #[inline]
    pub fn receive_area(&mut self) -> &mut [u8] {
        self.start = self.base;
        &mut self.storage[self.base as usize..]
    }

    /// Sets the frame length after a receive into [`PacketBuf::receive_area`];
    /// clamped to the space available.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.storage.len() - self.start as usize) as u32;
    }

    /// Grows the frame at its front by `n` bytes taken from the headroom and
    /// returns them; `None` when the headroom is too small.
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start as usize {
            return None;
        }
        self.start -= n as u32;
        self.len += n as u32;
        let start = self.start as usize;
        Some(&mut self.storage[start..start + n])
    }

    /// Removes `n` bytes from the front of the frame (e.g. a virtio-net
    /// header); `false` when the frame is shorter than `n`.
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.start += n as u32;
        self.len -= n as u32;
        true
    }
}

/// A free list of equally sized buffers, owned by one worker.
///
/// `get` only allocates while the pool has never held enough buffers (start
/// up, or traffic that moves buffers from one worker to another); in steady
/// state buffers cycle between ports and the pool.
#[derive(Debug)]
pub struct BufPool {
    free: Vec<PacketBuf>,
    buf_size: usize,
    allocated: u64,
}

impl BufPool {
    /// A pool of `count` preallocated buffers of `buf_size` bytes each.
    pub fn new(count: usize, buf_size: usize) -> Self {
        let free = (0..count)
            .map(|i| PacketBuf::with_capacity_staggered(buf_size, i))
            .collect();
        BufPool {
            free,
            buf_size,
            allocated: count as u64,
        }
    }

    /// A reset buffer.
    #[inline]
    pub fn get(&mut self) -> PacketBuf {
        match self.free.pop() {
            Some(buf) => buf,
            None => {
                self.allocated += 1;
                PacketBuf::with_capacity_staggered(self.buf_size, self.allocated as usize)
            }
        }
    }

    /// Returns a buffer to the pool.
    #[inline]
    pub fn put(&mut self, mut buf: PacketBuf) {
        buf.reset();
        self.free.push(buf);
    }

    /// Buffers currently free in the pool.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers this pool has allocated over its life.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_push_pull_round_trip() {
        let mut buf = PacketBuf::with_capacity(DEFAULT_BUF_SIZE);
        buf.copy_from(&[1, 2, 3, 4]).unwrap();
        assert_eq!(buf.data(), &[1, 2, 3, 4]);
        buf.push_front(2).unwrap().copy_from_slice(&[9, 8]);
        assert_eq!(buf.data(), &[9, 8, 1, 2, 3, 4]);
        assert!(buf.pull_front(2));
        assert_eq!(buf.data(), &[1, 2, 3, 4]);
        assert!(!buf.pull_front(5));
        assert!(buf.push_front(HEADROOM + 10).is_none());
    }

    #[test]
    fn oversized_frame_is_refused_and_buffer_unchanged() {
        let mut buf = PacketBuf::with_capacity(256);
        buf.copy_from(&[7; 10]).unwrap();
        let err = buf.copy_from(&[0; 300]).unwrap_err();
        assert_eq!(err.len, 300);
        assert_eq!(buf.data(), &[7; 10]);
    }

    /// A pool's buffers start their frames at different cache-line offsets
    /// (so that a burst's headers do not all compete for one cache set),
    /// with the same room and headroom as an unstaggered buffer.
    #[test]
    fn pool_staggers_frames_over_cache_lines() {
        for size in [DEFAULT_BUF_SIZE, 65536 + HEADROOM] {
            let mut pool = BufPool::new(64, size);
            let mut bufs: Vec<PacketBuf> = (0..64).map(|_| pool.get()).collect();
            let mut lines = std::collections::HashSet::new();
            for b in bufs.iter_mut() {
                assert_eq!(b.room(), size - HEADROOM);
                assert_eq!(b.capacity(), size);
                let at = b.receive_area().as_ptr() as usize;
                lines.insert((at / 64) % 64);
                assert!(b.push_front(HEADROOM).is_some());
                b.reset();
                b.copy_from(&vec![7u8; size - HEADROOM]).unwrap();
                assert_eq!(b.len(), size - HEADROOM);
            }
            assert!(lines.len() >= STAGGER_LINES, "{size}: {lines:?}");
            for b in bufs {
                pool.put(b);
            }
        }
    }

    #[test]
    fn pool_recycles_without_allocating() {
        let mut pool = BufPool::new(4, 512);
        let bufs: Vec<_> = (0..4).map(|_| pool.get()).collect();
        assert_eq!(pool.allocated(), 4);
        for b in bufs {
            pool.put(b);
        }
        let b = pool.get();
        assert_eq!(b.len(), 0);
        assert_eq!(pool.allocated(), 4);
    }
}
