//! AF_PACKET ports on a veth pair (needs root, `ip`, `ping`).
//!
//! Each test makes a namespace `p4k8s-t-<pid>-<n>` holding one end of a
//! veth pair (as `eth0`, 10.78.0.2/24); our port sits on the other end in
//! the test's namespace. A drop guard deletes both, even on failure.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p4k8s_cdq::af_packet::{AfPacketConfig, AfPacketPort, AfPacketQueue};
use p4k8s_cdq::netns::{self, OwnedNetns};
use p4k8s_packet::checksum::checksum;
use p4k8s_packet::{Batch, BufPool, QueuePair};

static NEXT: AtomicUsize = AtomicUsize::new(0);

const OUR_IP: [u8; 4] = [10, 78, 0, 1];
const OUR_MAC: [u8; 6] = [0xee; 6];
const MARK: &[u8; 6] = b"P4K8S!";

/// A veth pair: `host` here, `eth0` in `ns`. Deleted on drop.
struct Veth {
    host: String,
    ns: OwnedNetns,
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = netns::ip(&["link", "del", "dev", &self.host]);
    }
}

fn veth() -> Veth {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ns = OwnedNetns::create(&format!("p4k8s-t-{}-{n}", std::process::id())).unwrap();
    let tag = format!("{:x}x{n}", std::process::id() & 0xffffff);
    let host = format!("p4h{tag}");
    let peer = format!("p4p{tag}");
    netns::ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]).unwrap();
    let v = Veth { host, ns };
    let ns = v.ns.name();
    netns::ip(&["link", "set", "dev", &peer, "netns", ns]).unwrap();
    netns::ip_in(ns, &["link", "set", "dev", &peer, "name", "eth0"]).unwrap();
    // Keep IPv6 chatter (router solicitations, MLD) off the link.
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", v.host),
        "1",
    );
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.eth0.disable_ipv6=1",
        ])
        .status();
    netns::ip_in(ns, &["addr", "add", "10.78.0.2/24", "dev", "eth0"]).unwrap();
    netns::ip_in(ns, &["link", "set", "dev", "eth0", "up"]).unwrap();
    netns::ip(&["link", "set", "dev", &v.host, "up"]).unwrap();
    v
}

/// A 60-byte IPv4/UDP frame carrying `MARK` and `seq`; `flow` varies the
/// source port so fanout hashing spreads frames over queues.
fn marked(seq: u32, flow: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 78, 0, 9, 10, 78, 0, 10,
    ]);
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&(10000 + flow).to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f[42..48].copy_from_slice(MARK);
    f[48..52].copy_from_slice(&seq.to_be_bytes());
    f
}

fn seq_of(frame: &[u8]) -> Option<u32> {
    (frame.len() >= 52 && &frame[42..48] == MARK)
        .then(|| u32::from_be_bytes([frame[48], frame[49], frame[50], frame[51]]))
}

/// Sends `count` marked frames on `q`, retrying frames the ring had no
/// room for, while polling `rxs` as a worker would; returns how often each
/// sequence number arrived, per queue of `rxs`.
fn send_marked(
    q: &mut AfPacketQueue,
    rxs: &mut [AfPacketQueue],
    pool: &mut BufPool,
    count: u32,
) -> Vec<HashMap<u32, u32>> {
    let mut seen = vec![HashMap::new(); rxs.len()];
    let mut seq = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seq < count {
        assert!(Instant::now() < deadline, "tx ring stuck at {seq}");
        let mut b = Batch::new();
        let end = (seq + 32).min(count);
        for s in seq..end {
            let mut buf = pool.get();
            buf.copy_from(&marked(s, (s % 64) as u16)).unwrap();
            b.push(buf).unwrap();
        }
        let out = q.tx_burst(&mut b, pool);
        seq += out.sent as u32; // dropped frames are the last ones: resend
        poll(rxs, pool, &mut seen);
    }
    let rest = collect(rxs, pool, (count as usize).saturating_sub(total(&seen)));
    for (m, r) in seen.iter_mut().zip(rest) {
        for (s, n) in r {
            *m.entry(s).or_insert(0) += n;
        }
    }
    seen
}

fn total(seen: &[HashMap<u32, u32>]) -> usize {
    seen.iter()
        .flat_map(|m| m.values())
        .map(|&n| n as usize)
        .sum()
}

/// One rx burst on each of `qs`, recording marked frames.
fn poll(qs: &mut [AfPacketQueue], pool: &mut BufPool, seen: &mut [HashMap<u32, u32>]) {
    let mut batch = Batch::new();
    for (i, q) in qs.iter_mut().enumerate() {
        q.rx_burst(pool, &mut batch);
        for pkt in batch.drain() {
            if let Some(s) = seq_of(pkt.data()) {
                *seen[i].entry(s).or_insert(0) += 1;
            }
            pool.put(pkt);
        }
    }
}

/// Polls `qs` until `count` marked frames arrived (or 5 s); returns how
/// often each sequence number was seen, per queue.
fn collect(qs: &mut [AfPacketQueue], pool: &mut BufPool, count: usize) -> Vec<HashMap<u32, u32>> {
    let mut seen = vec![HashMap::new(); qs.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    // Keep polling a little after the last one to catch duplicates.
    let mut linger: Option<Instant> = None;
    loop {
        poll(qs, pool, &mut seen);
        if total(&seen) >= count && linger.is_none() {
            linger = Some(Instant::now() + Duration::from_millis(50));
        }
        if linger.is_some_and(|t| Instant::now() > t) || Instant::now() > deadline {
            return seen;
        }
    }
}

fn exactly_once(seen: &[HashMap<u32, u32>], count: u32) {
    let mut all: HashMap<u32, u32> = HashMap::new();
    for m in seen {
        for (s, n) in m {
            *all.entry(*s).or_insert(0) += n;
        }
    }
    assert_eq!(all.len(), count as usize, "distinct frames");
    assert!(all.values().all(|&n| n == 1), "a frame arrived twice");
    assert!((0..count).all(|s| all.contains_key(&s)));
}

#[test]
fn veth_frames_both_ways_are_counted_exactly() {
    let v = veth();
    // A slot size that does not divide the page: slots are laid out per
    // block, with a gap at the end of each.
    let mut cfg = AfPacketConfig::new(&v.host);
    cfg.tx_frame_size = 3008;
    let mut ours = AfPacketPort::create(&cfg).unwrap();
    let mut peer_cfg = AfPacketConfig::new("eth0");
    peer_cfg.netns = Some(v.ns.name().to_owned());
    let mut peer = AfPacketPort::create(&peer_cfg).unwrap();
    assert!(ours.qdisc_bypass());
    let mut q = ours.take_queue(0).unwrap();
    let mut pq = peer.take_queue(0).unwrap();
    let mut pool = BufPool::new(256, 2048);

    let seen = send_marked(&mut q, std::slice::from_mut(&mut pq), &mut pool, 1000);
    exactly_once(&seen, 1000);
    // We ignore what we sent ourselves.
    let mut echo = vec![HashMap::new()];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(30) {
        poll(std::slice::from_mut(&mut q), &mut pool, &mut echo);
    }
    assert!(echo[0].is_empty(), "our own frames came back");

    let seen = send_marked(&mut pq, std::slice::from_mut(&mut q), &mut pool, 1000);
    exactly_once(&seen, 1000);

    let s = ours.counters().snapshot();
    assert!(
        s.tx_packets == 1000 && s.rx_packets >= 1000 && s.drops == 0,
        "{s:?}"
    );
    let (_, kernel_drops) = q.kernel_stats().unwrap();
    assert_eq!(kernel_drops, 0);
}

#[test]
fn fanout_over_two_queues_delivers_each_frame_once() {
    let v = veth();
    let mut cfg = AfPacketConfig::new(&v.host);
    cfg.queues = 2;
    let mut ours = AfPacketPort::create(&cfg).unwrap();
    let mut peer_cfg = AfPacketConfig::new("eth0");
    peer_cfg.netns = Some(v.ns.name().to_owned());
    let mut peer = AfPacketPort::create(&peer_cfg).unwrap();
    let mut qs = vec![ours.take_queue(0).unwrap(), ours.take_queue(1).unwrap()];
    let mut pq = peer.take_queue(0).unwrap();
    let mut pool = BufPool::new(256, 2048);

    let seen = send_marked(&mut pq, &mut qs, &mut pool, 2000);
    exactly_once(&seen, 2000);
    assert!(
        !seen[0].is_empty() && !seen[1].is_empty(),
        "fanout used one queue only: {} / {}",
        seen[0].len(),
        seen[1].len()
    );
}

/// Our answer to an ARP request for `OUR_IP` or an ICMP echo request to it.
fn reply(frame: &[u8]) -> Option<Vec<u8>> {
    reply_for(frame, OUR_IP)
}

/// Our answer to an ARP request for `ip` or an ICMP echo request to it.
fn reply_for(frame: &[u8], ip: [u8; 4]) -> Option<Vec<u8>> {
    if frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 1] {
        if frame[38..42] != ip {
            return None;
        }
        let mut r = vec![0u8; 42];
        r[0..6].copy_from_slice(&frame[6..12]);
        r[6..12].copy_from_slice(&OUR_MAC);
        r[12..22].copy_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        r[22..28].copy_from_slice(&OUR_MAC);
        r[28..32].copy_from_slice(&ip);
        r[32..42].copy_from_slice(&frame[22..32]);
        return Some(r);
    }
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[30..34] != ip {
        return None;
    }
    let ihl = usize::from(frame[14] & 0xf) * 4;
    let tot = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    if frame[23] != 1 || frame.get(14 + ihl) != Some(&8) || 14 + tot > frame.len() {
        return None;
    }
    let mut r = frame[..14 + tot].to_vec();
    r[0..6].copy_from_slice(&frame[6..12]);
    r[6..12].copy_from_slice(&OUR_MAC);
    r[26..30].copy_from_slice(&ip);
    r[30..34].copy_from_slice(&frame[26..30]);
    r[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&r[14..14 + ihl]);
    r[24..26].copy_from_slice(&c.to_be_bytes());
    let i = 14 + ihl;
    r[i] = 0;
    r[i + 2..i + 4].copy_from_slice(&[0, 0]);
    let c = checksum(&r[i..]);
    r[i + 2..i + 4].copy_from_slice(&c.to_be_bytes());
    Some(r)
}

#[test]
fn namespace_kernel_pings_us_over_af_packet() {
    let v = veth();
    let mut ours = AfPacketPort::create(&AfPacketConfig::new(&v.host)).unwrap();
    let mut q = ours.take_queue(0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let responder = std::thread::spawn(move || {
        let mut pool = BufPool::new(64, 2048);
        let mut batch = Batch::new();
        let mut replies = 0;
        while !stop2.load(Ordering::Relaxed) {
            if q.rx_burst(&mut pool, &mut batch) == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            let mut out = Batch::new();
            for pkt in batch.drain() {
                if let Some(r) = reply(pkt.data()) {
                    let mut buf = pool.get();
                    buf.copy_from(&r).unwrap();
                    out.push(buf).unwrap();
                    replies += 1;
                }
                pool.put(pkt);
            }
            q.tx_burst(&mut out, &mut pool);
        }
        replies
    });
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            v.ns.name(),
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
        ])
        .arg("10.78.0.1")
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let replies = responder.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("3 received"),
        "{text}"
    );
    assert!(replies >= 4, "{replies}");
}

#[test]
fn missing_interface_is_named_in_the_error() {
    let err = AfPacketPort::create(&AfPacketConfig::new("p4k8s-nope0")).unwrap_err();
    assert!(err.to_string().contains("p4k8s-nope0"), "{err}");
}

/// Regression: a kick that fails part-way (ENOBUFS from a full device
/// queue) leaves slots pending; later bursts must kick them even when the
/// ring is full, or the port stalls for good.
#[test]
fn tx_ring_recovers_after_the_device_queue_was_full() {
    use p4k8s_cdq::tap::{TapConfig, TapOffloads, TapPort};

    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ns = OwnedNetns::create(&format!("p4k8s-t-{}-{n}", std::process::id())).unwrap();
    let mut cfg = TapConfig::new(ns.name());
    cfg.offloads = TapOffloads::NONE;
    let mut tap = TapPort::create(&cfg).unwrap();
    let mut tq = tap.take_queue(0).unwrap();
    let mut pc = AfPacketConfig::new("eth0");
    pc.netns = Some(ns.name().to_owned());
    let mut port = AfPacketPort::create(&pc).unwrap();
    let mut q = port.take_queue(0).unwrap();
    let mut pool = BufPool::new(256, 2048);

    let burst = |q: &mut AfPacketQueue, pool: &mut BufPool| {
        let mut b = Batch::new();
        for s in 0..64 {
            let mut buf = pool.get();
            buf.copy_from(&marked(s, 0)).unwrap();
            b.push(buf).unwrap();
        }
        q.tx_burst(&mut b, pool).sent
    };
    let mut drain = |pool: &mut BufPool| {
        let mut got = 0;
        let mut batch = Batch::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(50) {
            got += tq.rx_burst(pool, &mut batch);
            batch.recycle(pool);
        }
        got
    };
    // Nobody reads the TAP: its queue fills, then our TX ring.
    for _ in 0..100 {
        burst(&mut q, &mut pool);
    }
    let first = drain(&mut pool);
    assert!(first > 0);
    let mut later = 0;
    for _ in 0..20 {
        burst(&mut q, &mut pool);
        later += drain(&mut pool);
    }
    assert!(later >= 20 * 64 / 2, "only {later} frames after the stall");
}

/// Measurement, not a test: 60-byte frames/s over a veth pair, each way,
/// with a sender thread and a receiving loop: `cargo test -p p4k8s-cdq
/// --release --test af_packet -- --ignored --nocapture measure`.
#[test]
#[ignore]
fn measure_veth_rate() {
    let v = veth();
    let mut ours = AfPacketPort::create(&AfPacketConfig::new(&v.host)).unwrap();
    let mut peer_cfg = AfPacketConfig::new("eth0");
    peer_cfg.netns = Some(v.ns.name().to_owned());
    let mut peer = AfPacketPort::create(&peer_cfg).unwrap();
    let mut q = ours.take_queue(0).unwrap();
    let mut pq = peer.take_queue(0).unwrap();
    rate("us -> peer", &mut q, &mut pq);
    rate("peer -> us", &mut pq, &mut q);
}

/// Sends from `tx` while `rx` receives, for 3 s; prints both rates.
fn rate(dir: &str, tx: &mut AfPacketQueue, rx: &mut AfPacketQueue) {
    let secs = 3.0;
    let mut frame = marked(0, 0);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]); // no L3 handler on the peer
    let r = common::blast(tx, rx, &frame, secs);
    println!(
        "{dir}: sent {} ({:.0} pps), received {} ({:.0} pps), tx ring full {} times, rx kernel drops {:?}",
        r.sent,
        r.sent as f64 / secs,
        r.received,
        r.received as f64 / secs,
        r.tx_full,
        rx.kernel_stats().map(|s| s.1)
    );
}

/// The namespace's kernel sends UDP over the veth with checksum offload on
/// (veth's default), so frames arrive with partial checksums
/// (`TP_STATUS_CSUMNOTREADY`); rx must complete them.
#[test]
fn partial_checksums_from_the_host_stack_are_completed() {
    use etherparse::{Ipv4HeaderSlice, UdpHeaderSlice};

    let v = veth();
    let mut ours = AfPacketPort::create(&AfPacketConfig::new(&v.host)).unwrap();
    let mut q = ours.take_queue(0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let responder = std::thread::spawn(move || {
        let mut pool = BufPool::new(64, 2048);
        let mut batch = Batch::new();
        let (mut udp, mut good) = (0, 0);
        while !stop2.load(Ordering::Relaxed) {
            if q.rx_burst(&mut pool, &mut batch) == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            let mut out = Batch::new();
            for pkt in batch.drain() {
                let f = pkt.data();
                if let Some(r) = reply(f) {
                    let mut buf = pool.get();
                    buf.copy_from(&r).unwrap();
                    out.push(buf).unwrap();
                } else if f.len() > 42
                    && f[12..14] == [8, 0]
                    && f[23] == 17
                    && f[36..38] == [0x27, 0x0f]
                {
                    udp += 1;
                    let ip = Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
                    let u = UdpHeaderSlice::from_slice(&f[34..]).unwrap();
                    let body = &f[42..14 + usize::from(ip.total_len())];
                    if u.checksum()
                        == u.to_header()
                            .calc_checksum_ipv4(&ip.to_header(), body)
                            .unwrap()
                    {
                        good += 1;
                    }
                }
                pool.put(pkt);
            }
            q.tx_burst(&mut out, &mut pool);
        }
        (udp, good, q.csum_completed())
    });
    let out = common::python_in(
        v.ns.name(),
        "import socket,time
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5):
    s.sendto(b'hello p4k8s %d' % i, ('10.78.0.1', 9999)); time.sleep(0.05)",
    );
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let (udp, good, completed) = responder.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(udp >= 3, "only {udp} UDP frames");
    assert_eq!(good, udp, "bad UDP checksums");
    assert!(
        completed >= 1,
        "no partial checksum seen: is veth tx offload off?"
    );
}

/// What the host-port forwarder saw, per direction.
#[derive(Debug, Default, Clone, Copy)]
struct HostFwd {
    /// Frames from the veth (host stack) to the pod, and how many were GSO.
    to_pod: usize,
    to_pod_gso: usize,
    /// Frames from the pod to the veth, and how many were GSO.
    to_host: usize,
    to_host_gso: usize,
    /// Frames the host port's TX ring had no room for.
    tx_drops: usize,
}

/// Forwards between a host port (AF_PACKET with virtio-net headers, the
/// host stack's veth behind it, 10.78.0.2, gateway 10.78.0.1) and a TAP pod
/// (10.77.0.3, gateway 169.254.1.1), passing virtio-net headers through.
fn host_forward(
    mut hq: AfPacketQueue,
    mut pq: p4k8s_cdq::tap::TapQueue,
    pod_mac: [u8; 6],
    stop: Arc<AtomicBool>,
) -> HostFwd {
    use p4k8s_cdq::tap::MAX_GSO_FRAME;
    use p4k8s_packet::buffer::HEADROOM;

    let mut pool = BufPool::new(256, MAX_GSO_FRAME + HEADROOM);
    let mut rx = Batch::new();
    let mut st = HostFwd::default();
    let mut host_mac = [0xffu8; 6];
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        // Host stack -> pod.
        if hq.rx_burst(&mut pool, &mut rx) > 0 {
            idle = false;
            let (mut out, mut back) = (Batch::new(), Batch::new());
            for mut pkt in rx.drain() {
                host_mac.copy_from_slice(&pkt.data()[6..12]);
                if let Some(r) = reply_for(pkt.data(), OUR_IP) {
                    let mut b = pool.get();
                    b.copy_from(&r).unwrap();
                    back.push(b).unwrap();
                    pool.put(pkt);
                    continue;
                }
                let d = pkt.data();
                if d.len() < 34 || d[12..14] != [8, 0] || d[30..34] != [10, 77, 0, 3] {
                    pool.put(pkt);
                    continue;
                }
                st.to_pod += 1;
                if pkt.vnet.is_gso() {
                    st.to_pod_gso += 1;
                }
                let m = pkt.data_mut();
                m[0..6].copy_from_slice(&pod_mac);
                m[6..12].copy_from_slice(&OUR_MAC);
                out.push(pkt).unwrap();
            }
            assert_eq!(pq.tx_burst(&mut out, &mut pool).dropped, 0);
            hq.tx_burst(&mut back, &mut pool);
        }
        // Pod -> host stack.
        if pq.rx_burst(&mut pool, &mut rx) > 0 {
            idle = false;
            let (mut out, mut back) = (Batch::new(), Batch::new());
            for mut pkt in rx.drain() {
                if let Some(r) = reply_for(pkt.data(), [169, 254, 1, 1]) {
                    let mut b = pool.get();
                    b.copy_from(&r).unwrap();
                    back.push(b).unwrap();
                    pool.put(pkt);
                    continue;
                }
                let d = pkt.data();
                if d.len() < 34 || d[12..14] != [8, 0] || d[30..34] != [10, 78, 0, 2] {
                    pool.put(pkt);
                    continue;
                }
                st.to_host += 1;
                if pkt.vnet.is_gso() {
                    st.to_host_gso += 1;
                }
                let m = pkt.data_mut();
                m[0..6].copy_from_slice(&host_mac);
                m[6..12].copy_from_slice(&OUR_MAC);
                out.push(pkt).unwrap();
            }
            // A full ring drops (TCP recovers); counted for the report.
            st.tx_drops += hq.tx_burst(&mut out, &mut pool).dropped;
            pq.tx_burst(&mut back, &mut pool);
        }
        if idle {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    st
}

/// Sends `total` bytes over TCP from `client_ns` to `server_ns` listening
/// on `server_ip:5001`; returns the bytes the server received.
fn tcp_transfer(server_ns: &str, client_ns: &str, server_ip: &str, total: usize) -> usize {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let server = "import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 5001)); s.listen(1); print('ready', flush=True)
c,_=s.accept(); n=0
while True:
    d=c.recv(1<<20)
    if not d: break
    n+=len(d)
print(n, flush=True)";
    let client = format!(
        "import socket
s=socket.create_connection(('{server_ip}',5001),timeout=10)
s.sendall(b'x'*{total}); s.shutdown(socket.SHUT_WR); s.recv(1)"
    );
    let mut srv = Command::new("ip")
        .args([
            "netns", "exec", server_ns, "timeout", "60", "python3", "-c", server,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(srv.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let c = Command::new("ip")
        .args([
            "netns", "exec", client_ns, "timeout", "60", "python3", "-c", &client,
        ])
        .output()
        .unwrap();
    let got = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let _ = srv.wait();
    assert!(
        c.status.success(),
        "client: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    got
}

/// Runs one `total`-byte TCP transfer each way between the namespace behind
/// the host port and a TAP pod, through a forwarding thread; returns the
/// bytes received and seconds taken each way, and the forwarder's stats.
fn host_port_run(total: usize) -> ((usize, f64), (usize, f64), HostFwd) {
    use p4k8s_cdq::tap::{TapConfig, TapOffloads, TapPort};
    use std::net::Ipv4Addr;

    let v = veth();
    netns::ip_in(
        v.ns.name(),
        &["route", "add", "10.77.0.0/24", "via", "10.78.0.1"],
    )
    .unwrap();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pod_ns = OwnedNetns::create(&format!("p4k8s-t-{}-{n}", std::process::id())).unwrap();
    let pod_mac = [2, 0, 0, 0, 0, 3];
    let mut cfg = TapConfig::new(pod_ns.name());
    cfg.mac = pod_mac;
    cfg.ipv4 = Some((Ipv4Addr::new(10, 77, 0, 3), 32));
    cfg.offloads = TapOffloads::ALL;
    let mut tap = TapPort::create(&cfg).unwrap();

    let mut hc = AfPacketConfig::new(&v.host);
    hc.vnet_hdr = true;
    hc.block_size = 256 << 10;
    hc.tx_frame_size = 65664;
    hc.tx_frames = 64;
    let mut host = AfPacketPort::create(&hc).unwrap();
    let (hq, pq) = (host.take_queue(0).unwrap(), tap.take_queue(0).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let fwd = std::thread::spawn(move || host_forward(hq, pq, pod_mac, stop2));

    let t0 = Instant::now();
    let to_pod = tcp_transfer(pod_ns.name(), v.ns.name(), "10.77.0.3", total);
    let t1 = Instant::now();
    let to_host = tcp_transfer(v.ns.name(), pod_ns.name(), "10.78.0.2", total);
    let t2 = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let st = fwd.join().unwrap();
    drop(tap);
    (
        (to_pod, (t1 - t0).as_secs_f64()),
        (to_host, (t2 - t1).as_secs_f64()),
        st,
    )
}

/// The host port carries the host stack's TSO super-frames to a TAP pod and
/// the pod's back to the host stack, virtio-net headers passed through.
#[test]
fn host_port_with_vnet_headers_passes_tso_frames_to_and_from_a_tap_pod() {
    let total = 4 << 20;
    let ((to_pod, _), (to_host, _), st) = host_port_run(total);
    assert_eq!(to_pod, total, "{st:?}");
    assert_eq!(to_host, total, "{st:?}");
    assert!(st.to_pod_gso > 0 && st.to_host_gso > 0, "{st:?}");
}

/// Measurement, not a test: one TCP stream each way between the host stack
/// (behind the AF_PACKET host port) and a TAP pod: `cargo test -p
/// p4k8s-cdq --release --test af_packet -- --ignored --nocapture
/// measure_host_port`.
#[test]
#[ignore]
fn measure_host_port_tcp() {
    let total = 256 << 20;
    let ((a, ta), (b, tb), st) = host_port_run(total);
    println!(
        "host -> pod: {a} bytes in {ta:.2} s = {:.2} Gbit/s; pod -> host: {b} bytes in {tb:.2} s = {:.2} Gbit/s; {st:?}",
        a as f64 * 8.0 / ta / 1e9,
        b as f64 * 8.0 / tb / 1e9
    );
}
