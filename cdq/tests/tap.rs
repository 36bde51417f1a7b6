//! TAP CDQ against real pod namespaces (needs root, `ip`, `ping`, `python3`).
//!
//! Each test makes its own namespaces, `p4k8s-t-<pid>-<n>`, deleted by a
//! drop guard even when the test fails. A test thread plays the dataplane:
//! it answers ARP and ICMP echo for the gateway 169.254.1.1 and forwards
//! IPv4 between pods by destination address.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice};
use p4k8s_cdq::af_packet::{AfPacketConfig, AfPacketPort};
use p4k8s_cdq::netns::OwnedNetns;
use p4k8s_cdq::tap::{
    complete_partial_checksum, segment_tcp_gso, TapConfig, TapOffloads, TapPort, TapQueue,
    VnetHeader, MAX_GSO_FRAME,
};
use p4k8s_packet::buffer::HEADROOM;
use p4k8s_packet::checksum::checksum;
use p4k8s_packet::{Batch, BufPool, PacketBuf, QueuePair};

const GW: [u8; 4] = [169, 254, 1, 1];
const GW_MAC: [u8; 6] = [0xee; 6];

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique_ns() -> OwnedNetns {
    let name = format!(
        "p4k8s-t-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    OwnedNetns::create(&name).expect("create namespace")
}

/// A pod: its TAP is dropped (deleted) before its namespace.
struct Pod {
    port: TapPort,
    ns: OwnedNetns,
    mac: [u8; 6],
    ip: [u8; 4],
}

fn pod(last: u8, prefix: u8, queues: usize, offloads: TapOffloads) -> Pod {
    let ns = unique_ns();
    let mac = [0x02, 0, 0, 0, 0, last];
    let ip = [10, 77, 0, last];
    let mut cfg = TapConfig::new(ns.name());
    cfg.mac = mac;
    cfg.ipv4 = Some((Ipv4Addr::from(ip), prefix));
    cfg.queues = queues;
    cfg.offloads = offloads;
    let port = TapPort::create(&cfg).expect("create TAP");
    Pod { port, ns, mac, ip }
}

fn ip_out(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The reply the gateway owes `frame`: an ARP reply for 169.254.1.1 or an
/// ICMP echo reply from it.
fn gateway_reply(frame: &[u8]) -> Option<Vec<u8>> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype == 0x0806 && frame.len() >= 42 && frame[20..22] == [0, 1] && frame[38..42] == GW {
        let mut r = vec![0u8; 42];
        r[0..6].copy_from_slice(&frame[6..12]);
        r[6..12].copy_from_slice(&GW_MAC);
        r[12..14].copy_from_slice(&[0x08, 0x06]);
        r[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 2]);
        r[22..28].copy_from_slice(&GW_MAC);
        r[28..32].copy_from_slice(&GW);
        r[32..38].copy_from_slice(&frame[22..28]);
        r[38..42].copy_from_slice(&frame[28..32]);
        return Some(r);
    }
    if ethertype != 0x0800 || frame.len() < 42 || frame[30..34] != GW || frame[23] != 1 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0xf) * 4;
    let tot = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    if frame.get(14 + ihl) != Some(&8) || 14 + tot > frame.len() {
        return None;
    }
    let mut r = frame[..14 + tot].to_vec();
    r[0..6].copy_from_slice(&frame[6..12]);
    r[6..12].copy_from_slice(&GW_MAC);
    r[26..30].copy_from_slice(&GW);
    r[30..34].copy_from_slice(&frame[26..30]);
    r[22] = 64;
    r[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&r[14..14 + ihl]);
    r[24..26].copy_from_slice(&c.to_be_bytes());
    let icmp = 14 + ihl;
    r[icmp] = 0;
    r[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
    let c = checksum(&r[icmp..]);
    r[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    Some(r)
}

/// Sends `frame` in a buffer from `pool` (so the pool keeps one size).
fn send_one(q: &mut TapQueue, frame: &[u8], pool: &mut BufPool) -> bool {
    let mut b = Batch::new();
    let mut buf = pool.get();
    buf.copy_from(frame).unwrap();
    b.push(buf).unwrap();
    q.tx_burst(&mut b, pool).sent == 1
}

#[test]
fn pod_pings_gateway_through_two_queues() {
    let mut p = pod(2, 24, 2, TapOffloads::ALL);
    let ns = p.ns.name().to_owned();
    assert!(ip_out(&ns, &["addr", "show", "dev", "eth0"]).contains("10.77.0.2/24"));
    assert!(ip_out(&ns, &["link", "show", "dev", "eth0"]).contains("02:00:00:00:00:02"));
    let routes = ip_out(&ns, &["route"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("169.254.1.1 dev eth0 scope link"),
        "{routes}"
    );

    let mut queues: Vec<TapQueue> = (0..2).map(|q| p.port.take_queue(q).unwrap()).collect();
    assert!(p.port.take_queue(0).is_none());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let responder = std::thread::spawn(move || {
        let mut pool = BufPool::new(64, MAX_GSO_FRAME + HEADROOM);
        let mut batch = Batch::new();
        let (mut arp, mut icmp) = (0, 0);
        while !stop2.load(Ordering::Relaxed) {
            let mut idle = true;
            for q in queues.iter_mut() {
                if q.rx_burst(&mut pool, &mut batch) > 0 {
                    idle = false;
                }
                for pkt in batch.drain().collect::<Vec<_>>() {
                    if let Some(r) = gateway_reply(pkt.data()) {
                        if r.len() == 42 {
                            arp += 1;
                        } else {
                            icmp += 1;
                        }
                        assert!(send_one(q, &r, &mut pool));
                    }
                    pool.put(pkt);
                }
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (arp, icmp)
    });
    let out = Command::new("ip")
        .args([
            "netns", "exec", &ns, "ping", "-c", "3", "-i", "0.2", "-W", "1",
        ])
        .arg("169.254.1.1")
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let (arp, icmp) = responder.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping failed: {text}");
    assert!(text.contains("3 received"), "{text}");
    assert!(arp >= 1 && icmp == 3, "arp {arp} icmp {icmp}");
    let stats = p.port.counters().snapshot();
    assert!(stats.rx_packets >= 4 && stats.tx_packets >= 4, "{stats:?}");

    // Removal deletes the interface from the pod.
    let Pod {
        port, ns: guard, ..
    } = p;
    port.remove().unwrap();
    let shown = Command::new("ip")
        .args(["-n", guard.name(), "link", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(!shown.status.success(), "eth0 still there after remove");
}

/// `cat` inside the namespace (sysfs shows its devices only there).
fn cat_in(ns: &str, path: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", path])
        .output()
        .unwrap();
    assert!(out.status.success(), "cat {path} in {ns}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn rps_cpus_and_tx_queue_len_are_set_in_the_pod() {
    // Defaults: the longer transmit queue, no RPS.
    let p = pod(6, 24, 1, TapOffloads::ALL);
    let ns = p.ns.name().to_owned();
    assert!(ip_out(&ns, &["link", "show", "dev", "eth0"]).contains("qlen 4000"));
    let none = cat_in(&ns, "/sys/class/net/eth0/queues/rx-0/rps_cpus");
    assert!(none.chars().all(|c| c == '0' || c == ','), "{none}");
    drop(p);

    // Given: every receive queue steered to core 0, the queue length set.
    let guard = unique_ns();
    let mut cfg = TapConfig::new(guard.name());
    cfg.queues = 2;
    cfg.rps_cpus = vec![0];
    cfg.tx_queue_len = Some(1234);
    let port = TapPort::create(&cfg).expect("create TAP");
    let ns = guard.name();
    assert!(ip_out(ns, &["link", "show", "dev", "eth0"]).contains("qlen 1234"));
    for q in 0..2 {
        let mask = cat_in(ns, &format!("/sys/class/net/eth0/queues/rx-{q}/rps_cpus"));
        // The kernel prints as many words as it has CPUs: the last is 1.
        assert!(
            mask.trim_start_matches(['0', ',']) == "1" && mask.ends_with('1'),
            "rx-{q}: {mask}"
        );
    }
    drop(port);
}

#[test]
fn dropping_the_port_deletes_the_interface() {
    let p = pod(4, 24, 3, TapOffloads::NONE);
    assert!(!p.port.offloads().csum);
    let Pod { port, ns, .. } = p;
    assert!(ip_out(ns.name(), &["link", "show", "dev", "eth0"]).contains("eth0"));
    drop(port);
    assert!(!ip_out(ns.name(), &["link", "show"]).contains("eth0"));
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let p = pod(5, 24, 1, TapOffloads::NONE);
    let mut cfg = TapConfig::new(p.ns.name());
    cfg.ifname = "eth0".into(); // taken by `p`
    let err = TapPort::create(&cfg).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("eth0") && text.contains(p.ns.name()),
        "{text}"
    );
    // Neither in the pod nor here is a temporary p4t* device left.
    assert!(!ip_out(p.ns.name(), &["link", "show"]).contains("p4t"));
    let here = Command::new("ip").args(["link", "show"]).output().unwrap();
    let here = String::from_utf8_lossy(&here.stdout);
    let mine = format!("p4t{:x}q", std::process::id() & 0xff_ffff);
    assert!(!here.contains(&mine), "{here}");
}

#[test]
fn missing_namespace_is_named_in_the_error() {
    let err = TapPort::create(&TapConfig::new("p4k8s-t-does-not-exist")).unwrap_err();
    assert!(err.to_string().contains("p4k8s-t-does-not-exist"), "{err}");
}

/// What the forwarder saw.
#[derive(Debug, Default, Clone, Copy)]
struct FwdStats {
    frames: usize,
    gso_frames: usize,
    larger_than_mtu: usize,
    max_len: usize,
    segments_checked: usize,
    bytes_a_to_b: usize,
    /// GSO frames whose header was not TCPv4 with a partial checksum
    /// and a plausible MSS.
    odd_gso_headers: usize,
}

/// How the forwarder hands GSO frames on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// With their virtio-net headers, unchanged (TAP to TAP).
    Passthrough,
    /// Cut with `segment_tcp_gso` (each segment's checksums verified) and
    /// partial checksums completed: the receiving pod checks them all.
    Segment,
}

/// Checks one segment's IPv4 and TCP checksums with etherparse.
fn verify_segment(f: &[u8]) {
    let ip = Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
    assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
    assert!(usize::from(ip.total_len()) + 14 <= 1514);
    let l4 = 14 + ip.slice().len();
    let tcp = TcpHeaderSlice::from_slice(&f[l4..]).unwrap();
    let body = &f[l4 + tcp.slice().len()..14 + usize::from(ip.total_len())];
    assert_eq!(tcp.checksum(), tcp.calc_checksum_ipv4(&ip, body).unwrap());
}

/// Polls both pods' queue 0 until `stop`, answering for the gateway and
/// forwarding IPv4 between them.
fn forward(
    mut qa: TapQueue,
    mut qb: TapQueue,
    pods: [([u8; 6], [u8; 4]); 2],
    mode: Mode,
    stop: Arc<AtomicBool>,
) -> FwdStats {
    // One pool of GSO-sized buffers: segments go back to it after tx.
    let mut pool = BufPool::new(128, MAX_GSO_FRAME + HEADROOM);
    let mut rx = Batch::new();
    let mut st = FwdStats::default();
    let mut out: Vec<PacketBuf> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for from in 0..2 {
            let (src, dst) = if from == 0 {
                (&mut qa, &mut qb)
            } else {
                (&mut qb, &mut qa)
            };
            let n = src.rx_burst(&mut pool, &mut rx);
            if n == 0 {
                continue;
            }
            idle = false;
            for mut pkt in rx.drain() {
                let mut vnet = pkt.vnet;
                if let Some(r) = gateway_reply(pkt.data()) {
                    assert!(send_one(src, &r, &mut pool));
                    pool.put(pkt);
                    continue;
                }
                let d = pkt.data();
                let to = pods
                    .iter()
                    .position(|(_, ip)| d.len() >= 34 && d[30..34] == *ip);
                if d[12..14] != [0x08, 0x00] || to != Some(1 - from) {
                    pool.put(pkt);
                    continue;
                }
                st.frames += 1;
                st.max_len = st.max_len.max(d.len());
                if d.len() > 1514 {
                    st.larger_than_mtu += 1;
                }
                if vnet.is_gso() {
                    st.gso_frames += 1;
                    let plausible = vnet.gso_kind() == p4k8s_cdq::tap::VIRTIO_NET_HDR_GSO_TCPV4
                        && vnet.needs_csum()
                        && (536..=1460).contains(&vnet.gso_size)
                        && usize::from(vnet.csum_start) == 34
                        && vnet.csum_offset == 16;
                    if !plausible {
                        st.odd_gso_headers += 1;
                    }
                }
                if from == 0 {
                    st.bytes_a_to_b += d.len();
                }
                let dm = pkt.data_mut();
                dm[0..6].copy_from_slice(&pods[1 - from].0);
                dm[6..12].copy_from_slice(&GW_MAC);
                match mode {
                    Mode::Passthrough => out.push(pkt),
                    Mode::Segment if vnet.is_tcp_gso() => {
                        segment_tcp_gso(pkt.data(), &vnet, &mut pool, |s| {
                            verify_segment(s.data());
                            st.segments_checked += 1;
                            assert_eq!(s.vnet, VnetHeader::NONE);
                            out.push(s);
                        })
                        .unwrap();
                        pool.put(pkt);
                    }
                    Mode::Segment => {
                        complete_partial_checksum(pkt.data_mut(), &mut vnet).unwrap();
                        pkt.vnet = vnet;
                        out.push(pkt);
                    }
                }
            }
            // Transmit in bursts; segments go back to `pool` (same owner).
            while !out.is_empty() {
                let take = out.len().min(p4k8s_packet::MAX_BURST);
                let mut b = Batch::new();
                for p in out.drain(..take) {
                    b.push(p).unwrap();
                }
                let o = dst.tx_burst(&mut b, &mut pool);
                assert_eq!(o.dropped, 0);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    st
}

const SERVER: &str = "import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 5001)); s.listen(1); print('ready', flush=True)
c,_=s.accept(); n=0
while True:
    d=c.recv(1<<20)
    if not d: break
    n+=len(d)
print(n, flush=True)";

fn client(total: usize) -> String {
    format!(
        "import socket,time
s=socket.create_connection(('10.77.0.3',5001),timeout=10)
b=b'x'*65536
t=time.time(); left={total}
while left>0:
    k=min(left,len(b)); s.sendall(b[:k]); left-=k
s.shutdown(socket.SHUT_WR); s.recv(1); print(time.time()-t, flush=True)"
    )
}

/// Runs a `total`-byte TCP transfer from pod A (10.77.0.2) to pod B
/// (10.77.0.3) through the forwarder; returns (bytes received by B,
/// seconds, forwarder stats).
fn transfer(mode: Mode, offloads: TapOffloads, total: usize) -> (usize, f64, FwdStats) {
    let mut a = pod(2, 32, 1, offloads);
    let mut b = pod(3, 32, 1, offloads);
    assert_eq!(a.port.offloads().tso, offloads.tso, "kernel refused TSO");
    let stop = Arc::new(AtomicBool::new(false));
    let pods = [(a.mac, a.ip), (b.mac, b.ip)];
    let (qa, qb) = (a.port.take_queue(0).unwrap(), b.port.take_queue(0).unwrap());
    let stop2 = Arc::clone(&stop);
    let fwd = std::thread::spawn(move || forward(qa, qb, pods, mode, stop2));

    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            b.ns.name(),
            "timeout",
            "120",
            "python3",
            "-c",
            SERVER,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let t0 = Instant::now();
    let c = Command::new("ip")
        .args([
            "netns",
            "exec",
            a.ns.name(),
            "timeout",
            "120",
            "python3",
            "-c",
        ])
        .arg(client(total))
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let got: usize = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let _ = server.wait();
    stop.store(true, Ordering::Relaxed);
    let st = fwd.join().unwrap();
    assert!(
        c.status.success(),
        "client failed ({}): {}",
        c.status,
        String::from_utf8_lossy(&c.stderr)
    );
    drop((a, b));
    (got, secs, st)
}

#[test]
fn tcp_from_pod_arrives_as_gso_frames_and_passes_through() {
    let (got, _, st) = transfer(Mode::Passthrough, TapOffloads::ALL, 1 << 20);
    assert_eq!(got, 1 << 20, "{st:?}");
    assert!(st.gso_frames > 0 && st.larger_than_mtu > 0, "{st:?}");
    assert!(st.max_len > 1514, "{st:?}");
    assert_eq!(st.odd_gso_headers, 0, "{st:?}");
}

#[test]
fn tcp_from_pod_segmented_in_software_is_accepted_by_the_peer() {
    let (got, _, st) = transfer(Mode::Segment, TapOffloads::ALL, 1 << 20);
    assert_eq!(got, 1 << 20, "{st:?}");
    assert!(
        st.gso_frames > 0 && st.segments_checked > st.gso_frames,
        "{st:?}"
    );
}

/// Measurement, not a test: one TCP stream from pod A to pod B through a
/// forwarding thread, with and without TSO: `cargo test -p p4k8s-cdq
/// --release --test tap -- --ignored --nocapture --test-threads 1
/// measure_tcp`.
#[test]
#[ignore]
fn measure_tcp_bandwidth() {
    for (mode, offloads) in [
        (Mode::Passthrough, TapOffloads::ALL),
        (Mode::Segment, TapOffloads::ALL),
        (Mode::Passthrough, TapOffloads::NONE),
    ] {
        let total = 256 << 20;
        let (got, secs, st) = transfer(mode, offloads, total);
        println!(
            "{mode:?}, TSO {}: {got} bytes in {secs:.2} s = {:.2} Gbit/s; {} frames, {} GSO, max {} bytes",
            offloads.tso,
            got as f64 * 8.0 / secs / 1e9,
            st.frames,
            st.gso_frames,
            st.max_len
        );
    }
}

/// Measurement, not a test: packets/s of the rx loop (an AF_PACKET port in
/// the pod blasts 60-byte frames out of its eth0) and of the tx loop (we
/// write 60-byte frames into the pod): `cargo test -p p4k8s-cdq --release
/// --test tap -- --ignored --nocapture --test-threads 1 measure_small`.
#[test]
#[ignore]
fn measure_small_packet_rate() {
    let mut p = pod(2, 24, 1, TapOffloads::ALL);
    let mut q = p.port.take_queue(0).unwrap();
    let ns = p.ns.name().to_owned();
    // A pod-side blaster: an AF_PACKET port on the pod's eth0 (TX ring,
    // one sendto per 64 frames) sending 60-byte frames for 3 s.
    let mut cfg = AfPacketConfig::new("eth0");
    cfg.netns = Some(ns.clone());
    let mut blast_port = AfPacketPort::create(&cfg).unwrap();
    let mut bq = blast_port.take_queue(0).unwrap();
    let mut frame = vec![0u8; 60];
    frame[0..6].copy_from_slice(&GW_MAC);
    frame[6..12].copy_from_slice(&p.mac);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    let blaster = std::thread::spawn(move || {
        let mut pool = BufPool::new(128, 2048);
        let mut b = Batch::new();
        let t0 = Instant::now();
        let mut n = 0u64;
        let mut dropped = 0u64;
        while t0.elapsed() < Duration::from_secs(3) {
            for _ in 0..64 {
                let mut buf = pool.get();
                buf.copy_from(&frame).unwrap();
                b.push(buf).unwrap();
            }
            let o = bq.tx_burst(&mut b, &mut pool);
            n += o.sent as u64;
            dropped += o.dropped as u64;
        }
        (n, dropped)
    });
    let mut pool = BufPool::new(256, 2048);
    let mut batch = Batch::new();
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(3) {
        n += q.rx_burst(&mut pool, &mut batch) as u64;
        batch.recycle(&mut pool);
    }
    let (sent, ring_full) = blaster.join().unwrap();
    println!(
        "rx: {n} frames of 60 bytes in 3 s = {:.0} pps (pod's AF_PACKET sent {sent}, found its ring full {ring_full} times; pod eth0 TX counters: {})",
        n as f64 / 3.0,
        ip_out(&ns, &["-s", "link", "show", "dev", "eth0"])
            .lines()
            .nth(5)
            .unwrap_or("")
            .trim()
    );

    // tx: frames to an address the pod does not have are dropped by its
    // stack after the TAP accepted them, which is what we time.
    let mut frame = vec![0u8; 60];
    frame[0..6].copy_from_slice(&p.mac);
    frame[6..12].copy_from_slice(&GW_MAC);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let t0 = Instant::now();
    let mut sent = 0usize;
    while t0.elapsed() < Duration::from_secs(3) {
        for _ in 0..32 {
            batch.push(pool.get()).unwrap();
        }
        for pkt in batch.as_mut_slice() {
            pkt.copy_from(&frame).unwrap();
        }
        sent += q.tx_burst(&mut batch, &mut pool).sent;
    }
    println!(
        "tx: {sent} frames of 60 bytes in 3 s = {:.0} pps",
        sent as f64 / 3.0
    );
}
