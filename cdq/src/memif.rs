//! memif: shared-memory queue pairs, wire-compatible with DPDK's
//! `net_memif` (memif protocol 2.0), so a DPDK application in a pod is a CDQ
//! client:
//!
//! ```text
//! dpdk-testpmd ... --vdev=net_memif0,role=client,socket=/run/p4k8s/cdq/<pod>.sock,socket-abstract=no
//! ```
//!
//! (DPDK 22.11 uses an abstract socket name unless given
//! `socket-abstract=no`; [`SocketName::Abstract`] serves that form.)
//!
//! A [`MemifPort`] serves (or, in the client role, connects to) one socket
//! and hands out one [`MemifQueuePair`] per worker. The port's control side
//! is polled by one control thread ([`MemifPort::poll`], or
//! [`MemifPort::spawn`] for a ready-made thread); it accepts one peer at a
//! time, runs the handshake, publishes the rings to the queue pairs, and
//! after the peer leaves serves (or reconnects) again. The queue pairs never
//! block and make no system call per packet: at most one eventfd write per
//! transmit burst, and only when the peer asked for interrupts (DPDK polls
//! and masks them).
//!
//! As in `net_memif`, the client allocates the shared memory: one memfd
//! region holding every ring and then every buffer (`buffer_size` bytes
//! each, 2048 by default, `2^log2_ring_size` per ring), passed to the
//! server with `SCM_RIGHTS`, sealed against shrinking. A zero-copy client
//! (`zero-copy=yes`, which needs `--single-file-segments`) adds its
//! mempool memory as further regions, EAL memfds or hugetlbfs files that
//! are not sealed; those are mapped under a `SIGBUS` guard, so a pod that
//! shrinks one gets a disconnect, not a crashed dataplane (`guard.rs`).
//! The server checks the size of every region, and every ring and
//! descriptor the client gives it against the regions, so a pod cannot
//! make the dataplane read or write outside its own shared memory; a
//! malformed or unknown control message
//! ends the connection with a DISCONNECT that says why, and the port serves
//! the next peer.

mod control;
mod guard;
mod queue;
mod shm;
mod sys;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use control::{DisconnectInfo, MemifPort, MemifPortThread, MemifStatus};
pub use queue::MemifQueuePair;

/// Where a memif socket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketName {
    /// A filesystem socket (DPDK `socket=<path>,socket-abstract=no`).
    Path(PathBuf),
    /// An abstract socket name, without the leading NUL (DPDK 22.11's
    /// default for `socket=<name>`).
    Abstract(String),
}

impl std::fmt::Display for SocketName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketName::Path(p) => write!(f, "{}", p.display()),
            SocketName::Abstract(n) => write!(f, "@{n}"),
        }
    }
}

/// Which end of the memif connection this port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves the socket; the peer brings the shared memory (the CDQ role:
    /// a pod's DPDK app is the client).
    Server,
    /// Connects to a serving peer and allocates the shared memory.
    Client,
}

/// Configuration of a [`MemifPort`].
#[derive(Debug, Clone)]
pub struct MemifConfig {
    /// Socket to serve or connect to.
    pub socket: SocketName,
    /// Server or client.
    pub role: Role,
    /// Interface id on the socket (DPDK `id=`, default 0).
    pub id: u32,
    /// Queue pairs (one per worker). A DPDK client uses
    /// `min(its queues, these)`; as a client, do not ask for more than the
    /// DPDK server has queues, or it refuses the extra rings.
    pub queue_pairs: u16,
    /// Ring size as log2 (client role; DPDK's default is 10).
    pub log2_ring_size: u8,
    /// Size of each shared buffer (client role; 2048 by default).
    pub buffer_size: u32,
    /// Secret the client must present (DPDK `secret=`).
    pub secret: Option<String>,
    /// Name sent to the peer.
    pub name: String,
    /// Client role: wait between connection attempts.
    pub reconnect_interval: Duration,
    /// Server role: a peer that has not finished the handshake by then is
    /// disconnected, so a silent peer cannot hold the socket.
    pub handshake_timeout: Duration,
    /// Server role, filesystem socket: permission bits to give the socket
    /// file (connecting needs write permission, so e.g. `0o666` lets a pod
    /// that runs as another user attach). `None` keeps the umask's.
    pub socket_mode: Option<u32>,
}

impl MemifConfig {
    /// A server (CDQ) configuration with DPDK's defaults.
    pub fn server(socket: SocketName, queue_pairs: u16) -> Self {
        MemifConfig {
            socket,
            role: Role::Server,
            id: 0,
            queue_pairs,
            log2_ring_size: 10,
            buffer_size: 2048,
            secret: None,
            name: "p4k8s".into(),
            reconnect_interval: Duration::from_millis(200),
            handshake_timeout: Duration::from_secs(5),
            socket_mode: None,
        }
    }

    /// A client configuration with DPDK's defaults.
    pub fn client(socket: SocketName, queue_pairs: u16) -> Self {
        MemifConfig {
            role: Role::Client,
            ..MemifConfig::server(socket, queue_pairs)
        }
    }
}

/// A local failure of a memif port (peer misbehaviour is not an error of
/// the port: it ends that connection, see [`DisconnectInfo`]).
#[derive(Debug, thiserror::Error)]
pub enum MemifError {
    /// A system call on the port's socket failed.
    #[error("memif socket {socket}: {op} failed: {source}")]
    Socket {
        /// The socket.
        socket: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The socket path is served by another live process.
    #[error("memif socket {0} is already in use")]
    InUse(String),
    /// The configuration is invalid.
    #[error("memif socket {socket}: invalid configuration: {what}")]
    Config {
        /// The socket.
        socket: String,
        /// What is wrong.
        what: &'static str,
    },
}

/// Why a connection was refused or ended by this side; the text is sent to
/// the peer in the DISCONNECT message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// A control message that does not parse.
    #[error("bad control message: {0}")]
    Malformed(#[from] wire::ParseError),
    /// A valid message at the wrong time.
    #[error("unexpected {0} message")]
    Unexpected(wire::MsgType),
    /// No common protocol version.
    #[error("incompatible memif version")]
    Version,
    /// INIT asked for another interface id.
    #[error("interface id {0} not found")]
    UnknownId(u32),
    /// INIT asked for a mode other than Ethernet.
    #[error("only ethernet mode supported")]
    Mode,
    /// Wrong or missing secret.
    #[error("incorrect secret")]
    Secret,
    /// A message that must carry a descriptor came without one.
    #[error("{0} without a file descriptor")]
    MissingFd(wire::MsgType),
    /// A region that cannot be used.
    #[error("invalid region {index}: {why}")]
    Region {
        /// Region index.
        index: u16,
        /// What is wrong.
        why: &'static str,
    },
    /// A ring that cannot be used.
    #[error("invalid ring {index}: {why}")]
    Ring {
        /// Ring index.
        index: u16,
        /// What is wrong.
        why: &'static str,
    },
    /// An unsealed region shrank while mapped (it faulted and was
    /// replaced by zeroed memory).
    #[error("a region shrank while mapped")]
    Shrunk,
    /// CONNECT before any region and ring were added.
    #[error("CONNECT before any region and ring")]
    Incomplete,
    /// Another peer is already connected.
    #[error("already connected")]
    AlreadyConnected,
    /// The handshake took too long.
    #[error("handshake timeout")]
    Timeout,
    /// A local failure while setting up (allocation, mmap, send).
    #[error("local failure: {0}")]
    Local(String),
    /// The port is shutting down.
    #[error("port closed")]
    Closed,
}
