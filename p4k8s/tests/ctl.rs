//! `p4k8s ctl` against a `p4k8s run` on in-memory ring ports (no root
//! needed): apply, read back, a second apply refused entry by entry, a
//! bad scenario refused before connecting.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_p4k8s");

const SCENARIO: &str = r#"
[[pod]]
ip = "10.1.0.2"
port = 2
mac = "02:00:00:00:00:02"

[[pod]]
ip = "10.1.0.3"
port = 3
mac = "02:00:00:00:00:03"

[[service]]
vip = "10.96.0.10"
port = 80
proto = "tcp"
endpoints = ["10.1.0.2:8080", "10.1.0.3:8080"]

[[policy]]
pod = "10.1.0.3"
direction = "ingress"
proto = "tcp"
peers = ["10.1.0.0/16"]
ports = [[8080, 8080]]
"#;

/// A target on ring ports and a temp dir; both removed on drop.
struct Target {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Target {
    fn start(name: &str) -> Target {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("p4k8s-ctl-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new(BIN)
            .args(["run", "--ring-ports", "3", "--p4rt-addr", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start p4k8s run");
        let t = Target { child, addr, dir };
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "p4k8s run not listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("ctl")
            .args(args)
            .args(["--addr", &self.addr.to_string()])
            .output()
            .expect("run p4k8s ctl")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write file");
        p.display().to_string()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn apply_read_and_a_refused_second_apply() {
    let t = Target::start("apply");
    let scenario = t.file("s.toml", SCENARIO);
    let out = t.ctl(&["apply", &scenario]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "wrote 16 entities: 2 pods, 1 services, 1 policies"
    );

    let out = t.ctl(&["read", "--table", "tx_balance_tcp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "tx_balance_tcp hdr.ipv4.dst_addr=10.96.0.10 hdr.tcp.dst_port=80 -> group 1"
    );
    let out = t.ctl(&["read", "--table", "as_sl3_tcp"]);
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        [
            "as_sl3_tcp member 1 -> set_default_lb_dest(ptr=1)",
            "as_sl3_tcp member 2 -> set_default_lb_dest(ptr=2)",
            "as_sl3_tcp group 1 members [1x1, 2x1]",
        ]
    );
    let out = t.ctl(&["read", "--table", "no_such_table"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no table or action profile no_such_table"));

    // The same entries again, keeping the pipeline: every insert is refused
    // and each refusal is printed with the entry and the server's error.
    let out = t.ctl(&["apply", "--keep-pipeline", &scenario]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("16 update(s) refused"), "{err}");
    assert!(
        err.contains(
            "update #0 (arpt_to_port_table hdr.arp.tpa=10.1.0.2 -> set_dest_vport(p=2)): AlreadyExists"
        ),
        "{err}"
    );
    assert!(
        err.contains("update #15 (acl_pod_ip_proto_table_ingress hdr.ipv4.dst_addr=10.1.0.3"),
        "{err}"
    );

    // Delete undoes it all; then nothing is left to delete.
    let out = t.ctl(&["delete", "--batch", "4", &scenario]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "deleted 16 entities");
    let out = t.ctl(&["read", "--table", "ipv4_to_port_table"]);
    assert_eq!(text(&out.stdout), "");
    let out = t.ctl(&["delete", &scenario]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("NotFound"),
        "{}",
        text(&out.stderr)
    );

    // Pushing the pipeline again (VERIFY_AND_COMMIT), in small batches.
    let out = t.ctl(&["apply", "--batch", "5", "--election-id", "2", &scenario]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn bad_scenarios_and_unreachable_servers_fail_clearly() {
    let t = Target::start("bad");
    let bad = t.file(
        "bad.toml",
        "[[pod]]\nip = \"10.1.0.2\"\nport = 2\nmac = \"02:00:00:00:02\"\n",
    );
    let out = t.ctl(&["apply", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pod[0].mac: \"02:00:00:00:02\" is not six hex bytes"),
        "{}",
        text(&out.stderr)
    );

    let good = t.file("good.toml", SCENARIO);
    let out = Command::new(BIN)
        .args(["ctl", "apply", "--addr", "127.0.0.1:1", &good])
        .output()
        .expect("run p4k8s ctl");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot connect to 127.0.0.1:1"),
        "{}",
        text(&out.stderr)
    );
}
