//! Capacities and timeouts of a dataplane instance.

use std::net::Ipv4Addr;

/// Learned-flow expiry classes (PNA expire-time profiles), in milliseconds:
/// upstream's 10, 30, 60, 120, 300 and 43200 s, plus 1 s and 5 s for tests
/// and short-lived flows. Upstream learns with class 2 (60 s).
pub const DEFAULT_EXPIRY_MS: [u64; 8] = [
    10_000, 30_000, 60_000, 120_000, 300_000, 43_200_000, 1_000, 5_000,
];

/// The class closing TCP flows move to (1 s).
pub const CLOSING_CLASS: u8 = 6;

/// The class upstream's program learns flows with.
pub const DEFAULT_EXPIRY_CLASS: u8 = 2;

/// The pod gateway the dataplane answers ARP for (proxy ARP), as in
/// Calico: pods route everything via `169.254.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway address pods use.
    pub ip: u32,
    /// The MAC the dataplane answers with.
    pub mac: [u8; 6],
}

impl Default for Gateway {
    fn default() -> Self {
        // Calico's link-local gateway and its well-known MAC.
        Gateway {
            ip: 0xa9fe_0101,
            mac: [0xee; 6],
        }
    }
}

/// The default hairpin source address, `169.254.42.1`.
///
/// A pod that reaches a service and is load-balanced to itself gets its own
/// packet back; with its own address as the source its kernel drops it (a
/// martian: a local address arriving on `eth0`), and its reply would stay
/// inside the pod instead of coming back through the dataplane. So the
/// source is rewritten to an address that:
/// - is not the pod's, so the kernel accepts it;
/// - is not on-link for the pod: pods have only `169.254.1.1 dev eth0 scope
///   link` and `default via 169.254.1.1`, so the reply goes to the gateway
///   MAC (which the dataplane answers ARP for) and hence back into the
///   pipeline, where it is translated back; an on-link address would make
///   the pod ARP for it, and no one answers;
/// - passes reverse-path filtering, strict or loose: the route back to it
///   is the default route, out of the interface it arrived on;
/// - is no pod's, node's or VIP's address, so a reply to it is always a
///   hairpin reply (the pipeline relies on this), and no service port can
///   clash with the client's port (which a VIP source would risk for UDP).
///
/// Link-local `169.254.0.0/16` fits; `169.254.42.1` is also the address
/// Cilium uses for the same purpose (`ipv4-service-loopback-address`).
/// Upstream's `k8s_dp` program has no hairpin source NAT at all.
pub const DEFAULT_HAIRPIN_SNAT: Ipv4Addr = Ipv4Addr::new(169, 254, 42, 1);

/// Sizes and timeouts; every table capacity is a configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Learned flows each of `pinned_flows` and `pinned_flows_reverse` can hold.
    pub flow_capacity: usize,
    /// Expiry timeout of each class, in milliseconds.
    pub expiry_ms: [u64; 8],
    /// Class given to flows the pipeline learns.
    pub learn_class: u8,
    /// Entries of each service table (`tx_balance_*`, `set_meta_*`).
    pub service_capacity: usize,
    /// Entries of the NAT tables (`write_dest_ip_table`, `write_source_ip_table`).
    pub nat_capacity: usize,
    /// Entries of the pod tables (`ipv4_to_port_table`, `arpt_to_port_table`).
    pub pod_capacity: usize,
    /// Entries of each policy table.
    pub policy_capacity: usize,
    /// Members of each action selector (`as_sl3_tcp`, `as_sl3_udp`).
    pub selector_members: usize,
    /// Groups of each action selector.
    pub selector_groups: usize,
    /// Members one group may hold.
    pub group_max_members: usize,
    /// Indices of each indirect counter (`pkt_cntr`, `byte_cntr`).
    pub counter_size: usize,
    /// Proxy-ARP gateway; `None` leaves every ARP to the program.
    pub gateway: Option<Gateway>,
    /// Expiry class a learned TCP flow moves to when a FIN or RST of it is
    /// seen, so a closed connection's NAT state does not outlive it (and
    /// rewrite a later, direct connection that reuses its ports); `None`
    /// keeps upstream's behaviour.
    pub closing_class: Option<u8>,
    /// Source address of hairpin service traffic (a pod load-balanced to
    /// itself), see [`DEFAULT_HAIRPIN_SNAT`]; `None` keeps upstream's
    /// behaviour (no hairpin NAT: such connections fail).
    pub hairpin_snat: Option<Ipv4Addr>,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            flow_capacity: 1 << 20,
            expiry_ms: DEFAULT_EXPIRY_MS,
            learn_class: DEFAULT_EXPIRY_CLASS,
            service_capacity: 1 << 18,
            nat_capacity: 1 << 20,
            pod_capacity: 1 << 16,
            policy_capacity: 1 << 16,
            selector_members: 1 << 20,
            selector_groups: 1 << 16,
            group_max_members: 1024,
            counter_size: 1024,
            gateway: Some(Gateway::default()),
            closing_class: Some(CLOSING_CLASS),
            hairpin_snat: Some(DEFAULT_HAIRPIN_SNAT),
        }
    }
}

impl DataplaneConfig {
    /// A small instance for unit tests (fast to build).
    pub fn small() -> Self {
        DataplaneConfig {
            flow_capacity: 4096,
            service_capacity: 1024,
            nat_capacity: 4096,
            pod_capacity: 1024,
            policy_capacity: 1024,
            selector_members: 4096,
            selector_groups: 1024,
            ..DataplaneConfig::default()
        }
    }
}
