//! The control side of a memif port: socket, handshake, connect and
//! disconnect. Runs on one control thread, never on a worker.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use p4k8s_packet::port::PortStats;
use p4k8s_packet::PortCounters;

use super::guard::Guard;
use super::queue::{MemifQueuePair, QueueRings, QueueSlot};
use super::shm::{RingView, SharedMem};
use super::sys::{self, Received};
use super::wire::{self, Msg, MsgType, Name};
use super::{MemifConfig, MemifError, PeerError, Role, SocketName};
use crate::mapping::{Mapping, Populate};

/// Largest region accepted from a peer: descriptor offsets are 32 bits.
const MAX_REGION_SIZE: u64 = 1 << 32;

/// How and why the last connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectInfo {
    /// True when the peer ended it (its DISCONNECT reason, or it closed the
    /// socket); false when this side did (the reason it sent).
    pub by_peer: bool,
    /// The reason.
    pub reason: String,
}

/// Connection state of a port, readable from any thread.
#[derive(Debug, Default)]
pub struct MemifStatus {
    connected: AtomicBool,
    connects: AtomicU64,
    disconnects: AtomicU64,
    rejected: AtomicU64,
    last_disconnect: Mutex<Option<DisconnectInfo>>,
    peer: Mutex<String>,
}

impl MemifStatus {
    /// True while a peer is connected.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Connections completed so far.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Connections (complete or not) that ended so far.
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Acquire)
    }

    /// Connection attempts turned away because a peer was already connected.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// How the last connection ended.
    pub fn last_disconnect(&self) -> Option<DisconnectInfo> {
        self.last_disconnect
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connected peer's interface name (empty when none).
    pub fn peer(&self) -> String {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A ring announced by ADD_RING, placed at CONNECT.
#[derive(Debug)]
struct RingSpec {
    c2s: bool,
    index: u16,
    region: u16,
    offset: u32,
    log2: u8,
    eventfd: Arc<OwnedFd>,
}

/// What the client built at HELLO and publishes at CONNECTED.
#[derive(Debug)]
struct ClientPlan {
    c2s: Vec<RingView>,
    s2c: Vec<RingView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Server: HELLO sent, waiting for INIT.
    AwaitInit,
    /// Client: waiting for HELLO.
    AwaitHello,
    /// Regions and rings being exchanged.
    Setup,
    /// Rings published to the workers.
    Connected,
}

#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    state: State,
    started: Instant,
    /// Guards of the unsealed regions; declared before `regions` so they
    /// are dropped (unregistered) before the mappings.
    guards: Vec<Guard>,
    regions: Vec<Mapping>,
    /// The connected regions, to notice a poisoned (shrunk) one.
    mem: Option<Arc<SharedMem>>,
    rings: Vec<RingSpec>,
    outbox: VecDeque<(Msg, Option<OwnedFd>)>,
    plan: Option<ClientPlan>,
}

impl Conn {
    fn new(fd: OwnedFd, state: State) -> Conn {
        Conn {
            fd,
            state,
            started: Instant::now(),
            guards: Vec::new(),
            regions: Vec::new(),
            mem: None,
            rings: Vec::new(),
            outbox: VecDeque::new(),
            plan: None,
        }
    }

    fn send(&self, msg: &Msg, pass: Option<&OwnedFd>) -> Result<(), PeerError> {
        sys::send_msg(self.fd.as_fd(), &msg.emit(), pass.map(|f| f.as_fd()))
            .map_err(|e| PeerError::Local(format!("sending {}: {e}", msg.msg_type())))
    }
}

/// What handling one message leads to.
enum Step {
    Continue,
    /// The peer said goodbye (or vanished): close without a DISCONNECT.
    PeerLeft(String),
}

/// One memif interface on one socket: serves (or connects to) one peer at a
/// time and hands out [`MemifQueuePair`]s.
///
/// ```no_run
/// use p4k8s_cdq::memif::{MemifConfig, MemifPort, SocketName};
/// let cfg = MemifConfig::server(SocketName::Path("/run/p4k8s/cdq/pod.sock".into()), 2);
/// let mut port = MemifPort::new(cfg)?;
/// let queue_pairs = port.take_queue_pairs(); // one per worker
/// let control = port.spawn()?;               // accepts, reconnects, until dropped
/// # Ok::<(), p4k8s_cdq::memif::MemifError>(())
/// ```
#[derive(Debug)]
pub struct MemifPort {
    cfg: MemifConfig,
    listener: Option<OwnedFd>,
    conn: Option<Conn>,
    slots: Vec<Arc<QueueSlot>>,
    queue_pairs: Vec<MemifQueuePair>,
    counters: Arc<PortCounters>,
    status: Arc<MemifStatus>,
    next_connect: Instant,
    created_path: Option<std::path::PathBuf>,
}

impl MemifPort {
    /// Creates the port; a server binds and listens on its socket at once
    /// (replacing a stale socket file nobody serves), a client connects on
    /// its first [`poll`](MemifPort::poll).
    pub fn new(cfg: MemifConfig) -> Result<MemifPort, MemifError> {
        let sock = cfg.socket.to_string();
        let invalid = |what| MemifError::Config {
            socket: sock.clone(),
            what,
        };
        if cfg.queue_pairs == 0 || cfg.queue_pairs > 256 {
            return Err(invalid("queue_pairs must be 1..=256"));
        }
        if cfg.log2_ring_size == 0 || cfg.log2_ring_size > wire::MAX_LOG2_RING_SIZE {
            return Err(invalid("log2_ring_size must be 1..=14"));
        }
        if cfg.buffer_size < 64 || cfg.buffer_size > 65535 {
            return Err(invalid("buffer_size must be 64..=65535"));
        }
        let mut created_path = None;
        let listener = match cfg.role {
            Role::Client => None,
            Role::Server => {
                if let SocketName::Path(p) = &cfg.socket {
                    if let Some(dir) = p.parent() {
                        std::fs::create_dir_all(dir).map_err(|source| MemifError::Socket {
                            socket: sock.clone(),
                            op: "create directory",
                            source,
                        })?;
                    }
                    remove_stale_socket(&cfg.socket)?;
                }
                let fd = sys::listen(&cfg.socket).map_err(|source| {
                    if source.kind() == std::io::ErrorKind::AddrInUse {
                        MemifError::InUse(sock.clone())
                    } else {
                        MemifError::Socket {
                            socket: sock.clone(),
                            op: "bind/listen",
                            source,
                        }
                    }
                })?;
                if let SocketName::Path(p) = &cfg.socket {
                    created_path = Some(p.clone());
                    if let Some(mode) = cfg.socket_mode {
                        use std::os::unix::fs::PermissionsExt;
                        let perm = std::fs::Permissions::from_mode(mode);
                        if let Err(source) = std::fs::set_permissions(p, perm) {
                            let _ = std::fs::remove_file(p);
                            return Err(MemifError::Socket {
                                socket: sock.clone(),
                                op: "chmod",
                                source,
                            });
                        }
                    }
                }
                Some(fd)
            }
        };
        let counters = Arc::new(PortCounters::default());
        let slots: Vec<_> = (0..cfg.queue_pairs)
            .map(|_| Arc::new(QueueSlot::default()))
            .collect();
        let queue_pairs = slots
            .iter()
            .enumerate()
            .map(|(i, s)| MemifQueuePair::new(i as u16, s.clone(), counters.clone()))
            .collect();
        Ok(MemifPort {
            cfg,
            listener,
            conn: None,
            slots,
            queue_pairs,
            counters,
            status: Arc::new(MemifStatus::default()),
            next_connect: Instant::now(),
            created_path,
        })
    }

    /// The queue pairs, one per worker; empty after the first call.
    pub fn take_queue_pairs(&mut self) -> Vec<MemifQueuePair> {
        std::mem::take(&mut self.queue_pairs)
    }

    /// The port's packet counters (summed over its queue pairs).
    pub fn counters(&self) -> Arc<PortCounters> {
        self.counters.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PortStats {
        self.counters.snapshot()
    }

    /// The connection state, shareable with other threads.
    pub fn status(&self) -> Arc<MemifStatus> {
        self.status.clone()
    }

    /// True while a peer is connected.
    pub fn is_connected(&self) -> bool {
        self.status.is_connected()
    }

    /// The configuration.
    pub fn config(&self) -> &MemifConfig {
        &self.cfg
    }

    /// Runs the control side until `timeout` has passed or something
    /// happened: accepts a peer (server), connects (client, every
    /// `reconnect_interval` while disconnected), answers control messages,
    /// and publishes or withdraws the rings. Errors are local failures of the
    /// listening socket only; a misbehaving peer is disconnected with a
    /// reason (see [`MemifStatus::last_disconnect`]).
    pub fn poll(&mut self, timeout: Duration) -> Result<(), MemifError> {
        let mut wait = timeout;
        if self.cfg.role == Role::Client && self.conn.is_none() {
            let now = Instant::now();
            if now >= self.next_connect {
                self.next_connect = now + self.cfg.reconnect_interval;
                self.try_connect();
            }
            if self.conn.is_none() {
                wait = wait.min(self.next_connect.saturating_duration_since(Instant::now()));
            }
        }
        let mut fds: Vec<RawFd> = Vec::with_capacity(2);
        if let Some(l) = &self.listener {
            fds.push(l.as_raw_fd());
        }
        if let Some(c) = &self.conn {
            fds.push(c.fd.as_raw_fd());
        }
        if !fds.is_empty() {
            let ms = wait.as_millis().min(i32::MAX as u128) as i32;
            sys::poll_readable(&fds, ms).map_err(|source| MemifError::Socket {
                socket: self.cfg.socket.to_string(),
                op: "poll",
                source,
            })?;
        } else if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        self.accept_pending()?;
        self.service_conn();
        if let Some(c) = &self.conn {
            if c.state != State::Connected && c.started.elapsed() > self.cfg.handshake_timeout {
                self.fail(PeerError::Timeout);
            } else if c.mem.as_ref().is_some_and(|m| m.poisoned()) {
                self.fail(PeerError::Shrunk);
            }
        }
        Ok(())
    }

    /// Ends the current connection (if any), telling the peer `reason`.
    pub fn disconnect(&mut self, reason: &str) {
        let Some(c) = &self.conn else { return };
        let _ = c.send(
            &Msg::Disconnect {
                code: 0,
                reason: reason.into(),
            },
            None,
        );
        self.teardown(false, reason.to_string());
    }

    /// Moves the port's control side to a thread of its own that polls it
    /// until the returned handle is dropped (or stopped). Fails only when
    /// the OS refuses a new thread; the port is then closed.
    pub fn spawn(self) -> Result<MemifPortThread, MemifError> {
        let stop = Arc::new(AtomicBool::new(false));
        let status = self.status.clone();
        let counters = self.counters.clone();
        let socket = self.cfg.socket.to_string();
        let stop2 = stop.clone();
        let mut port = self;
        let join = std::thread::Builder::new()
            .name("memif-ctl".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    if port.poll(Duration::from_millis(10)).is_err() {
                        // A broken listener: back off instead of spinning.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                port
            })
            .map_err(|source| MemifError::Socket {
                socket,
                op: "spawn control thread",
                source,
            })?;
        Ok(MemifPortThread {
            stop,
            join: Some(join),
            status,
            counters,
        })
    }

    fn try_connect(&mut self) {
        match sys::connect(&self.cfg.socket) {
            Ok(fd) => self.conn = Some(Conn::new(fd, State::AwaitHello)),
            Err(_) => {
                // Not served yet; retried every reconnect_interval.
            }
        }
    }

    fn accept_pending(&mut self) -> Result<(), MemifError> {
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        loop {
            let fd = match sys::accept(listener.as_fd()) {
                Ok(Some(fd)) => fd,
                Ok(None) => return Ok(()),
                Err(source) => {
                    return Err(MemifError::Socket {
                        socket: self.cfg.socket.to_string(),
                        op: "accept",
                        source,
                    })
                }
            };
            if self.conn.is_some() {
                let busy = Msg::Disconnect {
                    code: 0,
                    reason: PeerError::AlreadyConnected.to_string(),
                };
                let _ = sys::send_msg(fd.as_fd(), &busy.emit(), None);
                self.status.rejected.fetch_add(1, Ordering::Relaxed);
                continue; // fd dropped: closed
            }
            let conn = Conn::new(fd, State::AwaitInit);
            let q = self.cfg.queue_pairs - 1;
            let hello = Msg::Hello(wire::Hello {
                name: Name::new(&self.cfg.name),
                min_version: wire::VERSION,
                max_version: wire::VERSION,
                max_region: (wire::MAX_REGIONS - 1) as u16,
                max_s2c_ring: q,
                max_c2s_ring: q,
                max_log2_ring_size: wire::MAX_LOG2_RING_SIZE,
            });
            if conn.send(&hello, None).is_ok() {
                self.conn = Some(conn);
            }
        }
    }

    fn service_conn(&mut self) {
        let mut buf = [0u8; 2 * wire::MSG_SIZE];
        // Bounded: a peer flooding messages cannot keep the thread here.
        for _ in 0..64 {
            let Some(c) = &self.conn else { return };
            let rx = sys::recv_msg(c.fd.as_fd(), &mut buf);
            let (len, fds) = match rx {
                Ok(Received::Nothing) => return,
                Ok(Received::Closed) => {
                    self.teardown(true, "peer closed the control socket".into());
                    return;
                }
                Err(e) => {
                    self.teardown(true, format!("control socket error: {e}"));
                    return;
                }
                Ok(Received::Msg { len, fds }) => (len, fds),
            };
            let msg = match Msg::parse(&buf[..len.min(buf.len())]) {
                Ok(m) => m,
                Err(e) => {
                    let e = match e {
                        wire::ParseError::Size(_) => wire::ParseError::Size(len),
                        e => e,
                    };
                    self.fail(PeerError::Malformed(e));
                    return;
                }
            };
            let fd = fds.into_iter().next();
            let step = match self.cfg.role {
                Role::Server => self.server_handle(msg, fd),
                Role::Client => self.client_handle(msg, fd),
            };
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::PeerLeft(reason)) => {
                    self.teardown(true, reason);
                    return;
                }
                Err(e) => {
                    self.fail(e);
                    return;
                }
            }
        }
    }

    /// Sends DISCONNECT with the reason and closes the connection.
    fn fail(&mut self, e: PeerError) {
        self.disconnect(&e.to_string());
    }

    fn teardown(&mut self, by_peer: bool, reason: String) {
        for s in &self.slots {
            s.publish(None);
        }
        // Dropping the connection closes the socket; the regions are
        // unmapped once every queue pair has let go of them.
        self.conn = None;
        self.status.connected.store(false, Ordering::Release);
        *self.status.peer.lock().unwrap_or_else(|e| e.into_inner()) = String::new();
        *self
            .status
            .last_disconnect
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(DisconnectInfo { by_peer, reason });
        // Counted after the reason is recorded: a reader that sees the
        // count sees this disconnect's reason (or a later one).
        self.status.disconnects.fetch_add(1, Ordering::Release);
        self.next_connect = Instant::now() + self.cfg.reconnect_interval;
    }

    fn set_connected(&mut self, peer: String) {
        *self.status.peer.lock().unwrap_or_else(|e| e.into_inner()) = peer;
        self.status.connects.fetch_add(1, Ordering::Relaxed);
        self.status.connected.store(true, Ordering::Release);
    }

    // ----- server role -----

    fn server_handle(&mut self, msg: Msg, fd: Option<OwnedFd>) -> Result<Step, PeerError> {
        let ty = msg.msg_type();
        let qps = self.cfg.queue_pairs;
        let Some(c) = self.conn.as_mut() else {
            return Ok(Step::Continue);
        };
        match (c.state, msg) {
            (_, Msg::Disconnect { reason, .. }) => return Ok(Step::PeerLeft(reason)),
            (_, Msg::Ack) => {}
            (State::AwaitInit, Msg::Init(i)) => {
                if i.version != wire::VERSION {
                    return Err(PeerError::Version);
                }
                if i.id != self.cfg.id {
                    return Err(PeerError::UnknownId(i.id));
                }
                if i.mode != 0 {
                    return Err(PeerError::Mode);
                }
                if let Some(secret) = &self.cfg.secret {
                    if i.secret != wire::secret_bytes(Some(secret)) {
                        return Err(PeerError::Secret);
                    }
                }
                c.state = State::Setup;
                c.send(&Msg::Ack, None)?;
            }
            (State::Setup, Msg::AddRegion(r)) => {
                let fd = fd.ok_or(PeerError::MissingFd(ty))?;
                let bad = |why| PeerError::Region {
                    index: r.index,
                    why,
                };
                if r.index as usize != c.regions.len() || r.index as usize >= wire::MAX_REGIONS {
                    return Err(bad("index out of order"));
                }
                if r.size == 0 || r.size > MAX_REGION_SIZE {
                    return Err(bad("size out of range"));
                }
                // A region not sealed against shrinking (a zero-copy
                // client's mempool memory: an EAL memfd or hugetlbfs file)
                // is mapped under a SIGBUS guard.
                let sealed =
                    sys::seals(fd.as_fd()).is_ok_and(|seals| seals & libc::F_SEAL_SHRINK != 0);
                if !sys::is_regular_file(fd.as_fd()).map_err(|_| bad("fstat failed"))? {
                    return Err(bad("not a memory file"));
                }
                let fsize = sys::file_size(fd.as_fd()).map_err(|_| bad("fstat failed"))?;
                if fsize < r.size {
                    return Err(bad("file smaller than the region"));
                }
                let m = Mapping::shared_owning(fd, r.size as usize, 0, Populate::No)
                    .map_err(|_| bad("mmap failed"))?;
                if !sealed {
                    let g = Guard::register(m.ptr(), m.len()).ok_or(bad(
                        "not sealed against shrinking, and no SIGBUS guard left",
                    ))?;
                    c.guards.push(g);
                }
                c.regions.push(m);
                c.send(&Msg::Ack, None)?;
            }
            (State::Setup, Msg::AddRing(r)) => {
                let fd = fd.ok_or(PeerError::MissingFd(ty))?;
                let c2s = r.flags & wire::ADD_RING_FLAG_C2S != 0;
                let bad = |why| PeerError::Ring {
                    index: r.index,
                    why,
                };
                if r.index >= qps {
                    return Err(bad("index above the queue pairs offered"));
                }
                if r.log2_ring_size == 0 || r.log2_ring_size > wire::MAX_LOG2_RING_SIZE {
                    return Err(bad("ring size out of range"));
                }
                if c.rings.iter().any(|x| x.c2s == c2s && x.index == r.index) {
                    return Err(bad("added twice"));
                }
                sys::check_eventfd(fd.as_fd())
                    .map_err(|_| bad("interrupt fd is not an eventfd"))?;
                c.rings.push(RingSpec {
                    c2s,
                    index: r.index,
                    region: r.region,
                    offset: r.offset,
                    log2: r.log2_ring_size,
                    eventfd: Arc::new(fd),
                });
                c.send(&Msg::Ack, None)?;
            }
            (State::Setup, Msg::Connect(name)) => {
                self.server_connect(name.as_string())?;
            }
            (_, m) => return Err(PeerError::Unexpected(m.msg_type())),
        }
        Ok(Step::Continue)
    }

    fn server_connect(&mut self, peer: String) -> Result<(), PeerError> {
        let qps = self.cfg.queue_pairs as usize;
        let name = Name::new(&self.cfg.name);
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        if c.regions.is_empty() || c.rings.is_empty() {
            return Err(PeerError::Incomplete);
        }
        let mem = Arc::new(SharedMem::guarded(
            std::mem::take(&mut c.regions),
            std::mem::take(&mut c.guards),
        ));
        c.mem = Some(mem.clone());
        let mut rx: Vec<Option<RingView>> = (0..qps).map(|_| None).collect();
        let mut tx: Vec<Option<RingView>> = (0..qps).map(|_| None).collect();
        for spec in c.rings.drain(..) {
            let bad = |why| PeerError::Ring {
                index: spec.index,
                why,
            };
            let view = RingView::new(
                &mem,
                spec.region,
                spec.offset,
                spec.log2,
                None,
                0,
                Some(spec.eventfd.clone()),
            )
            .map_err(|_| bad("outside its region or misaligned"))?;
            if view.cookie() != wire::COOKIE {
                return Err(bad("wrong cookie"));
            }
            view.head().store(0, Ordering::Relaxed);
            view.tail().store(0, Ordering::Relaxed);
            if spec.c2s {
                // We poll: the client need not signal our receive rings.
                view.flags()
                    .store(wire::RING_FLAG_MASK_INT, Ordering::Relaxed);
                rx[spec.index as usize] = Some(view);
            } else {
                tx[spec.index as usize] = Some(view);
            }
        }
        c.send(&Msg::Connected(name), None)?;
        c.state = State::Connected;
        for (i, (rx, tx)) in rx.into_iter().zip(tx).enumerate() {
            let rings = (rx.is_some() || tx.is_some()).then(|| {
                Arc::new(QueueRings {
                    rx,
                    tx,
                    client: false,
                })
            });
            self.slots[i].publish(rings);
        }
        self.set_connected(peer);
        Ok(())
    }

    // ----- client role -----

    fn client_handle(&mut self, msg: Msg, _fd: Option<OwnedFd>) -> Result<Step, PeerError> {
        let Some(c) = self.conn.as_mut() else {
            return Ok(Step::Continue);
        };
        match (c.state, msg) {
            (_, Msg::Disconnect { reason, .. }) => return Ok(Step::PeerLeft(reason)),
            (State::AwaitHello, Msg::Hello(h)) => {
                if h.min_version > wire::VERSION || h.max_version < wire::VERSION {
                    return Err(PeerError::Version);
                }
                self.client_setup(&h)?;
            }
            (State::Setup, Msg::Ack) => {
                let Some(c) = self.conn.as_mut() else {
                    return Ok(Step::Continue);
                };
                if let Some((m, fd)) = c.outbox.pop_front() {
                    c.send(&m, fd.as_ref())?;
                }
            }
            (State::Setup, Msg::Connected(name)) => {
                let Some(c) = self.conn.as_mut() else {
                    return Ok(Step::Continue);
                };
                let Some(plan) = c.plan.take() else {
                    return Err(PeerError::Unexpected(MsgType::Connected));
                };
                c.state = State::Connected;
                let mut c2s: Vec<Option<RingView>> = plan.c2s.into_iter().map(Some).collect();
                let mut s2c: Vec<Option<RingView>> = plan.s2c.into_iter().map(Some).collect();
                for v in c2s.iter().chain(s2c.iter()).flatten() {
                    v.head().store(0, Ordering::Relaxed);
                    v.tail().store(0, Ordering::Relaxed);
                }
                for v in s2c.iter().flatten() {
                    // We poll our receive rings.
                    v.flags().store(wire::RING_FLAG_MASK_INT, Ordering::Relaxed);
                    // Post every buffer now (the descriptors were set up at
                    // HELLO), so the server can send before our first
                    // receive burst; the queue pair starts from there.
                    v.head().store(v.size(), Ordering::Release);
                }
                for (i, slot) in self.slots.iter().enumerate() {
                    let tx = c2s.get_mut(i).and_then(Option::take);
                    let rx = s2c.get_mut(i).and_then(Option::take);
                    let rings = (rx.is_some() || tx.is_some()).then(|| {
                        Arc::new(QueueRings {
                            rx,
                            tx,
                            client: true,
                        })
                    });
                    slot.publish(rings);
                }
                self.set_connected(name.as_string());
            }
            (_, m) => return Err(PeerError::Unexpected(m.msg_type())),
        }
        Ok(Step::Continue)
    }

    /// Allocates the region, lays out rings and buffers as `net_memif`
    /// does (all rings, client-to-server first, then all buffers), and
    /// queues INIT, ADD_REGION, ADD_RING..., CONNECT, sent one per ACK.
    fn client_setup(&mut self, h: &wire::Hello) -> Result<(), PeerError> {
        let qps = self.cfg.queue_pairs;
        let n_c2s = qps.min(h.max_c2s_ring.saturating_add(1));
        let n_s2c = qps.min(h.max_s2c_ring.saturating_add(1));
        let log2 = self.cfg.log2_ring_size.min(h.max_log2_ring_size).max(1);
        let bsize = self.cfg.buffer_size as u64;
        let n_rings = (n_c2s + n_s2c) as u64;
        let ring_bytes = wire::ring_bytes(log2) as u64;
        let buffers_at = n_rings * ring_bytes;
        let size = buffers_at + n_rings * (bsize << log2);
        if size > MAX_REGION_SIZE - bsize {
            return Err(PeerError::Local("region would exceed 4 GiB".into()));
        }
        let local = |what: &str, e: std::io::Error| PeerError::Local(format!("{what}: {e}"));
        let memfd = sys::memfd("p4k8s_memif_region_0", size).map_err(|e| local("memfd", e))?;
        let pass = memfd.try_clone().map_err(|e| local("dup memfd", e))?;
        let map = Mapping::shared_owning(memfd, size as usize, 0, Populate::No)
            .map_err(|e| local("mmap", e))?;
        let mem = Arc::new(SharedMem::new(vec![map]));

        let mut outbox = VecDeque::new();
        outbox.push_back((
            Msg::AddRegion(wire::AddRegion { index: 0, size }),
            Some(pass),
        ));
        let mut c2s = Vec::new();
        let mut s2c = Vec::new();
        for k in 0..n_rings {
            let is_c2s = k < n_c2s as u64;
            let index = if is_c2s { k } else { k - n_c2s as u64 } as u16;
            let offset = (k * ring_bytes) as u32;
            let own = (buffers_at + k * (bsize << log2)) as u32;
            let efd = sys::eventfd().map_err(|e| local("eventfd", e))?;
            let pass = efd.try_clone().map_err(|e| local("dup eventfd", e))?;
            let view = RingView::new(
                &mem,
                0,
                offset,
                log2,
                Some(own),
                bsize as u32,
                Some(Arc::new(efd)),
            )
            .map_err(|_| PeerError::Local("ring layout".into()))?;
            view.set_cookie();
            view.flags().store(0, Ordering::Relaxed);
            view.head().store(0, Ordering::Relaxed);
            view.tail().store(0, Ordering::Relaxed);
            for s in 0..view.size() {
                if let Some(d) = view.own_desc(s, bsize as u32, 0) {
                    view.set_desc(s, d);
                }
            }
            outbox.push_back((
                Msg::AddRing(wire::AddRing {
                    flags: if is_c2s { wire::ADD_RING_FLAG_C2S } else { 0 },
                    index,
                    region: 0,
                    offset,
                    log2_ring_size: log2,
                    private_hdr_size: 0,
                }),
                Some(pass),
            ));
            if is_c2s {
                c2s.push(view);
            } else {
                s2c.push(view);
            }
        }
        outbox.push_back((Msg::Connect(Name::new(&self.cfg.name)), None));
        let init = Msg::Init(wire::Init {
            version: wire::VERSION,
            id: self.cfg.id,
            mode: 0,
            secret: wire::secret_bytes(self.cfg.secret.as_deref()),
            name: Name::new(&self.cfg.name),
        });
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        c.plan = Some(ClientPlan { c2s, s2c });
        c.outbox = outbox;
        c.state = State::Setup;
        c.send(&init, None)
    }
}

impl Drop for MemifPort {
    fn drop(&mut self) {
        if self.conn.is_some() {
            self.fail(PeerError::Closed);
        }
        self.listener = None;
        if let Some(p) = &self.created_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Removes a socket file that no process serves any more; refuses when a
/// process still accepts on it.
fn remove_stale_socket(name: &SocketName) -> Result<(), MemifError> {
    let SocketName::Path(p) = name else {
        return Ok(());
    };
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_socket() => {
            if sys::connect(name).is_ok() {
                return Err(MemifError::InUse(name.to_string()));
            }
            std::fs::remove_file(p).map_err(|source| MemifError::Socket {
                socket: name.to_string(),
                op: "remove stale socket",
                source,
            })
        }
        Ok(_) => Err(MemifError::Config {
            socket: name.to_string(),
            what: "path exists and is not a socket",
        }),
        Err(_) => Ok(()),
    }
}

/// A [`MemifPort`] whose control side runs on its own thread; dropping the
/// handle stops the thread and closes the port (DISCONNECT to the peer,
/// socket file removed).
#[derive(Debug)]
pub struct MemifPortThread {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<MemifPort>>,
    status: Arc<MemifStatus>,
    counters: Arc<PortCounters>,
}

impl MemifPortThread {
    /// The connection state.
    pub fn status(&self) -> &Arc<MemifStatus> {
        &self.status
    }

    /// The port's counters.
    pub fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    /// Waits until a peer is connected, up to `timeout`; true when one is.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.status.is_connected() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status.is_connected()
    }

    /// Stops the control thread and gives the port back.
    pub fn stop(mut self) -> Option<MemifPort> {
        self.stop.store(true, Ordering::Relaxed);
        self.join.take().and_then(|j| j.join().ok())
    }
}

impl Drop for MemifPortThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}
