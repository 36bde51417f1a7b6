//! The TAP CDQ: a multi-queue TAP netdev that appears as the pod's `eth0`.
//!
//! [`TapPort::create`] opens one `/dev/net/tun` fd per queue in the host
//! namespace (`IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR`,
//! non-blocking), moves the netdev into the pod's namespace by ifindex,
//! renames it, sets MAC, MTU and IPv4 address, brings it up and adds
//! Calico-style routes (`169.254.1.1 dev eth0 scope link`,
//! `default via 169.254.1.1`). The fds keep working across the move: they
//! are bound to the device, not to a namespace.
//!
//! Every frame carries a 12-byte virtio-net header ([`VnetHeader`]). With
//! offloads on (`TUNSETOFFLOAD`), the pod's kernel hands us TCP super-frames
//! of up to 64 KiB with partial checksums, which is where TAP bandwidth comes
//! from: without `/dev/vhost-net` (absent on this kind of machine) every
//! frame costs one `readv`/`writev` system call, so per-packet rates are
//! bounded by syscall cost (~1 µs) and large frames amortise it.
//!
//! Two settings decide where the pod's time goes. The TAP's transmit ring
//! ([`TapConfig::tx_queue_len`]) holds what the pod sent until a worker
//! reads it; a frame that finds it full is dropped (with offloads off and
//! four TCP streams the kernel's 500 dropped ~10,000 frames in 4 s, all
//! retransmitted). Frames we write run the pod's receive path, TCP
//! included, inside our `writev`, on the worker's core, unless
//! [`TapConfig::rps_cpus`] steers them to other cores. With every pod on
//! one other core, that doubled one TCP stream when the worker was the
//! bottleneck (offloads off: 1.5 -> 3.2 Gbit/s) but halved HTTP requests/s
//! there, and cost a third of the bandwidth with offloads on (12 -> 8
//! Gbit/s): so it is off unless asked for.
//!
//! Removal (drop or [`TapPort::remove`]) deletes the netdev.

use std::fs::OpenOptions;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use p4k8s_packet::{Batch, BufPool, PacketBuf, PortCounters, PortId, QueuePair, TxOutcome};
use thiserror::Error;

pub use p4k8s_packet::offload::{
    complete_l4_checksum, complete_partial_checksum, segment_tcp_gso, OffloadError, VnetHeader,
    VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_HDR_GSO_UDP_L4, VNET_HDR_BASE_LEN, VNET_HDR_LEN,
};

use crate::netns::{self, NetNs, NetnsError};

/// The pod's default gateway in Calico's scheme: a link-local address the
/// dataplane answers ARP for.
pub const CALICO_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Largest frame a TAP with TSO can hand over: 64 KiB of IP plus the
/// Ethernet header (and a VLAN tag). Pools feeding such a TAP need buffers
/// of at least this plus [`p4k8s_packet::buffer::HEADROOM`] bytes.
pub const MAX_GSO_FRAME: usize = 65535 + 18;

// linux/if_tun.h
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const TUNSETVNETLE: libc::c_ulong = 0x4004_54dc;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// Which offloads to offer the pod's kernel (`TUNSETOFFLOAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapOffloads {
    /// Partial checksums (`TUN_F_CSUM`); the others need it.
    pub csum: bool,
    /// TCP segmentation offload, IPv4 and IPv6 (`TUN_F_TSO4/6`, `TSO_ECN`).
    pub tso: bool,
    /// UDP segmentation offload (`TUN_F_USO4/6`), where the kernel has it.
    pub uso: bool,
}

impl TapOffloads {
    /// Everything: the pod sends 64 KiB TCP frames with partial checksums.
    pub const ALL: TapOffloads = TapOffloads {
        csum: true,
        tso: true,
        uso: true,
    };
    /// Nothing: the pod's kernel checksums and segments in software, so
    /// every frame is complete and at most MTU-sized.
    pub const NONE: TapOffloads = TapOffloads {
        csum: false,
        tso: false,
        uso: false,
    };

    fn bits(self) -> libc::c_uint {
        let mut bits = 0;
        if self.csum {
            bits |= TUN_F_CSUM;
            if self.tso {
                bits |= TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
            }
            if self.uso {
                bits |= TUN_F_USO4 | TUN_F_USO6;
            }
        }
        bits
    }
}

/// How to create a TAP CDQ.
#[derive(Debug, Clone)]
pub struct TapConfig {
    /// The pod's network namespace, by name (`/run/netns/<netns>`).
    pub netns: String,
    /// Interface name inside the pod (default `eth0`).
    pub ifname: String,
    /// The pod-side MAC address.
    pub mac: [u8; 6],
    /// MTU (default 1500).
    pub mtu: u32,
    /// The pod's IPv4 address and prefix length, if any.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Queue pairs: one per worker (at least 1).
    pub queues: usize,
    /// The gateway to route through (`<gw> dev <ifname> scope link` and
    /// `default via <gw>`); `None` adds no routes. Default
    /// [`CALICO_GATEWAY`].
    pub gateway: Option<Ipv4Addr>,
    /// Offloads to offer the pod's kernel (default [`TapOffloads::ALL`]:
    /// feed the queues from pools of [`MAX_GSO_FRAME`]-sized buffers).
    pub offloads: TapOffloads,
    /// Stored in [`p4k8s_packet::PacketBuf::port`] of every received frame.
    pub port_id: PortId,
    /// Frames the pod may have sent that we have not read yet (the TAP's
    /// `txqueuelen`, the length of its transmit ring): a frame that finds
    /// it full is dropped, so the pod's TCP retransmits. `None`:
    /// [`DEFAULT_TX_QUEUE_LEN`].
    pub tx_queue_len: Option<u32>,
    /// Cores the pod's receive processing is steered to with RPS
    /// (`rps_cpus` of each receive queue): frames we write are then handed
    /// to these cores, so the pod's TCP/IP stack runs there and not in the
    /// worker's `writev`. Empty (the default): no RPS, the kernel's
    /// default, the pod's stack runs on the writing worker's core.
    pub rps_cpus: Vec<usize>,
}

/// The default [`TapConfig::tx_queue_len`]: enough for the windows of a
/// few TCP streams in MTU-sized frames (the kernel's default, 500, drops
/// with four streams when offloads are off), and little memory when
/// offloads are on (the senders' windows bound what is queued).
pub const DEFAULT_TX_QUEUE_LEN: u32 = 4000;

/// The kernel's CPU mask text for `cpus` (`/sys/class/net/*/queues/rx-*/rps_cpus`
/// format): 32-bit hex words, most significant first, separated by commas.
pub fn cpu_mask(cpus: &[usize]) -> String {
    let words = cpus.iter().max().map_or(1, |m| m / 32 + 1);
    let mut mask = vec![0u32; words];
    for &c in cpus {
        mask[c / 32] |= 1 << (c % 32);
    }
    let mut text = format!("{:x}", mask[words - 1]);
    for w in mask[..words - 1].iter().rev() {
        text.push_str(&format!(",{w:08x}"));
    }
    text
}

impl TapConfig {
    /// Defaults for a pod namespace: `eth0`, a locally administered MAC,
    /// MTU 1500, no address, one queue, Calico's gateway, all offloads,
    /// [`DEFAULT_TX_QUEUE_LEN`], no RPS.
    pub fn new(netns: &str) -> Self {
        TapConfig {
            netns: netns.to_owned(),
            ifname: "eth0".to_owned(),
            mac: [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
            mtu: 1500,
            ipv4: None,
            queues: 1,
            gateway: Some(CALICO_GATEWAY),
            offloads: TapOffloads::ALL,
            port_id: 0,
            tx_queue_len: None,
            rps_cpus: Vec::new(),
        }
    }
}

/// A TAP CDQ operation that failed.
#[derive(Debug, Error)]
pub enum TapError {
    /// The configuration cannot be applied.
    #[error("bad TAP config for {ifname:?} in {netns:?}: {what}")]
    BadConfig {
        /// Interface name.
        ifname: String,
        /// Namespace.
        netns: String,
        /// What is wrong.
        what: &'static str,
    },
    /// `/dev/net/tun` could not be opened.
    #[error("opening /dev/net/tun for {ifname:?} (queue {queue}): {source}")]
    OpenTun {
        /// Interface name (the temporary host-side name).
        ifname: String,
        /// Queue number.
        queue: usize,
        /// The OS error.
        source: io::Error,
    },
    /// A TUN ioctl failed.
    #[error("ioctl {ioctl} on TAP {ifname:?} (queue {queue}): {source}")]
    Ioctl {
        /// The ioctl's name.
        ioctl: &'static str,
        /// Interface name.
        ifname: String,
        /// Queue number.
        queue: usize,
        /// The OS error.
        source: io::Error,
    },
    /// Moving or configuring the interface in the pod namespace failed.
    #[error("configuring TAP {ifname:?} in namespace {netns:?}: {source}")]
    Netns {
        /// Interface name.
        ifname: String,
        /// Namespace.
        netns: String,
        /// What failed.
        source: NetnsError,
    },
}

/// A TAP CDQ: the netdev in the pod and one [`TapQueue`] per worker.
///
/// Hand the queues to the workers with [`TapPort::take_queue`]. Dropping the
/// port deletes the netdev (queues still held then see errors, counted as
/// drops, until they are dropped too).
#[derive(Debug)]
pub struct TapPort {
    netns: String,
    ifname: String,
    ifindex: u32,
    queues: Vec<Option<TapQueue>>,
    counters: Arc<PortCounters>,
    offloads: libc::c_uint,
    removed: bool,
}

/// One queue pair of a [`TapPort`], owned by one worker.
///
/// Every received and sent frame costs one system call (`readv`/`writev`
/// of the virtio-net header and the frame): a TAP has no shared-memory ring
/// without vhost-net. An empty poll costs one more `readv` (`EAGAIN`).
#[derive(Debug)]
pub struct TapQueue {
    fd: OwnedFd,
    queue: usize,
    port_id: PortId,
    counters: Arc<PortCounters>,
}

/// A process-wide counter for unique temporary interface names.
static TMP_NAMES: AtomicU32 = AtomicU32::new(0);

/// `struct ifreq` with the `ifr_flags` member of its union.
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl TapPort {
    /// Creates the TAP, moves it into `config.netns` as `config.ifname` and
    /// configures it (see the module docs).
    pub fn create(config: &TapConfig) -> Result<Self, TapError> {
        let bad = |what| TapError::BadConfig {
            ifname: config.ifname.clone(),
            netns: config.netns.clone(),
            what,
        };
        if config.ifname.is_empty() || config.ifname.len() >= libc::IFNAMSIZ {
            return Err(bad("interface name must have 1 to 15 bytes"));
        }
        if config.queues == 0 || config.queues > 256 {
            return Err(bad("queues must be 1 to 256"));
        }
        if matches!(config.ipv4, Some((_, p)) if p > 32) {
            return Err(bad("IPv4 prefix longer than 32"));
        }
        if config.tx_queue_len == Some(0) {
            return Err(bad("tx_queue_len must be at least 1"));
        }
        if config.rps_cpus.iter().any(|&c| c >= 4096) {
            return Err(bad("rps_cpus names a core above 4095"));
        }
        // Open the namespace first: a missing pod namespace fails before
        // anything is created.
        let ns_err = |source| TapError::Netns {
            ifname: config.ifname.clone(),
            netns: config.netns.clone(),
            source,
        };
        let ns = NetNs::open(&config.netns).map_err(ns_err)?;

        let tmp = format!(
            "p4t{:x}q{:x}",
            std::process::id() & 0xff_ffff,
            TMP_NAMES.fetch_add(1, Ordering::Relaxed) & 0xfff
        );
        let counters = Arc::new(PortCounters::default());
        let mut fds = Vec::with_capacity(config.queues);
        for q in 0..config.queues {
            fds.push(open_queue(&tmp, q)?);
        }
        // Device-wide settings, through the first fd.
        let fd0 = fds[0].as_raw_fd();
        let ioctl_err = |ioctl, source| TapError::Ioctl {
            ioctl,
            ifname: tmp.clone(),
            queue: 0,
            source,
        };
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one c_int through the pointer, which
        // points to a live local.
        if unsafe { libc::ioctl(fd0, TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(ioctl_err("TUNSETVNETHDRSZ", io::Error::last_os_error()));
        }
        let le: libc::c_int = 1;
        // SAFETY: TUNSETVNETLE reads one c_int through the pointer, which
        // points to a live local.
        if unsafe { libc::ioctl(fd0, TUNSETVNETLE, &le) } < 0 {
            return Err(ioctl_err("TUNSETVNETLE", io::Error::last_os_error()));
        }
        let offloads =
            set_offloads(fd0, config.offloads.bits()).map_err(|e| ioctl_err("TUNSETOFFLOAD", e))?;

        // Move it into the pod and configure it there.
        let ifindex = netns::ifindex(&tmp).map_err(ns_err)?;
        ns.move_link(ifindex).map_err(ns_err)?;
        let mut port = TapPort {
            netns: config.netns.clone(),
            ifname: tmp.clone(),
            ifindex,
            queues: Vec::new(),
            counters: Arc::clone(&counters),
            offloads,
            removed: false,
        };
        // From here on `port`'s drop deletes the link if a step fails.
        let mac = format_mac(&config.mac);
        let mtu = config.mtu.to_string();
        let txqlen = config
            .tx_queue_len
            .unwrap_or(DEFAULT_TX_QUEUE_LEN)
            .to_string();
        let ifname = config.ifname.as_str();
        let ns_name = config.netns.as_str();
        netns::ip_in(
            ns_name,
            &[
                "link",
                "set",
                "dev",
                &tmp,
                "name",
                ifname,
                "address",
                &mac,
                "mtu",
                &mtu,
                "txqueuelen",
                &txqlen,
            ],
        )
        .map_err(ns_err)?;
        port.ifname = config.ifname.clone();
        port.ifindex = ns
            .run(|| netns::ifindex(ifname))
            .and_then(|r| r)
            .map_err(ns_err)?;
        if let Some((addr, prefix)) = config.ipv4 {
            let cidr = format!("{addr}/{prefix}");
            netns::ip_in(ns_name, &["addr", "add", &cidr, "dev", ifname]).map_err(ns_err)?;
        }
        if !config.rps_cpus.is_empty() {
            // Moving a device to another namespace resets its RPS maps, so
            // this comes after the move; one receive queue per TAP queue.
            let files: Vec<String> = (0..config.queues)
                .map(|q| format!("/sys/class/net/{ifname}/queues/rx-{q}/rps_cpus"))
                .collect();
            netns::write_files_in(ns_name, &files, &cpu_mask(&config.rps_cpus)).map_err(ns_err)?;
        }
        netns::ip_in(ns_name, &["link", "set", "dev", ifname, "up"]).map_err(ns_err)?;
        if let Some(gw) = config.gateway {
            let gw = gw.to_string();
            netns::ip_in(
                ns_name,
                &["route", "replace", &gw, "dev", ifname, "scope", "link"],
            )
            .map_err(ns_err)?;
            netns::ip_in(
                ns_name,
                &["route", "replace", "default", "via", &gw, "dev", ifname],
            )
            .map_err(ns_err)?;
        }
        port.queues = fds
            .into_iter()
            .enumerate()
            .map(|(queue, fd)| {
                Some(TapQueue {
                    fd,
                    queue,
                    port_id: config.port_id,
                    counters: Arc::clone(&counters),
                })
            })
            .collect();
        Ok(port)
    }

    /// Number of queue pairs.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Takes queue pair `q` for a worker; `None` when there is no such queue
    /// or it was taken already.
    pub fn take_queue(&mut self, q: usize) -> Option<TapQueue> {
        self.queues.get_mut(q).and_then(Option::take)
    }

    /// The port's counters, shared by all its queues.
    pub fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    /// The namespace the TAP lives in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The interface name inside the namespace.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index inside the namespace.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The offloads the kernel accepted.
    pub fn offloads(&self) -> TapOffloads {
        TapOffloads {
            csum: self.offloads & TUN_F_CSUM != 0,
            tso: self.offloads & TUN_F_TSO4 != 0,
            uso: self.offloads & TUN_F_USO4 != 0,
        }
    }

    /// Deletes the netdev from the pod namespace, reporting failure (drop
    /// does the same, silently). Succeeds when the namespace or the device
    /// is already gone.
    pub fn remove(mut self) -> Result<(), TapError> {
        self.delete_link()
    }

    fn delete_link(&mut self) -> Result<(), TapError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let Ok(ns) = NetNs::open(&self.netns) else {
            return Ok(()); // the namespace, and the device with it, is gone
        };
        // Delete only our device: the name could have been reused.
        let ifname = self.ifname.clone();
        let ours =
            || ns.run(|| netns::ifindex(&ifname)).ok().and_then(Result::ok) == Some(self.ifindex);
        if !ours() {
            return Ok(());
        }
        match netns::ip_in(&self.netns, &["link", "del", "dev", &self.ifname]) {
            // The device can vanish on its own meanwhile: its last queue
            // closing (a worker dropping its `TapQueue`) destroys it.
            Err(_) if !ours() => Ok(()),
            Err(source) => Err(TapError::Netns {
                ifname: self.ifname.clone(),
                netns: self.netns.clone(),
                source,
            }),
            Ok(()) => Ok(()),
        }
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        let _ = self.delete_link();
    }
}

/// Opens `/dev/net/tun` and attaches queue `q` of the TAP `name`.
fn open_queue(name: &str, q: usize) -> Result<OwnedFd, TapError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|source| TapError::OpenTun {
            ifname: name.to_owned(),
            queue: q,
            source,
        })?;
    let fd = OwnedFd::from(file);
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq` (40 bytes);
    // `IfReqFlags` is repr(C) with that size and layout, the name is
    // NUL-terminated (at most 15 bytes were copied into 16), and `req` lives
    // across the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
        return Err(TapError::Ioctl {
            ioctl: "TUNSETIFF",
            ifname: name.to_owned(),
            queue: q,
            source: io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

/// Asks for `bits`; if the kernel refuses (an old kernel without USO),
/// retries without USO. Returns what was accepted.
fn set_offloads(fd: libc::c_int, bits: libc::c_uint) -> io::Result<libc::c_uint> {
    let try_set = |bits: libc::c_uint| {
        // SAFETY: TUNSETOFFLOAD takes the offload bits as the ioctl's integer
        // argument; no memory is passed.
        let rc = unsafe { libc::ioctl(fd, TUNSETOFFLOAD, bits as libc::c_ulong) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(bits)
        }
    };
    match try_set(bits) {
        Err(e)
            if bits & (TUN_F_USO4 | TUN_F_USO6) != 0 && e.raw_os_error() == Some(libc::EINVAL) =>
        {
            try_set(bits & !(TUN_F_USO4 | TUN_F_USO6))
        }
        other => other,
    }
}

fn format_mac(mac: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

impl TapQueue {
    /// This queue's number within its port.
    pub fn queue(&self) -> usize {
        self.queue
    }
}

impl QueuePair for TapQueue {
    /// One `readv` per frame (header into [`PacketBuf::vnet`], frame into
    /// the buffer's receive area) until `EAGAIN` or the batch is full.
    /// Frames larger than the pool's buffers (a GSO frame into a small
    /// buffer) are dropped and counted.
    fn rx_burst(&mut self, pool: &mut BufPool, batch: &mut Batch) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        let mut drops = 0u64;
        while batch.remaining() > 0 {
            let mut buf = pool.get();
            if buf.capacity() < pool.buf_size() {
                // A stray smaller buffer (from another pool, returned here
                // after a tx): reusing it would drop every large frame it
                // met, so free it and take a full-size one.
                buf = PacketBuf::with_capacity(pool.buf_size());
            }
            let mut hdr = [0u8; VNET_HDR_LEN];
            let area = buf.receive_area();
            let room = area.len();
            let iov = [
                libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: area.as_mut_ptr().cast(),
                    iov_len: room,
                },
            ];
            // SAFETY: both iovecs point into live, writable buffers (`hdr` on
            // the stack, `area` borrowed from `buf`) of the stated lengths.
            let rc = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            if rc < 0 {
                pool.put(buf);
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break; // EAGAIN: empty; anything else: device gone
            }
            let rc = rc as usize;
            // tun returns the full length even when it had to truncate.
            if rc < VNET_HDR_LEN + 14 || rc - VNET_HDR_LEN > room {
                pool.put(buf);
                drops += 1;
                continue;
            }
            let len = rc - VNET_HDR_LEN;
            buf.set_len(len);
            buf.port = self.port_id;
            // `VnetHeader::parse` cannot fail on a full-length array.
            buf.vnet = VnetHeader::parse(&hdr).unwrap_or_default();
            if let Err(buf) = batch.push(buf) {
                pool.put(buf); // unreachable: remaining() > 0 was checked
                drops += 1;
                break;
            }
            n += 1;
            bytes += len;
        }
        if n > 0 {
            self.counters.count_rx(n, bytes);
        }
        if drops > 0 {
            self.counters.drops.fetch_add(drops, Ordering::Relaxed);
        }
        n
    }

    /// Transmits every packet of `batch` with its own virtio-net header
    /// ([`PacketBuf::vnet`]), so a GSO frame or a partial checksum from
    /// another TAP passes through unchanged. One `writev` per packet; failed
    /// writes are drops.
    fn tx_burst(&mut self, batch: &mut Batch, pool: &mut BufPool) -> TxOutcome {
        let mut out = TxOutcome::default();
        let mut bytes = 0;
        for pkt in batch.drain() {
            let mut hdr = [0u8; VNET_HDR_LEN];
            pkt.vnet.emit(&mut hdr);
            let frame = pkt.data();
            let iov = [
                libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: frame.as_ptr().cast_mut().cast(),
                    iov_len: frame.len(),
                },
            ];
            // SAFETY: both iovecs point into live buffers (`hdr` on the stack,
            // `frame` borrowed from `pkt`) of the stated lengths; writev only
            // reads them.
            let rc = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            if rc < 0 {
                out.dropped += 1;
            } else {
                out.sent += 1;
                bytes += frame.len();
            }
            pool.put(pkt);
        }
        self.counters.count_tx(out.sent, bytes, out.dropped);
        out
    }

    /// A TAP takes large segments and partial checksums on transmit
    /// whatever offloads its receive side was offered.
    fn accepts_offloads(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_masks_are_in_the_kernel_format() {
        assert_eq!(cpu_mask(&[]), "0");
        assert_eq!(cpu_mask(&[0]), "1");
        assert_eq!(cpu_mask(&[0, 2, 3]), "d");
        assert_eq!(cpu_mask(&[31]), "80000000");
        assert_eq!(cpu_mask(&[0, 33]), "2,00000001");
        assert_eq!(cpu_mask(&[64]), "1,00000000,00000000");
    }
}
