//! End to end in real network namespaces (needs root; skipped otherwise).
//!
//! Each test builds its own world: four pod namespaces `a`..`d`
//! (`p4k8s-e2e-<pid>-<n>-a`, ...) on TAP CDQs (ports 2..5, 10.1.0.2..5/32,
//! MACs 02:00:00:00:00:0N, no offloads), a host port (a veth pair: one end
//! in the host namespace with 10.1.255.1/16 and MAC ee:ee:ee:ee:ee:ee,
//! Calico's gateway MAC, so the host accepts what pods send via their
//! gateway; the other end is AF_PACKET port 1), then starts `p4k8s run`
//! and programs it with `p4k8s ctl apply`:
//!
//! - the four pods;
//! - TCP service 10.96.0.10:80 -> pods b, c, d port 8080;
//! - UDP service 10.96.0.11:53 -> pods c, d port 5353;
//! - TCP service 10.96.0.12:80 -> pod b port 8081 and UDP service
//!   10.96.0.13:53 -> pod b port 5353 (pod b reaching them always hairpins);
//! - on pod d, an ingress TCP policy allowing 10.1.0.0/16 on port 8080
//!   only (so port 9000 is denied).
//!
//! Pods b, c and d run a small Python server that answers with the pod's
//! name on HTTP 8080 and 8081, TCP 9000 and UDP 5353. Checks use real
//! tools through `ip netns exec`: ping, curl, iperf3, Python clients.
//! Everything created is removed by [`World`]'s `Drop`, also when a check
//! fails; the tests run one at a time.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One world at a time: they share the host address 10.1.255.1.
static SERIAL: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

const PODS: [(&str, u8); 4] = [("a", 2), ("b", 3), ("c", 4), ("d", 5)];

/// Answers with the pod's name: HTTP/1.1 (keep-alive) on 8080 and 8081
/// (`GET /blob`: 1 MiB; `POST`: name, length and SHA-256 of the body), a
/// line on TCP 9000, `name:payload` on UDP 5353; touches `argv[2]` when
/// listening.
const ENDPOINT_PY: &str = r#"
import hashlib, http.server, socket, socketserver, sys, threading
name, ready = sys.argv[1], sys.argv[2]
BLOB = bytes((i * 7 + i // 251) & 0xFF for i in range(1 << 20))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = BLOB if self.path == "/blob" else (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        body = ("%s %d %s\n" % (name, len(data), hashlib.sha256(data).hexdigest())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
web = S(("0.0.0.0", 8080), H)
# The same on 8081, the target port of the services whose only endpoint is
# pod b (an endpoint belongs to one service: set_meta is keyed on it).
web2 = S(("0.0.0.0", 8081), H)
threading.Thread(target=web2.serve_forever, daemon=True).start()
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 9000))
tcp.listen(64)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 5353))
def tcp_loop():
    while True:
        c, _ = tcp.accept()
        c.sendall((name + "\n").encode())
        c.close()
def udp_loop():
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(name.encode() + b":" + data, peer)
threading.Thread(target=tcp_loop, daemon=True).start()
threading.Thread(target=udp_loop, daemon=True).start()
open(ready, "w").close()
web.serve_forever()
"#;

/// Clients; each prints one result per line and exits non-zero on failure.
/// - `http HOST PORT N`: N connections, one GET each: the bodies.
/// - `keepalive HOST PORT N`: one connection, N GETs: the bodies.
/// - `bulk HOST PORT N`: N connections, each POSTs 1 MiB (the server
///   answers its length and SHA-256) and GETs 1 MiB back: `name ok`.
/// - `udp HOST PORT N`: N sockets, one datagram each: `src_ip:src_port body`.
/// - `tcp HOST PORT TIMEOUT`: connect and read a line, or `TIMEOUT` (exit 2).
const CLIENT_PY: &str = r#"
import hashlib, http.client, socket, sys
mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "http":
    for _ in range(int(n)):
        c = http.client.HTTPConnection(host, port, timeout=3)
        c.request("GET", "/")
        r = c.getresponse()
        print(r.read().decode().strip(), flush=True)
        c.close()
elif mode == "keepalive":
    c = http.client.HTTPConnection(host, port, timeout=3)
    for _ in range(int(n)):
        c.request("GET", "/")
        r = c.getresponse()
        print(r.read().decode().strip(), flush=True)
    c.close()
elif mode == "bulk":
    # N connections, each uploads 1 MiB and downloads 1 MiB: "name ok".
    blob = bytes((i * 7 + i // 251) & 0xFF for i in range(1 << 20))
    digest = hashlib.sha256(blob).hexdigest()
    for _ in range(int(n)):
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("POST", "/", body=blob)
        who, size, sha = c.getresponse().read().decode().split()
        assert (int(size), sha) == (len(blob), digest), "upload to %s corrupted" % who
        c.request("GET", "/blob")
        assert c.getresponse().read() == blob, "download from %s corrupted" % who
        print(who, "ok", flush=True)
        c.close()
elif mode == "udp":
    for i in range(int(n)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(b"ping%d" % i, (host, port))
        data, peer = s.recvfrom(2048)
        print("%s:%d %s" % (peer[0], peer[1], data.decode()), flush=True)
        s.close()
elif mode == "tcp":
    try:
        s = socket.create_connection((host, port), timeout=float(n))
        s.settimeout(float(n))
        print(s.makefile().readline().strip())
    except socket.timeout:
        print("TIMEOUT")
        sys.exit(2)
"#;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs a command; its output, or a panic naming it and its stderr.
fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command, ignoring failure (clean-up and optional tuning).
fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything one test creates; `Drop` removes it all.
struct World {
    /// `p4k8s-e2e-<pid>-<n>`.
    tag: String,
    dir: PathBuf,
    /// Namespaces created so far.
    namespaces: Vec<String>,
    /// The host end of the veth pair, once created.
    veth: Option<String>,
    /// The host port's end (AF_PACKET).
    veth_port: String,
    target: Option<Child>,
    /// Helper processes in pods.
    helpers: Vec<Child>,
    p4rt: SocketAddr,
    bin: &'static str,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl World {
    /// The namespace of pod `pod` (`a`..`d`).
    fn ns(&self, pod: &str) -> String {
        format!("{}-{pod}", self.tag)
    }

    /// Builds the world with one worker, starts the target and applies the
    /// scenario; `None` when not root.
    fn start() -> Option<World> {
        Self::start_with(1)
    }

    /// The world with `workers` workers: every TAP gets one queue per
    /// worker.
    fn start_with(workers: usize) -> Option<World> {
        if !is_root() {
            eprintln!("skipped: creating network namespaces needs root");
            return None;
        }
        for tool in ["ip", "python3", "ping"] {
            assert!(
                have(tool),
                "{tool} is needed (scripts/setup.sh installs it)"
            );
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("p4k8s-e2e-{pid}-{n}");
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut w = World {
            tag,
            dir,
            namespaces: Vec::new(),
            veth: None,
            // Interface names hold 15 characters.
            veth_port: format!("p4e-hp{pid}-{n}"),
            target: None,
            helpers: Vec::new(),
            p4rt: SocketAddr::from(([127, 0, 0, 1], free_port())),
            bin: env!("CARGO_BIN_EXE_p4k8s"),
            _serial: serial,
        };
        for (pod, _) in PODS {
            let ns = w.ns(pod);
            sh(&["ip", "netns", "add", &ns]);
            w.namespaces.push(ns.clone());
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        let host = format!("p4e-h{pid}-{n}");
        sh(&[
            "ip",
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            &w.veth_port,
        ]);
        w.veth = Some(host.clone());
        for ifname in [&host, &w.veth_port] {
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
                "1",
            );
            // Frames larger than the MTU would not fit the port's buffers.
            try_sh(&["ethtool", "-K", ifname, "tso", "off", "gso", "off"]);
        }
        sh(&["ip", "link", "set", &host, "address", "ee:ee:ee:ee:ee:ee"]);
        // The connected route of 10.1.255.1/16 sends 10.1.0.0/16 through the host port.
        sh(&["ip", "addr", "add", "10.1.255.1/16", "dev", &host]);
        sh(&["ip", "link", "set", &w.veth_port, "up"]);
        sh(&["ip", "link", "set", &host, "up"]);

        let mut config = format!(
            "[dataplane]\nworkers = {workers}\n\n[[port]]\nid = 1\nkind = \"af_packet\"\nifname = \"{}\"\n",
            w.veth_port
        );
        for (pod, port) in PODS {
            let _ = write!(
                config,
                "\n[[port]]\nid = {port}\nkind = \"tap\"\nnetns = \"{}\"\nifname = \"eth0\"\n\
                 mac = \"02:00:00:00:00:{port:02x}\"\nipv4 = \"10.1.0.{port}/32\"\noffloads = false\n",
                w.ns(pod)
            );
        }
        let config_path = w.dir.join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(w.dir.join("target.log")).expect("log file");
        let target = Command::new(w.bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--p4rt-addr")
            .arg(w.p4rt.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start p4k8s run");
        w.target = Some(target);
        let addr = w.p4rt;
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Some(status) = w.target.as_mut().and_then(|t| t.try_wait().ok().flatten()) {
                panic!("p4k8s run exited with {status}:\n{}", w.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "p4k8s run not listening on {addr} within 15 s:\n{}",
                w.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        w.apply();
        w.start_endpoints();
        Some(w)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("target.log")).unwrap_or_default()
    }

    fn apply(&self) {
        let mut scenario = String::new();
        for (_, port) in PODS {
            let _ = write!(
                scenario,
                "[[pod]]\nip = \"10.1.0.{port}\"\nport = {port}\nmac = \"02:00:00:00:00:{port:02x}\"\n\n"
            );
        }
        scenario.push_str(
            r#"[[service]]
vip = "10.96.0.10"
port = 80
proto = "tcp"
endpoints = ["10.1.0.3:8080", "10.1.0.4:8080", "10.1.0.5:8080"]

[[service]]
vip = "10.96.0.11"
port = 53
proto = "udp"
endpoints = ["10.1.0.4:5353", "10.1.0.5:5353"]

[[service]]
vip = "10.96.0.12"
port = 80
proto = "tcp"
endpoints = ["10.1.0.3:8081"]

[[service]]
vip = "10.96.0.13"
port = 53
proto = "udp"
endpoints = ["10.1.0.3:5353"]

[[policy]]
pod = "10.1.0.5"
direction = "ingress"
proto = "tcp"
peers = ["10.1.0.0/16"]
ports = [[8080, 8080]]
"#,
        );
        let path = self.dir.join("scenario.toml");
        std::fs::write(&path, scenario).expect("write scenario");
        let out = Command::new(self.bin)
            .args([
                "ctl",
                "apply",
                "--addr",
                &self.p4rt.to_string(),
                "--device-id",
                "1",
            ])
            .arg(&path)
            .output()
            .expect("run p4k8s ctl apply");
        assert!(
            out.status.success(),
            "ctl apply failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the endpoint server in pods b, c and d; waits until they listen.
    fn start_endpoints(&mut self) {
        let script = self.dir.join("endpoint.py");
        std::fs::write(&script, ENDPOINT_PY).expect("write endpoint.py");
        std::fs::write(self.dir.join("client.py"), CLIENT_PY).expect("write client.py");
        for pod in ["b", "c", "d"] {
            let ready = self.dir.join(format!("ready-{pod}"));
            let child = self.spawn_in(pod, &["python3", &path(&script), pod, &path(&ready)]);
            self.helpers.push(child);
        }
        for pod in ["b", "c", "d"] {
            let ready = self.dir.join(format!("ready-{pod}"));
            wait_for(
                &format!("endpoint server in pod {pod}"),
                Duration::from_secs(10),
                || ready.exists(),
            );
        }
    }

    /// Spawns `args` in pod `pod`, output discarded.
    fn spawn_in(&self, pod: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(pod)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?} in {pod}: {e}"))
    }

    /// Runs `args` in pod `pod` (or the host namespace for `None`).
    fn run_in(&self, pod: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = match pod {
            Some(pod) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.ns(pod)]).args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Runs `args` in `pod`; its stdout lines, or a panic with its output.
    fn check_in(&self, pod: Option<&str>, args: &[&str]) -> Vec<String> {
        let out = self.run_in(pod, args);
        assert!(
            out.status.success(),
            "{args:?} in {}: {}\nstdout: {}\nstderr: {}\n--- target log ---\n{}",
            pod.unwrap_or("host"),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs the Python client in pod `pod`.
    fn client(&self, pod: &str, args: &[&str]) -> Output {
        let script = path(&self.dir.join("client.py"));
        let mut all = vec!["python3", script.as_str()];
        all.extend_from_slice(args);
        self.run_in(Some(pod), &all)
    }

    /// `p4k8s ctl read --table <table>`: its output, which must succeed.
    fn ctl_read(&self, table: &str) -> String {
        let out = Command::new(self.bin)
            .args([
                "ctl",
                "read",
                "--addr",
                &self.p4rt.to_string(),
                "--table",
                table,
            ])
            .output()
            .expect("run p4k8s ctl read");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn client_ok(&self, pod: &str, args: &[&str]) -> Vec<String> {
        let script = path(&self.dir.join("client.py"));
        let mut all = vec!["python3", script.as_str()];
        all.extend_from_slice(args);
        self.check_in(Some(pod), &all)
    }

    /// Asks the target to reload its configuration file (SIGHUP).
    fn hup(&self) {
        let target = self.target.as_ref().expect("target running");
        sh(&["kill", "-HUP", &target.id().to_string()]);
    }

    /// Asks the target to log its counters (SIGUSR1).
    fn usr1(&self) {
        let target = self.target.as_ref().expect("target running");
        sh(&["kill", "-USR1", &target.id().to_string()]);
    }

    /// Stops the target with SIGTERM; it must exit 0 within 10 s.
    fn stop(mut self) {
        let mut target = self.target.take().expect("target running");
        sh(&["kill", "-TERM", &target.id().to_string()]);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = target.try_wait().expect("wait target") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = target.kill();
                let _ = target.wait();
                panic!("p4k8s run did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "p4k8s run exited with {status}:\n{}",
            self.log()
        );
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

impl Drop for World {
    fn drop(&mut self) {
        for mut h in self.helpers.drain(..) {
            let _ = h.kill();
            let _ = h.wait();
        }
        if let Some(mut t) = self.target.take() {
            let _ = t.kill();
            let _ = t.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- last lines of the target's log ({}) ---",
                self.dir.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Some(v) = self.veth.take() {
            try_sh(&["ip", "link", "del", &v]);
        }
        for ns in self.namespaces.drain(..) {
            try_sh(&["ip", "netns", "del", &ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ping(w: &World, from: Option<&str>, to: &str) {
    w.check_in(from, &["ping", "-c", "2", "-i", "0.2", "-W", "2", to]);
}

#[test]
fn pods_reach_each_other_ping_http_iperf3() {
    let Some(mut w) = World::start() else { return };
    ping(&w, Some("a"), "10.1.0.3");
    ping(&w, Some("a"), "10.1.0.4");
    ping(&w, Some("b"), "10.1.0.5");
    ping(&w, Some("d"), "10.1.0.2");

    // HTTP: a 1 MiB file from `python3 -m http.server` in pod b.
    let www = w.dir.join("www");
    std::fs::create_dir_all(&www).expect("www dir");
    let blob: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(www.join("blob"), &blob).expect("write blob");
    let server = w.spawn_in(
        "b",
        &[
            "python3",
            "-m",
            "http.server",
            "8000",
            "--bind",
            "0.0.0.0",
            "--directory",
            &path(&www),
        ],
    );
    w.helpers.push(server);
    let ns_b = w.ns("b");
    wait_for("http.server in pod b", Duration::from_secs(10), || {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns_b, "ss", "-Hltn", "sport = :8000"])
            .output();
        out.is_ok_and(|o| !o.stdout.is_empty())
    });
    let fetched = w.dir.join("fetched");
    if have("curl") {
        w.check_in(
            Some("a"),
            &[
                "curl",
                "-sSf",
                "--max-time",
                "10",
                "-o",
                &path(&fetched),
                "http://10.1.0.3:8000/blob",
            ],
        );
    } else {
        eprintln!("curl missing: fetching with python3 instead");
        w.check_in(
            Some("a"),
            &[
                "python3",
                "-c",
                "import sys, urllib.request; open(sys.argv[2], 'wb').write(urllib.request.urlopen(sys.argv[1], timeout=10).read())",
                "http://10.1.0.3:8000/blob",
                &path(&fetched),
            ],
        );
    }
    assert!(
        std::fs::read(&fetched).expect("fetched file") == blob,
        "the file fetched over HTTP differs"
    );

    // TCP with a name from the endpoint server.
    assert_eq!(w.client_ok("a", &["tcp", "10.1.0.4", "9000", "3"]), ["c"]);

    // iperf3: 2 s of TCP from pod a to pod b.
    if have("iperf3") {
        let server = w.spawn_in("b", &["iperf3", "-s", "-1", "-p", "5201"]);
        w.helpers.push(server);
        wait_for("iperf3 server in pod b", Duration::from_secs(10), || {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns_b, "ss", "-Hltn", "sport = :5201"])
                .output();
            out.is_ok_and(|o| !o.stdout.is_empty())
        });
        let lines = w.check_in(
            Some("a"),
            &[
                "iperf3", "-c", "10.1.0.3", "-p", "5201", "-t", "2", "-f", "m",
            ],
        );
        let receiver = lines
            .iter()
            .find(|l| l.contains("receiver"))
            .cloned()
            .unwrap_or_default();
        eprintln!("iperf3 pod a -> pod b: {receiver}");
        assert!(receiver.contains("Mbits/sec"), "iperf3 output: {lines:?}");
    } else {
        eprintln!("iperf3 missing (scripts/setup.sh installs it): skipped");
    }
    w.stop();
}

#[test]
fn tcp_service_balances_over_every_endpoint_and_pins_connections() {
    let Some(w) = World::start() else { return };
    // Many short connections to the VIP reach every endpoint; each
    // completed exchange proves the replies came back from the VIP (the
    // client's socket is connected to 10.96.0.10:80).
    let names = w.client_ok("a", &["http", "10.96.0.10", "80", "30"]);
    assert_eq!(names.len(), 30);
    let seen: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        seen,
        BTreeSet::from(["b", "c", "d"]),
        "endpoints seen: {names:?}"
    );
    // The connections were learned, and `ctl read` shows them.
    let flows = w.ctl_read("pinned_flows");
    let to_vip = flows
        .lines()
        .filter(|l| l.contains("meta.src_ip=10.1.0.2 meta.dst_ip=10.96.0.10"))
        .count();
    assert!(to_vip >= 1, "no learned flow to the VIP in:\n{flows}");
    // Bulk both ways through the NAT: 1 MiB up and down per connection.
    let bulk = w.client_ok("a", &["bulk", "10.96.0.10", "80", "6"]);
    assert_eq!(bulk.len(), 6, "{bulk:?}");
    assert!(bulk.iter().all(|l| l.ends_with(" ok")), "{bulk:?}");
    // One connection stays on its endpoint.
    let names = w.client_ok("a", &["keepalive", "10.96.0.10", "80", "10"]);
    assert_eq!(names.len(), 10);
    assert!(
        names.iter().all(|n| *n == names[0]),
        "one connection moved between endpoints: {names:?}"
    );
    w.stop();
}

/// Two workers: every TAP has two queues, each polled by one worker, and
/// the pods' kernels spread their flows over both. Short and long
/// connections through the VIP still work whichever worker sees each
/// direction (the learner tables are shared), and both of pod a's queues
/// carried traffic.
#[test]
fn two_workers_serve_multiqueue_taps() {
    let Some(w) = World::start_with(2) else {
        return;
    };
    let names = w.client_ok("a", &["http", "10.96.0.10", "80", "40"]);
    assert_eq!(names.len(), 40);
    let seen: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(seen.len(), 3, "endpoints seen: {names:?}");
    let bulk = w.client_ok("a", &["bulk", "10.96.0.10", "80", "6"]);
    assert!(
        bulk.len() == 6 && bulk.iter().all(|l| l.ends_with(" ok")),
        "{bulk:?}"
    );
    assert_eq!(w.client_ok("a", &["tcp", "10.1.0.4", "9000", "3"]), ["c"]);
    // Packets the kernel queued on each of pod a's two transmit queues
    // (the qdisc under `mq` of each queue).
    let qdiscs = w.check_in(Some("a"), &["tc", "-s", "qdisc", "show", "dev", "eth0"]);
    for queue in [":1", ":2"] {
        let sent = qdiscs
            .iter()
            .position(|l| l.contains(&format!("parent {queue} ")))
            .and_then(|i| qdiscs.get(i + 1))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            sent.is_some_and(|n| n > 0),
            "pod a's queue {queue} sent nothing:\n{}",
            qdiscs.join("\n")
        );
    }
    w.stop();
}

/// Hairpin: an endpoint reaching its own service. Without hairpin NAT its
/// SYN is DNATed back to itself and arrives as `10.1.0.3:p > 10.1.0.3:8080`,
/// which its kernel drops (its own address on eth0); upstream's program
/// has no hairpin NAT. p4k8s rewrites the source to 169.254.42.1 and the
/// replies back (see `dataplane/src/pipeline/mod.rs`).
#[test]
fn hairpin_an_endpoint_reaches_its_own_service() {
    let Some(w) = World::start() else { return };
    // Pod b is the only endpoint: every connection hairpins.
    let names = w.client_ok("b", &["http", "10.96.0.12", "80", "10"]);
    assert_eq!(names, ["b"; 10], "every hairpin connection succeeds");
    let names = w.client_ok("b", &["keepalive", "10.96.0.12", "80", "10"]);
    assert_eq!(names, ["b"; 10], "one hairpin connection, ten requests");
    let bulk = w.client_ok("b", &["bulk", "10.96.0.12", "80", "2"]);
    assert_eq!(bulk, ["b ok"; 2], "1 MiB each way through the hairpin NAT");
    // UDP: the answers come from the VIP.
    let lines = w.client_ok("b", &["udp", "10.96.0.13", "53", "5"]);
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("10.96.0.13:53 b:ping{i}"));
    }
    // Three endpoints, b among them: some connections hairpin, others not;
    // every one succeeds. (That all 30 miss b has p = (2/3)^30 < 1e-5.)
    let names = w.client_ok("b", &["http", "10.96.0.10", "80", "30"]);
    assert_eq!(names.len(), 30);
    let seen: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert!(seen.contains("b"), "b never picked itself: {names:?}");
    // The hairpin flows were learned with the hairpin address (the TCP ones
    // expire 1 s after their FINs; the UDP ones are still there).
    let flows = w.ctl_read("pinned_flows_reverse");
    assert!(
        flows
            .lines()
            .any(|l| l.contains("meta.src_ip=10.1.0.3 meta.dst_ip=169.254.42.1")),
        "no hairpin reverse flow in:\n{flows}"
    );
    w.stop();
}

#[test]
fn udp_service_round_trip_from_the_vip() {
    let Some(w) = World::start() else { return };
    let lines = w.client_ok("a", &["udp", "10.96.0.11", "53", "20"]);
    assert_eq!(lines.len(), 20);
    let mut seen = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let (from, body) = line.split_once(' ').expect("peer and body");
        assert_eq!(from, "10.96.0.11:53", "reply not from the VIP: {line}");
        let (name, echo) = body.split_once(':').expect("name:payload");
        assert_eq!(echo, format!("ping{i}"));
        seen.insert(name.to_owned());
    }
    assert_eq!(
        seen,
        BTreeSet::from(["c".to_owned(), "d".to_owned()]),
        "endpoints seen: {lines:?}"
    );
    w.stop();
}

#[test]
fn policy_allows_8080_and_denies_9000_on_pod_d() {
    let Some(w) = World::start() else { return };
    // Port 8080 of pod d is allowed.
    assert_eq!(
        w.client_ok("a", &["http", "10.1.0.5", "8080", "3"]),
        ["d", "d", "d"]
    );
    // Port 9000 works on pod c (no policy) but not on pod d.
    assert_eq!(w.client_ok("a", &["tcp", "10.1.0.4", "9000", "3"]), ["c"]);
    let out = w.client("a", &["tcp", "10.1.0.5", "9000", "2"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "TIMEOUT",
        "port 9000 of pod d should be denied: {out:?}"
    );
    assert_eq!(out.status.code(), Some(2));
    // Other protocols to pod d are not covered by the TCP policy.
    ping(&w, Some("a"), "10.1.0.5");
    // SIGUSR1: the target logs the denied SYNs among the pipeline's drops,
    // and what pod a's port received.
    w.usr1();
    wait_for("counters in the log", Duration::from_secs(5), || {
        w.log().contains("pipeline counters")
    });
    let log = w.log();
    let pipeline = log
        .lines()
        .find(|l| l.contains("pipeline counters"))
        .unwrap_or_default();
    assert!(
        pipeline.contains("ingress_policy="),
        "the denied SYNs are not counted: {pipeline}"
    );
    let port_a = format!("port={}", PODS[0].1);
    let rx = log
        .lines()
        .find(|l| l.contains("port counters") && l.contains(&port_a))
        .and_then(|l| l.split("rx_packets=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        rx.is_some_and(|n| n > 0),
        "no receive count for pod a's port in:\n{log}"
    );
    w.stop();
}

#[test]
fn host_reaches_pods_through_the_host_port() {
    let Some(w) = World::start() else { return };
    ping(&w, None, "10.1.0.2");
    ping(&w, None, "10.1.0.5");
    // And a pod reaches the host.
    ping(&w, Some("c"), "10.1.255.1");
    w.stop();
}

#[test]
fn ports_come_and_go_at_run_time_while_traffic_flows() {
    let Some(w) = World::start() else { return };
    let config = w.dir.join("config.toml");
    let full = std::fs::read_to_string(&config).expect("read config");
    let has_eth0 = |pod: &str| try_sh(&["ip", "-n", &w.ns(pod), "link", "show", "eth0"]);
    // Pod d's TAP is the last [[port]] entry: drop it and reload.
    let cut = full.rfind("\n[[port]]").expect("a port entry");
    std::fs::write(&config, &full[..cut]).expect("write config");
    w.hup();
    wait_for("pod d's eth0 removed", Duration::from_secs(10), || {
        !has_eth0("d")
    });
    // The other pods' traffic goes on.
    ping(&w, Some("a"), "10.1.0.3");
    // Back again: the table entries written before still send 10.1.0.5 to port 5.
    std::fs::write(&config, &full).expect("restore config");
    w.hup();
    wait_for("pod d's eth0 back", Duration::from_secs(10), || {
        has_eth0("d")
    });
    ping(&w, Some("a"), "10.1.0.5");
    // A file that does not parse changes nothing.
    std::fs::write(&config, "[[port]]\nid = \"x\"\n").expect("write bad config");
    w.hup();
    std::thread::sleep(Duration::from_millis(300));
    ping(&w, Some("a"), "10.1.0.5");
    assert!(
        w.log().contains("reload refused"),
        "the bad file is reported:\n{}",
        w.log()
    );
    w.stop();
}
