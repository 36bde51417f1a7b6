/*
 * k8s.p4: the p4k8s Kubernetes dataplane program (PNA architecture).
 *
 * It keeps every table, action, action parameter (name and width), match
 * field, action selector and counter of the upstream IPDK program
 * (k8s_dp.p4 of ipdk-io/k8s-infra-offload, whose P4Info is
 * upstream/k8s_dp.p4info.txt), so a controller written for upstream drives
 * it unchanged; table sizes are p4k8s's defaults. Its P4Info is
 * k8s.p4info.txt beside this file (same names and ids as upstream).
 *
 * The behaviour is the contract of shared/design/PIPELINE.md, which the
 * p4k8s software target implements natively in Rust (dataplane/): this file
 * documents the program the target runs and is what a P4 toolchain would
 * compile for a hardware or DPDK target. It has NOT been compiled with p4c
 * (p4c is not available on this project's machines); the tests in
 * p4runtime-server/tests/p4info.rs check that its tables, actions,
 * parameters and sizes agree with k8s.p4info.txt and the Rust binding.
 *
 * p4k8s differences from upstream, all invisible in the P4Info: learned
 * flows are refreshed on every hit (upstream never re-arms the timer), and
 * pass 1 runs directly instead of recirculating.
 */

#include <core.p4>
#include <pna.p4>

typedef bit<48> EthernetAddress;
typedef bit<32> IPv4Address;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_ARP  = 0x0806;
const bit<16> ETHERTYPE_VLAN = 0x8100;
const bit<8>  PROTO_ICMP    = 1;
const bit<8>  PROTO_TCP     = 6;
const bit<8>  PROTO_UDP     = 17;
const bit<8>  PROTO_SCTP    = 132;
const bit<8>  PROTO_UDPLITE = 136;
const ExpireTimeProfileId_t EXPIRE_CLASS = (ExpireTimeProfileId_t) 2;

header ethernet_t { EthernetAddress dst_addr; EthernetAddress src_addr; bit<16> ether_type; }
header vlan_t { bit<3> pcp; bit<1> dei; bit<12> vid; bit<16> ether_type; }
header arp_t {
    bit<16> htype; bit<16> ptype; bit<8> hlen; bit<8> plen; bit<16> oper;
    EthernetAddress sha; IPv4Address spa; EthernetAddress tha; IPv4Address tpa;
}
header ipv4_t {
    bit<4> version; bit<4> ihl; bit<8> diffserv; bit<16> total_len;
    bit<16> identification; bit<3> flags; bit<13> frag_offset;
    bit<8> ttl; bit<8> protocol; bit<16> hdr_checksum;
    IPv4Address src_addr; IPv4Address dst_addr;
}
header tcp_t {
    bit<16> src_port; bit<16> dst_port; bit<32> seq_no; bit<32> ack_no;
    bit<4> data_offset; bit<4> res; bit<8> flags; bit<16> window;
    bit<16> checksum; bit<16> urgent_ptr;
}
header udp_t { bit<16> src_port; bit<16> dst_port; bit<16> length; bit<16> checksum; }
header sctp_t { bit<16> src_port; bit<16> dst_port; bit<32> verif_tag; bit<32> checksum; }
header icmp_t { bit<8> type; bit<8> code; bit<16> checksum; }

struct headers_t {
    ethernet_t ethernet; vlan_t vlan; arp_t arp; ipv4_t ipv4;
    tcp_t tcp; udp_t udp; sctp_t sctp; udp_t udplite; icmp_t icmp;
}

struct metadata_t {
    bit<32> src_ip;  bit<32> dst_ip;  bit<16> src_port; bit<16> dst_port;
    bit<24> mod_blob_ptr_dnat; bit<24> mod_blob_ptr_snat;
    bit<2>  mod_action;        /* 0 none, 1 write_dest_ip, 2 write_source_ip */
    bit<1>  new_flow;
    bit<8>  acl_pol_id; bit<8> range_check_ref; bit<8> ipset_mask; bit<8> range_mask;
    bit<2>  acl_status;        /* 0 allow, 1 ipset only, 2 range check, 3 deny all */
    bit<1>  acl_denied;
    bit<16> l4_dport;          /* the port (or ICMP type/code) range checks read */
    bit<1>  pass;
}

parser k8s_parser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                  in pna_main_parser_input_metadata_t istd) {
    state start { pkt.extract(hdr.ethernet); transition select(hdr.ethernet.ether_type) {
        ETHERTYPE_VLAN: vlan; ETHERTYPE_IPV4: ipv4; ETHERTYPE_ARP: arp; default: accept; } }
    state vlan { pkt.extract(hdr.vlan); transition select(hdr.vlan.ether_type) {
        ETHERTYPE_IPV4: ipv4; ETHERTYPE_ARP: arp; default: accept; } }
    state arp { pkt.extract(hdr.arp); transition accept; }
    state ipv4 {
        pkt.extract(hdr.ipv4);
        pkt.advance(((bit<32>) hdr.ipv4.ihl - 5) * 32);   /* options are kept, not parsed */
        meta.src_ip = hdr.ipv4.src_addr; meta.dst_ip = hdr.ipv4.dst_addr;
        transition select(hdr.ipv4.protocol) {
            PROTO_TCP: tcp; PROTO_UDP: udp; PROTO_SCTP: sctp; PROTO_UDPLITE: udplite;
            PROTO_ICMP: icmp; default: accept; }
    }
    state tcp { pkt.extract(hdr.tcp); meta.src_port = hdr.tcp.src_port;
        meta.dst_port = hdr.tcp.dst_port; meta.l4_dport = hdr.tcp.dst_port; transition accept; }
    state udp { pkt.extract(hdr.udp); meta.src_port = hdr.udp.src_port;
        meta.dst_port = hdr.udp.dst_port; meta.l4_dport = hdr.udp.dst_port; transition accept; }
    state sctp { pkt.extract(hdr.sctp); meta.l4_dport = hdr.sctp.dst_port; transition accept; }
    state udplite { pkt.extract(hdr.udplite); meta.l4_dport = hdr.udplite.dst_port; transition accept; }
    state icmp { pkt.extract(hdr.icmp); meta.l4_dport = hdr.icmp.type ++ hdr.icmp.code; transition accept; }
}

control k8s_pre_control(in headers_t hdr, inout metadata_t meta,
                        in pna_pre_input_metadata_t istd, inout pna_pre_output_metadata_t ostd) {
    apply { }
}

control k8s_dp_control(inout headers_t hdr, inout metadata_t meta,
                       in pna_main_input_metadata_t istd, inout pna_main_output_metadata_t ostd) {

    Counter<bit<64>, bit<32>>(1024, PNA_CounterType_t.PACKETS) pkt_cntr;
    Counter<bit<64>, bit<32>>(1024, PNA_CounterType_t.BYTES) byte_cntr;
    ActionSelector(PNA_HashAlgorithm_t.TARGET_DEFAULT, 1048576, 16) as_sl3_tcp;
    ActionSelector(PNA_HashAlgorithm_t.TARGET_DEFAULT, 1048576, 16) as_sl3_udp;

    /* ---- forwarding ---- */
    action set_dest_vport(PortId_t p) { send_to_port(p); }
    action set_dest_mac_vport(PortId_t p, bit<48> new_dmac) {
        if (new_dmac != 0 && new_dmac != hdr.ethernet.dst_addr) {
            hdr.ethernet.src_addr = hdr.ethernet.dst_addr;
            hdr.ethernet.dst_addr = new_dmac;
        }
        send_to_port(p);
    }
    table arpt_to_port_table {
        key = { hdr.arp.tpa : exact; }
        actions = { set_dest_vport; }
        const default_action = set_dest_vport((PortId_t) 1);
        size = 65536;
    }
    table ipv4_to_port_table {
        key = { hdr.ipv4.dst_addr : exact; }
        actions = { set_dest_mac_vport; }
        const default_action = set_dest_mac_vport((PortId_t) 1, 0);
        size = 65536;
    }

    /* ---- service load balancing and NAT ---- */
    action update_dst_ip(bit<32> new_ip, bit<16> new_port) {
        hdr.ipv4.dst_addr = new_ip;        /* checksums updated incrementally (RFC 1624) */
        if (hdr.tcp.isValid()) { hdr.tcp.dst_port = new_port; } else { hdr.udp.dst_port = new_port; }
    }
    action update_src_ip(bit<32> new_ip, bit<16> new_port) {
        hdr.ipv4.src_addr = new_ip;
        if (hdr.tcp.isValid()) { hdr.tcp.src_port = new_port; } else { hdr.udp.src_port = new_port; }
    }
    table write_dest_ip_table {
        key = { meta.mod_blob_ptr_dnat : exact; }
        actions = { update_dst_ip; @defaultonly NoAction; }
        default_action = NoAction;
        size = 1048576;
    }
    table write_source_ip_table {
        key = { meta.mod_blob_ptr_snat : exact; }
        actions = { update_src_ip; @defaultonly NoAction; }
        default_action = NoAction;
        size = 1048576;
    }

    action set_default_lb_dest(bit<24> ptr) {
        meta.mod_blob_ptr_dnat = ptr; meta.mod_action = 1; meta.new_flow = 1;
    }
    table tx_balance_tcp {
        key = { hdr.ipv4.dst_addr : exact; hdr.tcp.dst_port : exact;
                hdr.ipv4.src_addr : selector; hdr.tcp.src_port : selector; }
        actions = { set_default_lb_dest; NoAction; }
        const default_action = NoAction;
        implementation = as_sl3_tcp;
        size = 262144;
    }
    table tx_balance_udp {
        key = { hdr.ipv4.dst_addr : exact; hdr.udp.dst_port : exact;
                hdr.ipv4.src_addr : selector; hdr.udp.src_port : selector; }
        actions = { set_default_lb_dest; NoAction; }
        const default_action = NoAction;
        implementation = as_sl3_udp;
        size = 262144;
    }

    action set_key_for_reverse_ct(bit<24> ptr) { meta.mod_blob_ptr_snat = ptr; }
    table set_meta_tcp {
        key = { hdr.ipv4.dst_addr : exact; hdr.tcp.dst_port : exact; }
        actions = { set_key_for_reverse_ct; NoAction; }
        const default_action = NoAction;
        size = 262144;
    }
    table set_meta_udp {
        key = { hdr.ipv4.dst_addr : exact; hdr.udp.dst_port : exact; }
        actions = { set_key_for_reverse_ct; NoAction; }
        const default_action = NoAction;
        size = 262144;
    }

    /* Learner tables: hits refresh the entry's expiry in p4k8s. */
    action pinned_flows_hit(bit<24> ptr) {
        meta.mod_blob_ptr_dnat = ptr; meta.mod_action = 1;
        restart_expire_timer();
    }
    action pinned_flows_miss() {
        if (meta.new_flow == 1) {
            add_entry(action_name = "pinned_flows_hit",
                      action_params = meta.mod_blob_ptr_dnat, expire_time_profile_id = EXPIRE_CLASS);
        }
    }
    table pinned_flows {
        key = { meta.src_ip : exact; meta.dst_ip : exact; hdr.ipv4.protocol : exact;
                meta.src_port : exact; meta.dst_port : exact; }
        actions = { @tableonly pinned_flows_hit; @defaultonly pinned_flows_miss; }
        const default_action = pinned_flows_miss;
        add_on_miss = true;
        size = 1048576;
    }
    action pinned_flows_reverse_hit(bit<24> ptr) {
        meta.mod_blob_ptr_snat = ptr; meta.mod_action = 2;
        restart_expire_timer();
    }
    action pinned_flows_reverse_miss() {
        if (meta.mod_blob_ptr_snat != 0) {
            add_entry(action_name = "pinned_flows_reverse_hit",
                      action_params = meta.mod_blob_ptr_snat, expire_time_profile_id = EXPIRE_CLASS);
        }
    }
    table pinned_flows_reverse {
        key = { meta.src_ip : exact; meta.dst_ip : exact; hdr.ipv4.protocol : exact;
                meta.src_port : exact; meta.dst_port : exact; }
        actions = { @tableonly pinned_flows_reverse_hit; @defaultonly pinned_flows_reverse_miss; }
        const default_action = pinned_flows_reverse_miss;
        add_on_miss = true;
        size = 1048576;
    }

    /* ---- network policy ---- */
    action set_status_match_ipset_only(bit<8> pol_id) { meta.acl_pol_id = pol_id; meta.acl_status = 1; }
    action set_range_check_ref(bit<8> pol_id, bit<8> range_check_ref) {
        meta.acl_pol_id = pol_id; meta.range_check_ref = range_check_ref; meta.acl_status = 2;
    }
    action set_status_deny_all() { meta.acl_status = 3; }
    action acl_deny() { meta.acl_denied = 1; }
    action udp_acl_deny() { meta.acl_denied = 1; }
    action set_ipset_match_result(bit<8> ipset_matched_mask) { meta.ipset_mask = ipset_matched_mask; }

#define RANGE_BIT(i) (((meta.l4_dport >= min##i) && (meta.l4_dport <= max##i)) ? (bit<8>) (1 << i) : 0)
#define RANGE_ACTION(name) \
    action name(bit<16> min0, bit<16> max0, bit<16> min1, bit<16> max1, \
                bit<16> min2, bit<16> max2, bit<16> min3, bit<16> max3, \
                bit<16> min4, bit<16> max4, bit<16> min5, bit<16> max5, \
                bit<16> min6, bit<16> max6, bit<16> min7, bit<16> max7) { \
        meta.range_mask = RANGE_BIT(0) | RANGE_BIT(1) | RANGE_BIT(2) | RANGE_BIT(3) | \
                          RANGE_BIT(4) | RANGE_BIT(5) | RANGE_BIT(6) | RANGE_BIT(7); \
    }
    RANGE_ACTION(do_range_check_tcp)
    RANGE_ACTION(do_range_check_udp)
    RANGE_ACTION(do_range_check_sctp)
    RANGE_ACTION(do_range_check_udplite)
    RANGE_ACTION(do_icmp_type_code_check)

    table acl_pod_ip_proto_table_egress {
        key = { hdr.ipv4.src_addr : exact; hdr.ipv4.protocol : lpm; }
        actions = { set_status_match_ipset_only; set_range_check_ref; set_status_deny_all; NoAction; }
        const default_action = NoAction;
        size = 65536;
    }
    table acl_pod_ip_proto_table_ingress {
        key = { hdr.ipv4.dst_addr : exact; hdr.ipv4.protocol : lpm; }
        actions = { set_status_match_ipset_only; set_range_check_ref; set_status_deny_all; NoAction; }
        const default_action = NoAction;
        size = 65536;
    }
    table acl_ipset_match_table_egress {
        key = { meta.acl_pol_id : exact; hdr.ipv4.dst_addr : lpm; }
        actions = { acl_deny; set_ipset_match_result; }
        const default_action = acl_deny;
        size = 65536;
    }
    table acl_ipset_match_table_ingress {
        key = { meta.acl_pol_id : exact; hdr.ipv4.src_addr : lpm; }
        actions = { acl_deny; set_ipset_match_result; }
        const default_action = acl_deny;
        size = 65536;
    }
    table tcp_dport_rc_table {
        key = { meta.acl_pol_id : exact; }
        actions = { acl_deny; do_range_check_tcp; }
        const default_action = acl_deny;
        size = 65536;
    }
    table udp_dport_rc_table {
        key = { meta.acl_pol_id : exact; }
        actions = { udp_acl_deny; do_range_check_udp; }
        const default_action = udp_acl_deny;
        size = 65536;
    }
    table sctp_dport_rc_table {
        key = { meta.acl_pol_id : exact; }
        actions = { acl_deny; do_range_check_sctp; }
        const default_action = acl_deny;
        size = 65536;
    }
    table udpl_dport_rc_table {
        key = { meta.acl_pol_id : exact; }
        actions = { acl_deny; do_range_check_udplite; }
        const default_action = acl_deny;
        size = 65536;
    }
    table icmp_type_code_check_table {
        key = { meta.acl_pol_id : exact; }
        actions = { acl_deny; do_icmp_type_code_check; }
        const default_action = acl_deny;
        size = 65536;
    }

    /* Policy of one direction: the verdict of PIPELINE.md. */
    action policy_reset() {
        meta.acl_status = 0; meta.acl_denied = 0; meta.ipset_mask = 0; meta.range_mask = 0;
    }
    #define APPLY_POLICY(dir) \
        policy_reset(); \
        acl_pod_ip_proto_table_##dir.apply(); \
        if (meta.acl_status == 3) { meta.acl_denied = 1; } \
        else if (meta.acl_status != 0) { \
            acl_ipset_match_table_##dir.apply(); \
            if (meta.acl_denied == 0 && meta.acl_status == 2) { \
                if (meta.range_check_ref == 1 && hdr.tcp.isValid()) { tcp_dport_rc_table.apply(); } \
                else if (meta.range_check_ref == 2 && hdr.udp.isValid()) { udp_dport_rc_table.apply(); } \
                else if (meta.range_check_ref == 3 && hdr.sctp.isValid()) { sctp_dport_rc_table.apply(); } \
                else if (meta.range_check_ref == 4 && hdr.udplite.isValid()) { udpl_dport_rc_table.apply(); } \
                else if (meta.range_check_ref == 5 && hdr.icmp.isValid()) { icmp_type_code_check_table.apply(); } \
                if ((meta.ipset_mask & meta.range_mask) == 0) { meta.acl_denied = 1; } \
            } \
        } \
        if (meta.acl_denied == 1) { drop_packet(); return; }

    apply {
        pkt_cntr.count((bit<32>) istd.input_port);
        byte_cntr.count((bit<32>) istd.input_port);
        if (hdr.ethernet.dst_addr[40:40] == 1 && !hdr.arp.isValid()) { drop_packet(); return; }
        if (hdr.ipv4.isValid()) {
            /* Pass 0. */
            if (hdr.tcp.isValid()) {
                if ((hdr.tcp.flags & 0x3f) == 0x02) {
                    if (tx_balance_tcp.apply().hit) { pinned_flows.apply(); }
                } else if (!pinned_flows_reverse.apply().hit) {
                    pinned_flows.apply();
                }
            } else if (hdr.udp.isValid()) {
                if (tx_balance_udp.apply().hit) { pinned_flows.apply(); }
                else { pinned_flows_reverse.apply(); }
            }
            if (meta.mod_action == 1) {
                write_dest_ip_table.apply();
                if (meta.new_flow == 1) {
                    if (hdr.tcp.isValid()) { set_meta_tcp.apply(); } else { set_meta_udp.apply(); }
                    meta.src_ip = hdr.ipv4.dst_addr; meta.dst_ip = hdr.ipv4.src_addr;
                    meta.src_port = meta.dst_port; meta.dst_port = meta.src_port;
                    pinned_flows_reverse.apply();
                }
            }
            if (istd.direction == PNA_Direction_t.HOST_TO_NET) {
                APPLY_POLICY(egress)
                if (meta.mod_action == 2) { write_source_ip_table.apply(); }
            }
            /* Pass 1 (run directly; upstream recirculates). */
            APPLY_POLICY(ingress)
            ipv4_to_port_table.apply();
        } else if (hdr.arp.isValid()) {
            arpt_to_port_table.apply();
        } else {
            send_to_port((PortId_t) 1);
        }
    }
}

control k8s_deparser(packet_out pkt, in headers_t hdr, in metadata_t meta,
                     in pna_main_output_metadata_t ostd) {
    InternetChecksum() ck;
    apply {
        pkt.emit(hdr.ethernet); pkt.emit(hdr.vlan); pkt.emit(hdr.arp); pkt.emit(hdr.ipv4);
        pkt.emit(hdr.tcp); pkt.emit(hdr.udp); pkt.emit(hdr.sctp); pkt.emit(hdr.udplite);
        pkt.emit(hdr.icmp);
    }
}

PNA_NIC(k8s_parser(), k8s_pre_control(), k8s_dp_control(), k8s_deparser()) main;
