//! Scenario files of `p4k8s ctl apply`: pods, services and network
//! policies, in TOML, checked into typed values.
//!
//! ```toml
//! [[pod]]
//! ip = "10.1.0.2"
//! port = 2
//! mac = "02:00:00:00:00:02"
//!
//! [[service]]
//! vip = "10.96.0.10"
//! port = 80
//! proto = "tcp"                  # "tcp" or "udp"
//! endpoints = ["10.1.0.3:8080", "10.1.0.4:8080"]
//!
//! [[policy]]
//! pod = "10.1.0.3"
//! direction = "ingress"          # "ingress" or "egress"
//! proto = "tcp"                  # tcp, udp, sctp, udplite, icmp or any
//! peers = ["10.1.0.0/16"]        # CIDRs (a bare address is a /32)
//! ports = [[80, 80]]             # inclusive ranges, at most 8
//! ```
//!
//! A policy allows traffic of its protocol between the pod and its peers
//! on its port ranges (for `icmp`, ranges over `type << 8 | code`); with no
//! `ports` it allows every port of that protocol from its peers (`any`
//! takes no ports); with no `peers` it denies the protocol altogether.
//! Traffic of a protocol no policy of the pod and direction names is
//! allowed, as in upstream's program.
//!
//! Errors name the entry and field: `pod[1].mac` is the `mac` of the
//! second `[[pod]]` (indices from 0).

use crate::mac::parse_mac;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Deserialize;
use thiserror::Error;

/// The most port ranges (rules) one upstream policy can hold.
pub const MAX_RANGES: usize = 8;

/// A scenario that cannot be used.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not TOML of this schema (unknown or missing field, wrong type).
    #[error("{origin}: {source}")]
    Parse {
        /// The file.
        origin: String,
        /// What the parser said (with line and column).
        source: toml::de::Error,
    },
    /// A field has a value that cannot be used.
    #[error("{origin}: {field}: {what}")]
    Field {
        /// The file.
        origin: String,
        /// The field, `pod[1].mac`.
        field: String,
        /// What is wrong.
        what: String,
    },
}

/// A service's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceProto {
    /// TCP: `tx_balance_tcp`, `as_sl3_tcp`, `set_meta_tcp`.
    Tcp,
    /// UDP: `tx_balance_udp`, `as_sl3_udp`, `set_meta_udp`.
    Udp,
}

impl ServiceProto {
    /// `tcp` or `udp`, the suffix of the protocol's table names.
    pub fn suffix(self) -> &'static str {
        match self {
            ServiceProto::Tcp => "tcp",
            ServiceProto::Udp => "udp",
        }
    }
}

/// The direction of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Traffic to the pod (`*_ingress` tables; the pod is the destination).
    Ingress,
    /// Traffic from the pod (`*_egress` tables; the pod is the source).
    Egress,
}

impl Direction {
    /// `ingress` or `egress`, the suffix of the direction's table names.
    pub fn suffix(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The protocol a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyProto {
    /// Every protocol (protocol LPM prefix length 0; no port ranges).
    Any,
    /// TCP (6), range check reference 1.
    Tcp,
    /// UDP (17), reference 2.
    Udp,
    /// SCTP (132), reference 3.
    Sctp,
    /// UDP-Lite (136), reference 4.
    UdpLite,
    /// ICMP (1), reference 5; ranges over `type << 8 | code`.
    Icmp,
}

impl PolicyProto {
    /// The IP protocol number (0 for `Any`).
    pub fn number(self) -> u8 {
        match self {
            PolicyProto::Any => 0,
            PolicyProto::Tcp => 6,
            PolicyProto::Udp => 17,
            PolicyProto::Sctp => 132,
            PolicyProto::UdpLite => 136,
            PolicyProto::Icmp => 1,
        }
    }

    /// The `range_check_ref` of `set_range_check_ref` and the range table
    /// it selects; `None` for `Any`.
    pub fn range_check(self) -> Option<(u8, &'static str, &'static str)> {
        match self {
            PolicyProto::Any => None,
            PolicyProto::Tcp => Some((1, "tcp_dport_rc_table", "do_range_check_tcp")),
            PolicyProto::Udp => Some((2, "udp_dport_rc_table", "do_range_check_udp")),
            PolicyProto::Sctp => Some((3, "sctp_dport_rc_table", "do_range_check_sctp")),
            PolicyProto::UdpLite => Some((4, "udpl_dport_rc_table", "do_range_check_udplite")),
            PolicyProto::Icmp => Some((5, "icmp_type_code_check_table", "do_icmp_type_code_check")),
        }
    }
}

/// A pod: where its address lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// The pod's IPv4 address.
    pub ip: Ipv4Addr,
    /// The P4 port of its interface.
    pub port: u32,
    /// The pod interface's MAC (the destination MAC written on the way in).
    pub mac: [u8; 6],
}

/// A service: a VIP and port balanced over endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The virtual IP.
    pub vip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// TCP or UDP.
    pub proto: ServiceProto,
    /// Endpoints: pod IP and target port.
    pub endpoints: Vec<SocketAddrV4>,
}

/// A network policy of one pod, direction and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The pod the policy protects.
    pub pod: Ipv4Addr,
    /// Ingress or egress.
    pub direction: Direction,
    /// The protocol it applies to.
    pub proto: PolicyProto,
    /// Peer CIDRs (network address, prefix length).
    pub peers: Vec<(Ipv4Addr, u8)>,
    /// Allowed inclusive port ranges; empty: every port.
    pub ports: Vec<(u16, u16)>,
}

/// A whole scenario, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    /// `[[pod]]` entries, in file order.
    pub pods: Vec<Pod>,
    /// `[[service]]` entries, in file order.
    pub services: Vec<Service>,
    /// `[[policy]]` entries, in file order.
    pub policies: Vec<Policy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    pod: Vec<RawPod>,
    #[serde(default)]
    service: Vec<RawService>,
    #[serde(default)]
    policy: Vec<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPod {
    ip: String,
    port: u32,
    mac: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    vip: String,
    port: u16,
    proto: String,
    endpoints: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    pod: String,
    direction: String,
    proto: String,
    #[serde(default)]
    peers: Vec<String>,
    #[serde(default)]
    ports: Vec<[u16; 2]>,
}

/// Builds field errors for one file.
struct Checker<'a> {
    origin: &'a str,
}

impl Checker<'_> {
    fn err(&self, field: String, what: impl Into<String>) -> ScenarioError {
        ScenarioError::Field {
            origin: self.origin.to_owned(),
            field,
            what: what.into(),
        }
    }

    fn ipv4(&self, field: String, text: &str) -> Result<Ipv4Addr, ScenarioError> {
        text.parse()
            .map_err(|_| self.err(field, format!("{text:?} is not an IPv4 address")))
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks scenario text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        let c = Checker { origin };
        let mut out = Scenario::default();

        let mut pod_ips = HashMap::new();
        for (i, p) in raw.pod.iter().enumerate() {
            let ip = c.ipv4(format!("pod[{i}].ip"), &p.ip)?;
            if let Some(first) = pod_ips.insert(ip, i) {
                return Err(c.err(
                    format!("pod[{i}].ip"),
                    format!("{ip} is already the address of pod[{first}]"),
                ));
            }
            let mac = parse_mac(&p.mac).ok_or_else(|| {
                c.err(
                    format!("pod[{i}].mac"),
                    format!("{:?} is not six hex bytes separated by ':'", p.mac),
                )
            })?;
            out.pods.push(Pod {
                ip,
                port: p.port,
                mac,
            });
        }

        // (VIP, port, proto) and (endpoint, proto) must be unique: upstream
        // keys `tx_balance_*` and `set_meta_*` on them.
        let mut vips = HashMap::new();
        let mut endpoint_owner = HashMap::new();
        for (i, s) in raw.service.iter().enumerate() {
            let vip = c.ipv4(format!("service[{i}].vip"), &s.vip)?;
            let proto = match s.proto.as_str() {
                "tcp" => ServiceProto::Tcp,
                "udp" => ServiceProto::Udp,
                other => {
                    return Err(c.err(
                        format!("service[{i}].proto"),
                        format!("{other:?} is neither \"tcp\" nor \"udp\""),
                    ))
                }
            };
            if let Some(first) = vips.insert((vip, s.port, proto), i) {
                return Err(c.err(
                    format!("service[{i}].vip"),
                    format!(
                        "{vip}:{} {} is already service[{first}]",
                        s.port,
                        proto.suffix()
                    ),
                ));
            }
            if s.endpoints.is_empty() {
                return Err(c.err(
                    format!("service[{i}].endpoints"),
                    "a service needs at least one endpoint",
                ));
            }
            let mut endpoints = Vec::new();
            for (j, e) in s.endpoints.iter().enumerate() {
                let field = format!("service[{i}].endpoints[{j}]");
                let ep: SocketAddrV4 = e.parse().map_err(|_| {
                    c.err(
                        field.clone(),
                        format!("{e:?} is not an IPv4 address and port, like 10.1.0.3:8080"),
                    )
                })?;
                if let Some(first) = endpoint_owner.insert((ep, proto), i) {
                    return Err(c.err(
                        field,
                        format!(
                            "{ep} is already an endpoint of service[{first}] (upstream keys \
                             set_meta_{} on the endpoint alone)",
                            proto.suffix()
                        ),
                    ));
                }
                endpoints.push(ep);
            }
            out.services.push(Service {
                vip,
                port: s.port,
                proto,
                endpoints,
            });
        }

        let mut policy_keys = HashMap::new();
        for (i, p) in raw.policy.iter().enumerate() {
            let pod = c.ipv4(format!("policy[{i}].pod"), &p.pod)?;
            let direction = match p.direction.as_str() {
                "ingress" => Direction::Ingress,
                "egress" => Direction::Egress,
                other => {
                    return Err(c.err(
                        format!("policy[{i}].direction"),
                        format!("{other:?} is neither \"ingress\" nor \"egress\""),
                    ))
                }
            };
            let proto = match p.proto.as_str() {
                "any" => PolicyProto::Any,
                "tcp" => PolicyProto::Tcp,
                "udp" => PolicyProto::Udp,
                "sctp" => PolicyProto::Sctp,
                "udplite" => PolicyProto::UdpLite,
                "icmp" => PolicyProto::Icmp,
                other => {
                    return Err(c.err(
                        format!("policy[{i}].proto"),
                        format!("{other:?} is not one of tcp, udp, sctp, udplite, icmp, any"),
                    ))
                }
            };
            if let Some(first) = policy_keys.insert((pod, direction, proto), i) {
                return Err(c.err(
                    format!("policy[{i}]"),
                    format!(
                        "policy[{first}] already covers {pod} {} {}",
                        direction.suffix(),
                        p.proto
                    ),
                ));
            }
            let mut peers = Vec::new();
            for (j, text) in p.peers.iter().enumerate() {
                let field = format!("policy[{i}].peers[{j}]");
                let bad = || {
                    c.err(
                        field.clone(),
                        format!("{text:?} is not an IPv4 CIDR, like 10.1.0.0/16"),
                    )
                };
                let (addr, len) = match text.split_once('/') {
                    Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
                    None => (text.as_str(), 32),
                };
                let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
                if len > 32 {
                    return Err(bad());
                }
                let host_bits = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                if u32::from(addr) & host_bits != 0 {
                    return Err(c.err(
                        field,
                        format!("{text:?} has host bits set beyond its prefix length"),
                    ));
                }
                peers.push((addr, len));
            }
            if proto == PolicyProto::Any && !p.ports.is_empty() {
                return Err(c.err(
                    format!("policy[{i}].ports"),
                    "a policy for any protocol takes no port ranges",
                ));
            }
            if p.ports.len() > MAX_RANGES {
                return Err(c.err(
                    format!("policy[{i}].ports"),
                    format!(
                        "{} ranges; upstream's program holds at most {MAX_RANGES}",
                        p.ports.len()
                    ),
                ));
            }
            let mut ports = Vec::new();
            for (j, [lo, hi]) in p.ports.iter().copied().enumerate() {
                if lo > hi {
                    return Err(c.err(
                        format!("policy[{i}].ports[{j}]"),
                        format!("[{lo}, {hi}] is empty (min above max)"),
                    ));
                }
                ports.push((lo, hi));
            }
            out.policies.push(Policy {
                pod,
                direction,
                proto,
                peers,
                ports,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
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
        endpoints = ["10.1.0.3:8080", "10.1.0.2:8080"]
        [[service]]
        vip = "10.96.0.10"
        port = 80
        proto = "udp"
        endpoints = ["10.1.0.3:8080"]
        [[policy]]
        pod = "10.1.0.3"
        direction = "ingress"
        proto = "tcp"
        peers = ["10.1.0.0/16", "192.168.1.7"]
        ports = [[80, 80], [8000, 8100]]
        [[policy]]
        pod = "10.1.0.3"
        direction = "egress"
        proto = "any"
    "#;

    #[test]
    fn example_parses() {
        let s = Scenario::parse(EXAMPLE, "t.toml").unwrap();
        assert_eq!(s.pods.len(), 2);
        assert_eq!(s.pods[1].mac, [2, 0, 0, 0, 0, 3]);
        assert_eq!(s.services[0].proto, ServiceProto::Tcp);
        assert_eq!(
            s.services[0].endpoints[1],
            "10.1.0.2:8080".parse::<SocketAddrV4>().unwrap()
        );
        assert_eq!(s.services[1].proto, ServiceProto::Udp);
        let p = &s.policies[0];
        assert_eq!(p.direction, Direction::Ingress);
        assert_eq!(
            p.peers,
            vec![
                (Ipv4Addr::new(10, 1, 0, 0), 16),
                (Ipv4Addr::new(192, 168, 1, 7), 32)
            ]
        );
        assert_eq!(p.ports, vec![(80, 80), (8000, 8100)]);
        assert_eq!(s.policies[1].proto, PolicyProto::Any);
        assert!(s.policies[1].peers.is_empty());
    }

    #[test]
    fn bad_scenarios_name_the_field() {
        let pod = "[[pod]]\nip = \"10.1.0.2\"\nport = 2\nmac = \"02:00:00:00:00:02\"\n";
        let svc = |extra: &str| {
            format!("[[service]]\nvip = \"10.96.0.1\"\nport = 80\nproto = \"tcp\"\n{extra}")
        };
        let pol = |extra: &str| {
            format!("[[policy]]\npod = \"10.1.0.2\"\ndirection = \"ingress\"\n{extra}")
        };
        let cases: Vec<(String, &str)> = vec![
            (
                "[[pod]]\nip = \"10.1.0\"\nport = 2\nmac = \"02:00:00:00:00:02\"\n".into(),
                "t.toml: pod[0].ip: \"10.1.0\" is not an IPv4 address",
            ),
            (
                format!("{pod}[[pod]]\nip = \"10.1.0.3\"\nport = 3\nmac = \"02:00:00:00:00\"\n"),
                "pod[1].mac: \"02:00:00:00:00\" is not six hex bytes",
            ),
            (
                format!("{pod}{pod}"),
                "pod[1].ip: 10.1.0.2 is already the address of pod[0]",
            ),
            (
                "[[pod]]\nip = \"10.1.0.2\"\nport = 2\n".into(),
                "missing field `mac`",
            ),
            (
                "[[pod]]\nip = \"10.1.0.2\"\nport = -1\nmac = \"02:00:00:00:00:02\"\n".into(),
                "invalid value",
            ),
            ("[[pods]]\nip = \"10.1.0.2\"\n".into(), "unknown field `pods`"),
            (
                svc("endpoints = [\"10.1.0.3\"]\n"),
                "service[0].endpoints[0]: \"10.1.0.3\" is not an IPv4 address and port",
            ),
            (
                svc("endpoints = []\n"),
                "service[0].endpoints: a service needs at least one endpoint",
            ),
            (
                "[[service]]\nvip = \"10.96.0.1\"\nport = 80\nproto = \"sctp\"\nendpoints = [\"10.1.0.3:80\"]\n".into(),
                "service[0].proto: \"sctp\" is neither",
            ),
            (
                format!(
                    "{}{}",
                    svc("endpoints = [\"10.1.0.3:80\"]\n"),
                    svc("endpoints = [\"10.1.0.4:80\"]\n")
                ),
                "service[1].vip: 10.96.0.1:80 tcp is already service[0]",
            ),
            (
                format!(
                    "{}[[service]]\nvip = \"10.96.0.2\"\nport = 80\nproto = \"tcp\"\nendpoints = [\"10.1.0.3:80\"]\n",
                    svc("endpoints = [\"10.1.0.3:80\"]\n")
                ),
                "service[1].endpoints[0]: 10.1.0.3:80 is already an endpoint of service[0]",
            ),
            (
                pol("proto = \"gre\"\n"),
                "policy[0].proto: \"gre\" is not one of",
            ),
            (
                "[[policy]]\npod = \"10.1.0.2\"\ndirection = \"up\"\nproto = \"tcp\"\n".into(),
                "policy[0].direction: \"up\" is neither",
            ),
            (
                pol("proto = \"tcp\"\npeers = [\"10.1.0.1/16\"]\n"),
                "policy[0].peers[0]: \"10.1.0.1/16\" has host bits set",
            ),
            (
                pol("proto = \"tcp\"\npeers = [\"10.1.0.0/33\"]\n"),
                "policy[0].peers[0]: \"10.1.0.0/33\" is not an IPv4 CIDR",
            ),
            (
                pol("proto = \"tcp\"\nports = [[90, 80]]\n"),
                "policy[0].ports[0]: [90, 80] is empty",
            ),
            (
                pol("proto = \"any\"\nports = [[80, 80]]\n"),
                "policy[0].ports: a policy for any protocol takes no port ranges",
            ),
            (
                pol("proto = \"tcp\"\nports = [[1,1],[2,2],[3,3],[4,4],[5,5],[6,6],[7,7],[8,8],[9,9]]\n"),
                "policy[0].ports: 9 ranges",
            ),
            (
                format!("{}{}", pol("proto = \"tcp\"\n"), pol("proto = \"tcp\"\n")),
                "policy[1]: policy[0] already covers 10.1.0.2 ingress tcp",
            ),
            (pol("proto = \"tcp\"\nport = 3\n"), "unknown field `port`"),
        ];
        for (text, want) in cases {
            let err = Scenario::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
        }
    }
}
