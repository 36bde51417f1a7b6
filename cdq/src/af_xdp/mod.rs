//! AF_XDP ports for the node's own interfaces (host and uplink ports), with
//! raw system calls only: no libbpf or libxdp.
//!
//! A port with `n` queues is
//! - `n` AF_XDP sockets, socket `q` bound to device queue `q`, each with
//!   its own UMEM and fill, completion, RX and TX rings (`socket.rs`,
//!   `umem.rs`, `ring.rs`), in copy mode with `XDP_USE_NEED_WAKEUP`;
//! - one XDP program, loaded with bpf(2) and attached to the interface with
//!   a BPF link, that redirects each frame to the socket of its receive
//!   queue through an `XSKMAP`, and passes frames of queues without a
//!   socket on to the kernel (`xdp_prog.rs`). It is attached in driver
//!   (native) mode where the driver has XDP (veth does), else in generic
//!   mode.
//!
//! Each queue is one [`AfXdpQueue`], a [`QueuePair`] for one worker.
//! Frames are copied between the UMEM and the pool's buffers, as with
//! AF_PACKET (see [`queue`] for where zero-copy would go). The program
//! stays attached while the port or any of its queues lives; dropping the
//! last one detaches it and frees the map, which `ip link` then shows.
//!
//! Device queues: frames that the device receives on a queue above `n - 1`
//! go to the kernel stack, not to the port; give the port as many queues as
//! the device has RX queues (`ethtool -l`; a veth's are set when it is
//! created, `numrxqueues`). Asking for more queues than the device has
//! fails (`bind`: `EINVAL`).
//!
//! Not carried: virtio-net headers (offloads), nor the kernel's "checksum
//! partial" mark. A host stack sending over a veth into this port (driver
//! or generic mode alike) hands TCP/UDP frames over with partial checksums
//! (the pseudo-header sum only) while the veth's tx checksum offload is on,
//! and nothing tells rx so; turn it off on the peer (`ethtool -K <peer> tx
//! off`), as the tests do, or use AF_PACKET, which sees the mark.
//! [`HostPort::open`] opens AF_XDP and falls back to AF_PACKET.
//!
//! [`QueuePair`]: p4k8s_packet::QueuePair

mod fallback;
pub mod queue;
mod ring;
mod socket;
mod umem;
mod xdp_prog;

use std::io;
use std::sync::Arc;

use p4k8s_packet::{PortCounters, PortId};
use thiserror::Error;

use crate::netns::{self, NetNs, NetnsError};

pub use fallback::{HostPort, HostQueue};
pub use queue::{AfXdpQueue, AfXdpQueueStats, XdpKernelStats};
pub use xdp_prog::{xdp_map_exists, xdp_prog_exists};

/// XDP's `XDP_PACKET_HEADROOM`: the kernel puts a received frame this far
/// into its UMEM frame, so the largest frame received is `frame_size - 256`.
pub const XDP_PACKET_HEADROOM: usize = 256;

/// How the XDP program is attached to the interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver mode if the driver supports XDP, else generic mode.
    #[default]
    Auto,
    /// Driver (native) mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (skb) mode only (`XDP_FLAGS_SKB_MODE`), any interface.
    Generic,
}

/// How to open an AF_XDP port.
#[derive(Debug, Clone)]
pub struct AfXdpConfig {
    /// The interface.
    pub ifname: String,
    /// The namespace the interface is in; `None` for the caller's.
    pub netns: Option<String>,
    /// Queues (sockets on device queues `0..queues`): one per worker, 1 to
    /// 64, at most the device's RX queues.
    pub queues: usize,
    /// Entries in each of a socket's four rings, a power of two (default
    /// 2048). Each socket has that many RX and that many TX frames.
    pub ring_size: u32,
    /// UMEM frame size: a power of two from 2048 to the page size
    /// (default 2048). Frames up to `frame_size - 256` bytes are received
    /// and up to `frame_size` bytes sent.
    pub frame_size: u32,
    /// Driver or generic mode (default [`XdpMode::Auto`]).
    pub mode: XdpMode,
    /// Stored in [`p4k8s_packet::PacketBuf::port`] of every received frame.
    pub port_id: PortId,
}

impl AfXdpConfig {
    /// Defaults for `ifname` in the caller's namespace, one queue.
    pub fn new(ifname: &str) -> Self {
        AfXdpConfig {
            ifname: ifname.to_owned(),
            netns: None,
            queues: 1,
            ring_size: 2048,
            frame_size: 2048,
            mode: XdpMode::Auto,
            port_id: 0,
        }
    }
}

/// An AF_XDP port operation that failed.
#[derive(Debug, Error)]
pub enum AfXdpError {
    /// The configuration cannot be applied.
    #[error("bad AF_XDP config for {ifname:?}: {what}")]
    BadConfig {
        /// Interface name.
        ifname: String,
        /// What is wrong.
        what: &'static str,
    },
    /// A socket step failed.
    #[error("{op} on AF_XDP socket for {ifname:?} (queue {queue}): {source}")]
    Os {
        /// The step, e.g. `bind(AF_XDP)`.
        op: &'static str,
        /// Interface name.
        ifname: String,
        /// Queue number.
        queue: usize,
        /// The OS error.
        source: io::Error,
    },
    /// A bpf(2) step (map, program, attachment) failed.
    #[error("{op} for {ifname:?}: {source}{}", if log.is_empty() { String::new() } else { format!("; verifier: {log}") })]
    Bpf {
        /// The step, e.g. `BPF_LINK_CREATE(XDP, driver mode)`.
        op: &'static str,
        /// Interface name.
        ifname: String,
        /// The OS error.
        source: io::Error,
        /// The verifier's log, when loading the program failed.
        log: String,
    },
    /// The namespace or the interface could not be found.
    #[error("AF_XDP port on {ifname:?}: {source}")]
    Netns {
        /// Interface name.
        ifname: String,
        /// What failed.
        source: NetnsError,
    },
}

/// An AF_XDP port: one [`AfXdpQueue`] per worker, and the XDP program
/// that feeds them.
#[derive(Debug)]
pub struct AfXdpPort {
    ifname: String,
    ifindex: u32,
    queues: Vec<Option<AfXdpQueue>>,
    counters: Arc<PortCounters>,
    attachment: Arc<xdp_prog::XdpAttachment>,
}

impl AfXdpPort {
    /// Opens `config.queues` sockets on `config.ifname`, loads the program
    /// and attaches it. On any failure, everything made so far is closed
    /// again (no program stays attached).
    pub fn open(config: &AfXdpConfig) -> Result<Self, AfXdpError> {
        let bad = |what| AfXdpError::BadConfig {
            ifname: config.ifname.clone(),
            what,
        };
        if config.queues == 0 || config.queues > 64 {
            return Err(bad("queues must be 1 to 64"));
        }
        if !config.ring_size.is_power_of_two() || !(64..=1 << 16).contains(&config.ring_size) {
            return Err(bad("ring_size must be a power of two from 64 to 65536"));
        }
        if !config.frame_size.is_power_of_two()
            || config.frame_size < 2048
            || config.frame_size as usize > page_size()
        {
            return Err(bad(
                "frame_size must be a power of two from 2048 to the page size",
            ));
        }
        let ns_err = |source| AfXdpError::Netns {
            ifname: config.ifname.clone(),
            source,
        };
        // Sockets, map, program and link are made in the interface's
        // namespace (the link's ifindex is resolved there).
        match &config.netns {
            Some(ns) => {
                let ns = NetNs::open(ns).map_err(ns_err)?;
                ns.run(|| open_here(config)).map_err(ns_err)?
            }
            None => open_here(config),
        }
    }

    /// Number of queues.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Takes queue `q` for a worker; `None` when there is no such queue or
    /// it was taken already.
    pub fn take_queue(&mut self, q: usize) -> Option<AfXdpQueue> {
        self.queues.get_mut(q).and_then(Option::take)
    }

    /// The port's counters, shared by all its queues.
    pub fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index (in its namespace).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode the program was attached in ([`XdpMode::Native`] or
    /// [`XdpMode::Generic`]).
    pub fn mode(&self) -> XdpMode {
        self.attachment.mode()
    }

    /// The kernel id of the port's XDP program (`ip link` shows it as
    /// `prog/xdp id N`).
    pub fn prog_id(&self) -> u32 {
        self.attachment.prog_id()
    }

    /// The kernel id of the port's `XSKMAP`.
    pub fn map_id(&self) -> u32 {
        self.attachment.map_id()
    }
}

/// Opens the port in the calling thread's namespace.
fn open_here(config: &AfXdpConfig) -> Result<AfXdpPort, AfXdpError> {
    let ifname = || config.ifname.clone();
    let ifindex = netns::ifindex(&config.ifname).map_err(|source| AfXdpError::Netns {
        ifname: ifname(),
        source,
    })?;
    let bpf_err = |e: xdp_prog::BpfError| AfXdpError::Bpf {
        op: e.op,
        ifname: ifname(),
        source: e.source,
        log: e.log,
    };
    let mut attachment = xdp_prog::XdpAttachment::load(config.queues as u32).map_err(bpf_err)?;
    let mut socks = Vec::with_capacity(config.queues);
    for q in 0..config.queues {
        let parts = socket::open(ifindex, q as u32, config.ring_size, config.frame_size).map_err(
            |(op, source)| AfXdpError::Os {
                op,
                ifname: ifname(),
                queue: q,
                source,
            },
        )?;
        attachment.insert(q as u32, &parts.fd).map_err(bpf_err)?;
        socks.push(parts);
    }
    attachment.attach(ifindex, config.mode).map_err(bpf_err)?;
    let attachment = Arc::new(attachment);
    let counters = Arc::new(PortCounters::default());
    let queues = socks
        .into_iter()
        .enumerate()
        .map(|(q, parts)| {
            Some(AfXdpQueue::new(
                parts,
                q,
                config.port_id,
                Arc::clone(&counters),
                Arc::clone(&attachment),
            ))
        })
        .collect();
    Ok(AfXdpPort {
        ifname: ifname(),
        ifindex,
        queues,
        counters,
        attachment,
    })
}

/// The system page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}
