//! One AF_XDP socket with its own UMEM and four rings, bound to one queue
//! of an interface.
//!
//! Steps (all on the control path): `socket(AF_XDP)`, register the UMEM
//! (`XDP_UMEM_REG`), size the fill, completion, RX and TX rings, ask where
//! their parts lie (`XDP_MMAP_OFFSETS`), map them, then `bind` to
//! `(ifindex, queue)` in copy mode with `XDP_USE_NEED_WAKEUP`. Before the
//! bind, every RX frame is put in the fill ring so the kernel can receive
//! at once.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::ring::{Ring, RingOffsets, XdpDesc};
use super::umem::Umem;
use crate::mapping::{Mapping, Populate};
use crate::sockopt::{self, Pod};

/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h, Linux 6.17): how many TX
/// descriptors one kick may send in copy mode (default 32).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// Our budget: two full bursts.
const TX_BUDGET: u32 = 128;

/// A socket and everything it owns, ready to become a queue.
#[derive(Debug)]
pub(crate) struct XskParts {
    pub fd: OwnedFd,
    pub umem: Umem,
    pub fill: Ring<u64>,
    pub comp: Ring<u64>,
    pub rx: Ring<XdpDesc>,
    pub tx: Ring<XdpDesc>,
    /// The kernel took [`TX_BUDGET`] as the copy-mode TX budget.
    pub tx_budget_raised: bool,
}

/// `setsockopt(SOL_XDP, opt)` with `val`.
pub(crate) fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    sockopt::set(fd.as_fd(), libc::SOL_XDP, opt, val)
}

/// `getsockopt(SOL_XDP, opt)` into a zeroed `T`; fails when the kernel
/// returns fewer bytes than `T` has.
pub(crate) fn getsockopt<T: Pod>(fd: &OwnedFd, opt: libc::c_int) -> io::Result<T> {
    sockopt::get(
        fd.as_fd(),
        libc::SOL_XDP,
        opt,
        "kernel returned a shorter struct (kernel older than 5.4?)",
    )
}

/// Opens a socket on `(ifindex, queue)` with `ring_size` entries in each
/// ring and as many RX and as many TX frames of `frame_size` bytes. On
/// failure, names the step.
pub(crate) fn open(
    ifindex: u32,
    queue: u32,
    ring_size: u32,
    frame_size: u32,
) -> Result<XskParts, (&'static str, io::Error)> {
    // SAFETY: plain socket(2) call with constant arguments.
    let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(("socket(AF_XDP)", io::Error::last_os_error()));
    }
    // SAFETY: `raw` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let n = ring_size as usize;
    let umem = Umem::new(n, n, frame_size as usize).map_err(|e| ("mmap(UMEM)", e))?;
    umem.register(&fd)
        .map_err(|e| ("setsockopt(XDP_UMEM_REG)", e))?;
    for (opt, what) in [
        (libc::XDP_UMEM_FILL_RING, "setsockopt(XDP_UMEM_FILL_RING)"),
        (
            libc::XDP_UMEM_COMPLETION_RING,
            "setsockopt(XDP_UMEM_COMPLETION_RING)",
        ),
        (libc::XDP_RX_RING, "setsockopt(XDP_RX_RING)"),
        (libc::XDP_TX_RING, "setsockopt(XDP_TX_RING)"),
    ] {
        setsockopt(&fd, opt, &ring_size).map_err(|e| (what, e))?;
    }
    // Copy mode sends at most 32 frames per kick unless told otherwise
    // (Linux 6.17+); older kernels refuse the option and keep 32, and the
    // rest goes with the next burst's kick.
    let tx_budget_raised =
        setsockopt(&fd, XDP_MAX_TX_SKB_BUDGET, &TX_BUDGET.min(ring_size)).is_ok();
    let off: libc::xdp_mmap_offsets =
        getsockopt(&fd, libc::XDP_MMAP_OFFSETS).map_err(|e| ("getsockopt(XDP_MMAP_OFFSETS)", e))?;

    let map = |o: &libc::xdp_ring_offset, pgoff: i64, entry: usize, what| {
        let off = RingOffsets::from_kernel(o);
        let len = off.desc.saturating_add(n.saturating_mul(entry));
        // The ring's page offset (`XDP_PGOFF_RX_RING`, ...) selects it.
        Mapping::shared(fd.as_fd(), len, pgoff, Populate::Yes)
            .map(|m| (m, off))
            .map_err(|e| (what, e))
    };
    let (m, o) = map(
        &off.fr,
        libc::XDP_UMEM_PGOFF_FILL_RING as i64,
        8,
        "mmap(fill ring)",
    )?;
    let mut fill = Ring::<u64>::new(m, o, ring_size).map_err(|e| ("fill ring layout", e))?;
    let (m, o) = map(
        &off.cr,
        libc::XDP_UMEM_PGOFF_COMPLETION_RING as i64,
        8,
        "mmap(completion ring)",
    )?;
    let comp = Ring::<u64>::new(m, o, ring_size).map_err(|e| ("completion ring layout", e))?;
    let desc = std::mem::size_of::<XdpDesc>();
    let (m, o) = map(&off.rx, libc::XDP_PGOFF_RX_RING, desc, "mmap(RX ring)")?;
    let rx = Ring::<XdpDesc>::new(m, o, ring_size).map_err(|e| ("RX ring layout", e))?;
    let (m, o) = map(&off.tx, libc::XDP_PGOFF_TX_RING, desc, "mmap(TX ring)")?;
    let tx = Ring::<XdpDesc>::new(m, o, ring_size).map_err(|e| ("TX ring layout", e))?;

    // Every RX frame starts in the fill ring (it has exactly that many
    // slots, so RX frames given back later always find room).
    let free = fill.prod_free(ring_size);
    for i in 0..free {
        fill.prod_write(i, umem.frame_addr(i as usize));
    }
    fill.prod_submit(free);

    // SAFETY: sockaddr_xdp is plain old data; all-zero is a valid value.
    let mut sxdp: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
    sxdp.sxdp_family = libc::AF_XDP as u16;
    // Copy mode: frames are copied between the driver's buffers and the
    // UMEM by the kernel (zero-copy would be XDP_ZEROCOPY, for drivers
    // that support it; veth does not).
    sxdp.sxdp_flags = libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP;
    sxdp.sxdp_ifindex = ifindex;
    sxdp.sxdp_queue_id = queue;
    // SAFETY: `sxdp` is an initialised sockaddr_xdp and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sxdp as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(("bind(AF_XDP)", io::Error::last_os_error()));
    }
    Ok(XskParts {
        fd,
        umem,
        fill,
        comp,
        rx,
        tx,
        tx_budget_raised,
    })
}
