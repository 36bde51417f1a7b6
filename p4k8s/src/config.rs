//! The `p4k8s run` configuration file (TOML): the dataplane, the P4Runtime
//! server and the ports.
//!
//! ```toml
//! [dataplane]
//! workers = 1
//! cores = [1]
//! flow_capacity = 1048576
//! hairpin_snat = "169.254.42.1"   # or false (upstream's behaviour)
//!
//! [p4runtime]
//! addr = "127.0.0.1:9559"
//! device_id = 1
//! core = 0                        # the control plane's core
//!
//! [[port]]              # the host port (upstream's port 1)
//! id = 1
//! kind = "af_packet"
//! ifname = "p4k8s-host"
//!
//! [[port]]              # an uplink over AF_XDP (AF_PACKET if AF_XDP fails)
//! id = 4
//! kind = "af_xdp"
//! ifname = "eth1"
//! direction = "net_to_host"
//!
//! [[port]]              # a pod on a TAP CDQ
//! id = 2
//! kind = "tap"
//! netns = "pod-a"
//! ifname = "eth0"
//! mac = "02:00:00:00:00:02"
//! ipv4 = "10.1.0.2/32"
//! # offloads = true     # TSO/checksum offloads (the default)
//! # tx_queue_len = 4000 # frames the pod may queue for the worker
//! # rps_cpus = [0]      # cores for the pod's receive path (RPS)
//!
//! [[port]]              # a DPDK pod on a memif CDQ
//! id = 3
//! kind = "memif"
//! socket = "/run/p4k8s/cdq/pod-c.sock"
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

/// A configuration that cannot be used; says which port and field.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (with line and column).
        source: toml::de::Error,
    },
    /// A port entry is wrong.
    #[error("port {id}: {what}")]
    Port {
        /// The port id.
        id: u32,
        /// What is wrong.
        what: String,
    },
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[dataplane]`.
    #[serde(default)]
    pub dataplane: DataplaneSection,
    /// `[p4runtime]`.
    #[serde(default)]
    pub p4runtime: P4RuntimeSection,
    /// `[[port]]` entries.
    #[serde(default, rename = "port")]
    pub ports: Vec<PortSpec>,
}

/// `[dataplane]`: overrides of the command-line defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// Number of workers.
    pub workers: Option<usize>,
    /// Cores to pin workers to.
    pub cores: Option<Vec<usize>>,
    /// Learned flows per learner table.
    pub flow_capacity: Option<usize>,
    /// Longest idle sleep, microseconds.
    pub idle_sleep_us: Option<u64>,
    /// Hairpin source NAT: an address, `true` for the default or `false`
    /// for none.
    pub hairpin_snat: Option<HairpinSnat>,
}

/// `hairpin_snat`: the source address of a pod's traffic to a service
/// that load-balances it to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HairpinSnat {
    /// This address.
    Address(Ipv4Addr),
    /// `true`: the default address; `false`: no hairpin NAT.
    Enabled(bool),
}

impl HairpinSnat {
    /// The dataplane setting.
    pub fn address(self) -> Option<Ipv4Addr> {
        match self {
            HairpinSnat::Address(a) => Some(a),
            HairpinSnat::Enabled(true) => Some(p4k8s_dataplane::config::DEFAULT_HAIRPIN_SNAT),
            HairpinSnat::Enabled(false) => None,
        }
    }
}

/// `[p4runtime]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P4RuntimeSection {
    /// Listen address.
    pub addr: Option<SocketAddr>,
    /// Device id.
    pub device_id: Option<u64>,
    /// Core for the control plane (the server's threads).
    pub core: Option<usize>,
}

/// The backend of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortKind {
    /// In-memory ring (tests).
    Ring,
    /// A TAP CDQ in a pod namespace.
    Tap,
    /// An existing interface (host or uplink) over AF_PACKET.
    AfPacket,
    /// An existing interface (host or uplink) over AF_XDP, falling back to
    /// AF_PACKET where AF_XDP cannot be used.
    AfXdp,
    /// A memif CDQ socket (DPDK `net_memif` compatible).
    Memif,
}

/// One `[[port]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The P4 port id (stable; port 1 is the host port by convention).
    pub id: u32,
    /// The backend.
    pub kind: PortKind,
    /// `host_to_net` (pods, host; the default) or `net_to_host` (uplinks).
    pub direction: Option<String>,
    /// tap: the pod namespace; af_packet, af_xdp: the namespace of the interface (optional).
    pub netns: Option<String>,
    /// tap: the name inside the pod (default eth0); af_packet, af_xdp: the interface.
    pub ifname: Option<String>,
    /// tap: the pod-side MAC, `02:00:00:00:00:02`.
    pub mac: Option<String>,
    /// tap: the pod's address with prefix, `10.1.0.2/32`.
    pub ipv4: Option<String>,
    /// tap: MTU (default 1500).
    pub mtu: Option<u32>,
    /// tap: offer checksum/segmentation offloads to the pod (default true);
    /// af_packet: exchange virtio-net headers with the kernel (default false).
    pub offloads: Option<bool>,
    /// tap: frames the pod may queue for us (`txqueuelen`, default 4000).
    pub tx_queue_len: Option<u32>,
    /// tap: cores the pod's receive path is steered to (RPS); default
    /// none: the pod's stack runs in the worker's write, on its core. With
    /// `offloads = false` and every pod on core 0, `[0]` doubled one TCP
    /// stream (1.5 -> 3 Gbit/s) but halved HTTP requests/s (61k -> 33k);
    /// with offloads it cost a third of the bandwidth.
    pub rps_cpus: Option<Vec<usize>>,
    /// memif: the socket path, or `@name` for an abstract socket.
    pub socket: Option<String>,
    /// memif: `server` (default: the pod's DPDK app connects) or `client`.
    pub role: Option<String>,
}

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks configuration text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
        let cfg: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: origin.to_owned(),
            source,
        })?;
        let mut seen = std::collections::HashSet::new();
        for p in &cfg.ports {
            if !seen.insert(p.id) {
                return Err(ConfigError::Port {
                    id: p.id,
                    what: "port id used twice".into(),
                });
            }
            p.check()?;
        }
        Ok(cfg)
    }
}

impl PortSpec {
    /// An in-memory ring port.
    pub fn ring(id: u32) -> Self {
        PortSpec {
            id,
            kind: PortKind::Ring,
            direction: None,
            netns: None,
            ifname: None,
            mac: None,
            ipv4: None,
            mtu: None,
            offloads: None,
            tx_queue_len: None,
            rps_cpus: None,
            socket: None,
            role: None,
        }
    }

    fn err(&self, what: impl Into<String>) -> ConfigError {
        ConfigError::Port {
            id: self.id,
            what: what.into(),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.direction()?;
        match self.kind {
            PortKind::Ring => Ok(()),
            PortKind::Tap => {
                if self.netns.is_none() {
                    return Err(self.err("a tap port needs `netns` (the pod namespace)"));
                }
                self.mac_bytes()?;
                self.ipv4_prefix()?;
                Ok(())
            }
            PortKind::AfPacket => self
                .ifname
                .as_ref()
                .map(|_| ())
                .ok_or_else(|| self.err("an af_packet port needs `ifname`")),
            PortKind::AfXdp => {
                if self.ifname.is_none() {
                    return Err(self.err("an af_xdp port needs `ifname`"));
                }
                if self.offloads == Some(true) {
                    return Err(self.err(
                        "an af_xdp port carries no offloads; use af_packet for `offloads = true`",
                    ));
                }
                Ok(())
            }
            PortKind::Memif => {
                if self.socket.is_none() {
                    return Err(self.err("a memif port needs `socket`"));
                }
                match self.role.as_deref() {
                    None | Some("server") | Some("client") => Ok(()),
                    Some(other) => Err(self.err(format!(
                        "role {other:?} is neither \"server\" nor \"client\""
                    ))),
                }
            }
        }
    }

    /// Whether the port carries offload work (large segments, partial
    /// checksums): TAP ports by default, AF_PACKET ports when asked.
    pub fn offloads(&self) -> bool {
        self.offloads.unwrap_or(self.kind == PortKind::Tap)
    }

    /// The port's direction; `true` for NET_TO_HOST.
    pub fn direction(&self) -> Result<bool, ConfigError> {
        match self.direction.as_deref() {
            None | Some("host_to_net") => Ok(false),
            Some("net_to_host") => Ok(true),
            Some(other) => Err(self.err(format!(
                "direction {other:?} is neither \"host_to_net\" nor \"net_to_host\""
            ))),
        }
    }

    /// The MAC, parsed (default: 02:00:00:00:<id>).
    pub fn mac_bytes(&self) -> Result<[u8; 6], ConfigError> {
        let Some(text) = &self.mac else {
            let id = self.id.to_be_bytes();
            return Ok([0x02, 0, id[0], id[1], id[2], id[3]]);
        };
        crate::mac::parse_mac(text).ok_or_else(|| {
            self.err(format!(
                "mac {text:?} is not six hex bytes separated by ':'"
            ))
        })
    }

    /// The IPv4 address and prefix length, if given.
    pub fn ipv4_prefix(&self) -> Result<Option<(Ipv4Addr, u8)>, ConfigError> {
        let Some(text) = &self.ipv4 else {
            return Ok(None);
        };
        let bad = || {
            self.err(format!(
                "ipv4 {text:?} is not an address with a prefix length, like 10.1.0.2/32"
            ))
        };
        let (addr, len) = text.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok(Some((addr, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_queue_settings_parse() {
        let text = "[[port]]\nid = 2\nkind = \"tap\"\nnetns = \"a\"\ntx_queue_len = 8000\nrps_cpus = [0, 2]\n";
        let cfg = FileConfig::parse(text, "test").unwrap();
        assert_eq!(cfg.ports[0].tx_queue_len, Some(8000));
        assert_eq!(cfg.ports[0].rps_cpus.as_deref(), Some(&[0, 2][..]));
        let none =
            FileConfig::parse("[[port]]\nid = 2\nkind = \"tap\"\nnetns = \"a\"\n", "t").unwrap();
        assert_eq!(none.ports[0].rps_cpus, None);
    }

    #[test]
    fn full_example_parses() {
        let text = r#"
            [dataplane]
            workers = 1
            cores = [1]
            [p4runtime]
            addr = "127.0.0.1:9600"
            [[port]]
            id = 1
            kind = "af_packet"
            ifname = "veth-host"
            [[port]]
            id = 2
            kind = "tap"
            netns = "pod-a"
            mac = "02:00:00:00:00:02"
            ipv4 = "10.1.0.2/32"
            [[port]]
            id = 3
            kind = "memif"
            socket = "@pod-c"
            direction = "host_to_net"
        "#;
        let cfg = FileConfig::parse(text, "test").unwrap();
        assert_eq!(cfg.ports.len(), 3);
        assert_eq!(cfg.ports[1].mac_bytes().unwrap(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(
            cfg.ports[1].ipv4_prefix().unwrap(),
            Some((Ipv4Addr::new(10, 1, 0, 2), 32))
        );
        assert_eq!(cfg.p4runtime.addr.unwrap().port(), 9600);
    }

    #[test]
    fn hairpin_snat_and_control_core_parse() {
        let cases = [
            ("", None),
            (
                "hairpin_snat = true\n",
                Some(Some(Ipv4Addr::new(169, 254, 42, 1))),
            ),
            ("hairpin_snat = false\n", Some(None)),
            (
                "hairpin_snat = \"169.254.9.9\"\n",
                Some(Some(Ipv4Addr::new(169, 254, 9, 9))),
            ),
        ];
        for (line, want) in cases {
            let text = format!("[dataplane]\n{line}[p4runtime]\ncore = 0\n");
            let cfg = FileConfig::parse(&text, "test").unwrap();
            assert_eq!(
                cfg.dataplane.hairpin_snat.map(HairpinSnat::address),
                want,
                "{line}"
            );
            assert_eq!(cfg.p4runtime.core, Some(0));
        }
        let bad = FileConfig::parse("[dataplane]\nhairpin_snat = \"nope\"\n", "test");
        assert!(bad.unwrap_err().to_string().contains("hairpin_snat"));
    }

    #[test]
    fn af_xdp_kind_parses() {
        let text = "[[port]]\nid = 9\nkind = \"af_xdp\"\nifname = \"eth1\"\nnetns = \"up\"\ndirection = \"net_to_host\"\n";
        let cfg = FileConfig::parse(text, "test").unwrap();
        let p = &cfg.ports[0];
        assert_eq!(p.kind, PortKind::AfXdp);
        assert_eq!(p.ifname.as_deref(), Some("eth1"));
        assert!(!p.offloads());
        assert!(p.direction().unwrap());
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let cases = [
            (
                "[[port]]\nid = 2\nkind = \"tap\"\n",
                "port 2: a tap port needs `netns`",
            ),
            (
                "[[port]]\nid = 2\nkind = \"tap\"\nnetns = \"a\"\nmac = \"zz\"\n",
                "port 2: mac \"zz\" is not six hex bytes",
            ),
            (
                "[[port]]\nid = 2\nkind = \"tap\"\nnetns = \"a\"\nipv4 = \"10.0.0.1/40\"\n",
                "port 2: ipv4 \"10.0.0.1/40\"",
            ),
            (
                "[[port]]\nid = 4\nkind = \"af_packet\"\n",
                "port 4: an af_packet port needs `ifname`",
            ),
            (
                "[[port]]\nid = 4\nkind = \"af_xdp\"\n",
                "port 4: an af_xdp port needs `ifname`",
            ),
            (
                "[[port]]\nid = 4\nkind = \"af_xdp\"\nifname = \"eth1\"\noffloads = true\n",
                "port 4: an af_xdp port carries no offloads",
            ),
            (
                "[[port]]\nid = 5\nkind = \"memif\"\nsocket = \"/x\"\nrole = \"boss\"\n",
                "port 5: role \"boss\"",
            ),
            (
                "[[port]]\nid = 5\nkind = \"ring\"\n[[port]]\nid = 5\nkind = \"ring\"\n",
                "port 5: port id used twice",
            ),
            (
                "[[port]]\nid = 6\nkind = \"ring\"\ndirection = \"up\"\n",
                "port 6: direction \"up\"",
            ),
            (
                "[[port]]\nid = 7\nkind = \"warp\"\n",
                "unknown variant `warp`",
            ),
            ("[dataplane]\nworkerz = 1\n", "unknown field `workerz`"),
        ];
        for (text, want) in cases {
            let err = FileConfig::parse(text, "t.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
        }
    }
}
