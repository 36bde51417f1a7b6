#!/usr/bin/env python3
"""Interoperability test: p4runtime-shell (p4runtime_sh.shell) against `p4k8s run`.

Connects as primary, pushes the upstream k8s_dp P4Info, writes what upstream's
manager writes for 3 pods and a 2-endpoint TCP service, reads every table back
and compares, checks the per-update errors of a duplicate insert
(ALREADY_EXISTS) and of a delete of a missing key (NOT_FOUND), reads the
`pkt_cntr` counter, then deletes everything it wrote and checks the tables
are empty again.

Usage: p4rt_shell_test.py --addr 127.0.0.1:PORT --p4info p4/upstream/k8s_dp.p4info.txt
Prints "p4runtime-shell: N passed, N failed" and exits 1 on any failure.
"""

import argparse
import ipaddress
import os
import sys
import tempfile
import threading
import traceback

import google.protobuf.text_format
from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2

import p4runtime_sh.shell as sh
from p4runtime_sh.p4runtime import P4RuntimeWriteException

WATCHDOG_SECONDS = 120

# The scenario: 3 pods (IP, port) and one TCP service with 2 endpoints.
PODS = [("10.0.0.2", 2), ("10.0.0.3", 3), ("10.0.0.4", 4)]
ENDPOINTS = [(1, "10.0.0.3"), (2, "10.0.0.4")]  # (endpoint id = member id, pod IP)
TARGET_PORT = 8080
VIP, VIP_PORT = "10.96.0.10", 80
GROUP = 100
PROFILE = "as_sl3_tcp"


def mac(port):
    return "02:00:00:00:01:%02x" % port


def ip(s):
    return int(ipaddress.IPv4Address(s))


def mac_int(s):
    return int(s.replace(":", ""), 16)


class Checks:
    def __init__(self, label):
        self.label = label
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("  ok    %s" % name, flush=True)
        else:
            self.failed += 1
            print("  FAIL  %s%s" % (name, ("\n        " + str(detail).replace("\n", "\n        ")) if detail else ""), flush=True)
        return ok

    def equal(self, name, got, want):
        return self.check(name, got == want, "got:  %r\nwant: %r" % (got, want))

    def summary(self):
        print("%s: %d passed, %d failed" % (self.label, self.passed, self.failed), flush=True)


# Every bytestring the target returned in a read, to check they are canonical.
READ_VALUES = []


def as_int(b):
    READ_VALUES.append(b)
    return int.from_bytes(b, "big")


def canonical(b):
    """P4Runtime's canonical form: no leading zero bytes, zero as one 0x00 byte."""
    return b == (b.lstrip(b"\x00") or b"\x00")


def norm_entry(msg):
    """A TableEntry protobuf as (match, action) in names and integers."""
    table = sh.context.get_obj_by_id(msg.table_id)
    tname = table.preamble.alias
    fields = {f.id: f.name for f in table.match_fields}
    match = tuple(sorted((fields[m.field_id], as_int(m.exact.value)) for m in msg.match))
    kind = msg.action.WhichOneof("type")
    if kind == "action":
        action = norm_action(msg.action.action)
    elif kind == "action_profile_group_id":
        action = ("group", msg.action.action_profile_group_id)
    elif kind == "action_profile_member_id":
        action = ("member", msg.action.action_profile_member_id)
    else:
        action = (kind,)
    return (tname, match, action)


def norm_action(a):
    action = sh.context.get_obj_by_id(a.action_id)
    params = {p.id: p.name for p in action.params}
    return (action.preamble.alias, tuple(sorted((params[p.param_id], as_int(p.value)) for p in a.params)))


def table_entry(table, match, action, params=None, group_id=None):
    te = sh.TableEntry(table)
    for k, v in match.items():
        te.match[k] = str(v)
    if group_id is not None:
        te.group_id = group_id
    else:
        te.action = sh.Action(action)
        for k, v in (params or {}).items():
            te.action[k] = str(v)
    return te


def expected_writes():
    """(shell entity, normalized form) for everything the manager writes, in write order."""
    out = []
    for pod_ip, port in PODS:
        out.append((table_entry("arpt_to_port_table", {"hdr.arp.tpa": pod_ip}, "set_dest_vport", {"p": port}),
                    ("arpt_to_port_table", (("hdr.arp.tpa", ip(pod_ip)),), ("set_dest_vport", (("p", port),)))))
        out.append((table_entry("ipv4_to_port_table", {"hdr.ipv4.dst_addr": pod_ip}, "set_dest_mac_vport",
                                {"p": port, "new_dmac": mac(port)}),
                    ("ipv4_to_port_table", (("hdr.ipv4.dst_addr", ip(pod_ip)),),
                     ("set_dest_mac_vport", (("new_dmac", mac_int(mac(port))), ("p", port))))))
    for ep_id, ep_ip in ENDPOINTS:
        out.append((table_entry("write_dest_ip_table", {"meta.mod_blob_ptr_dnat": ep_id}, "update_dst_ip",
                                {"new_ip": ep_ip, "new_port": TARGET_PORT}),
                    ("write_dest_ip_table", (("meta.mod_blob_ptr_dnat", ep_id),),
                     ("update_dst_ip", (("new_ip", ip(ep_ip)), ("new_port", TARGET_PORT))))))
        m = sh.ActionProfileMember(PROFILE)(member_id=ep_id, action="set_default_lb_dest")
        m.action["ptr"] = str(ep_id)
        out.append((m, ("member", PROFILE, ep_id, ("set_default_lb_dest", (("ptr", ep_id),)))))
    g = sh.ActionProfileGroup(PROFILE)(group_id=GROUP)
    for ep_id, _ in ENDPOINTS:
        g.add(ep_id)
    out.append((g, ("group", PROFILE, GROUP, tuple(sorted((ep_id, 1) for ep_id, _ in ENDPOINTS)))))
    for _, ep_ip in ENDPOINTS:
        out.append((table_entry("set_meta_tcp", {"hdr.ipv4.dst_addr": ep_ip, "hdr.tcp.dst_port": TARGET_PORT},
                                "set_key_for_reverse_ct", {"ptr": GROUP}),
                    ("set_meta_tcp", (("hdr.ipv4.dst_addr", ip(ep_ip)), ("hdr.tcp.dst_port", TARGET_PORT)),
                     ("set_key_for_reverse_ct", (("ptr", GROUP),)))))
    out.append((table_entry("tx_balance_tcp", {"hdr.ipv4.dst_addr": VIP, "hdr.tcp.dst_port": VIP_PORT}, None,
                            group_id=GROUP),
                ("tx_balance_tcp", (("hdr.ipv4.dst_addr", ip(VIP)), ("hdr.tcp.dst_port", VIP_PORT)), ("group", GROUP))))
    out.append((table_entry("write_source_ip_table", {"meta.mod_blob_ptr_snat": GROUP}, "update_src_ip",
                            {"new_ip": VIP, "new_port": VIP_PORT}),
                ("write_source_ip_table", (("meta.mod_blob_ptr_snat", GROUP),),
                 ("update_src_ip", (("new_ip", ip(VIP)), ("new_port", VIP_PORT))))))
    return out


TABLES = ["arpt_to_port_table", "ipv4_to_port_table", "write_dest_ip_table", "set_meta_tcp",
          "tx_balance_tcp", "write_source_ip_table"]


def read_tables():
    got = []
    for t in TABLES:
        got.extend(norm_entry(e.msg()) for e in sh.TableEntry(t).read())
    return sorted(got)


def read_members():
    out = []
    for m in sh.ActionProfileMember(PROFILE).read():
        msg = m.msg()
        out.append(("member", PROFILE, msg.member_id, norm_action(msg.action)))
    return sorted(out)


def read_groups():
    out = []
    for g in sh.ActionProfileGroup(PROFILE).read():
        msg = g.msg()
        out.append(("group", PROFILE, msg.group_id, tuple(sorted((m.member_id, m.weight) for m in msg.members))))
    return sorted(out)


def write_error_codes(fn):
    """Run a write; return the per-update canonical codes p4runtime-shell reports, or None if it succeeded."""
    try:
        fn()
    except P4RuntimeWriteException as e:
        return [(idx, err.canonical_code) for idx, err in e.errors]
    return None


def code_name(codes):
    if codes is None:
        return "write succeeded"
    return [(i, code_pb2.Code.Name(c)) for i, c in codes]


def run(c, addr, p4info_path):
    tmp = tempfile.mkdtemp(prefix="p4rt-shell-")
    bin_path = os.path.join(tmp, "device_config.bin")
    open(bin_path, "wb").close()  # the target takes no device config

    # p4runtime-shell 0.0.6's Options enum gives `verbose` and `canonical_bytestrings` the
    # same value (bool), so one is an alias of the other: verbose=False would also switch
    # to padded bytestrings. Keep both on (canonical, as P4Runtime 1.5 wants) and silence
    # the echo of every value set instead.
    sh._print = lambda *args, **kwargs: None
    try:
        sh.setup(device_id=1, grpc_addr=addr, election_id=(0, 1),
                 config=sh.FwdPipeConfig(p4info_path, bin_path), verbose=True)
    except SystemExit:
        c.check("connect as primary and push the upstream P4Info", False, "sh.setup exited (see log above)")
        return
    c.check("connect as primary and push the upstream P4Info", True)
    try:
        body(c, p4info_path)
    finally:
        sh.teardown()


def body(c, p4info_path):
    version = sh.client.api_version()
    c.check("Capabilities reports a P4Runtime 1.x version", version.startswith("1."), version)

    want_p4info = p4info_pb2.P4Info()
    with open(p4info_path) as f:
        google.protobuf.text_format.Merge(f.read(), want_p4info, allow_unknown_field=True)
    c.check("GetForwardingPipelineConfig returns the P4Info pushed", sh.client.get_p4info() == want_p4info)

    writes = expected_writes()
    sent = writes[-1][0].msg().match[0].exact.value  # write_source_ip_table's key, GROUP = 100
    c.check("the manager's entries go out as canonical bytestrings (key %r)" % sent, sent == bytes([GROUP]))
    # Start from empty tables, as the manager does.
    c.equal("tables start empty", (read_tables(), read_members(), read_groups()), ([], [], []))

    for ent, norm in writes:
        try:
            ent.insert()
            ok, detail = True, ""
        except Exception as e:  # noqa: BLE001 - report and go on
            ok, detail = False, str(e)
        c.check("insert %s" % (norm,), ok, detail)

    want_tables = sorted(n for _, n in writes if n[0] not in ("member", "group"))
    got_tables = read_tables()
    for t in TABLES:
        c.equal("read back %s" % t, [e for e in got_tables if e[0] == t], [e for e in want_tables if e[0] == t])
    c.equal("read back %s members" % PROFILE, read_members(), sorted(n for _, n in writes if n[0] == "member"))
    c.equal("read back %s group membership" % PROFILE, read_groups(), sorted(n for _, n in writes if n[0] == "group"))

    # One entry read by its key.
    one = [norm_entry(e.msg()) for e in table_entry("tx_balance_tcp", {"hdr.ipv4.dst_addr": VIP,
                                                                      "hdr.tcp.dst_port": VIP_PORT},
                                                    None, group_id=GROUP).read()]
    c.equal("read tx_balance_tcp by key", one, [n for _, n in writes if n[0] == "tx_balance_tcp"])

    # Duplicate insert (same key, other action data): ALREADY_EXISTS, entry unchanged.
    dup = table_entry("arpt_to_port_table", {"hdr.arp.tpa": PODS[0][0]}, "set_dest_vport", {"p": 9})
    codes = write_error_codes(dup.insert)
    c.equal("duplicate insert fails with per-update ALREADY_EXISTS", code_name(codes),
            [(0, "ALREADY_EXISTS")])
    c.equal("duplicate insert left the entry unchanged",
            [e for e in read_tables() if e[0] == "arpt_to_port_table" and e[1] == (("hdr.arp.tpa", ip(PODS[0][0])),)],
            [writes[0][1]])
    dup_member = sh.ActionProfileMember(PROFILE)(member_id=ENDPOINTS[0][0], action="set_default_lb_dest")
    dup_member.action["ptr"] = "7"
    c.equal("duplicate member insert fails with per-update ALREADY_EXISTS",
            code_name(write_error_codes(dup_member.insert)), [(0, "ALREADY_EXISTS")])

    # Delete of a key that is not there: NOT_FOUND.
    missing = table_entry("arpt_to_port_table", {"hdr.arp.tpa": "10.0.0.99"}, "set_dest_vport", {"p": 2})
    c.equal("delete of a missing key fails with per-update NOT_FOUND", code_name(write_error_codes(missing.delete)),
            [(0, "NOT_FOUND")])
    missing_group = sh.ActionProfileGroup(PROFILE)(group_id=GROUP + 1)
    c.equal("delete of a missing group fails with per-update NOT_FOUND",
            code_name(write_error_codes(missing_group.delete)), [(0, "NOT_FOUND")])

    # Indirect counter pkt_cntr: one index, then all of them.
    ce = sh.CounterEntry("pkt_cntr")
    ce.index = 7
    got = [(e.msg().index.index, e.msg().HasField("data"), e.msg().data.packet_count) for e in ce.read()]
    c.check("read pkt_cntr[7]: one entry with counter data",
            len(got) == 1 and got[0][0] == 7 and got[0][1] and got[0][2] >= 0, got)
    idx = sorted(e.msg().index.index for e in sh.CounterEntry("pkt_cntr").read())
    c.check("wildcard read of pkt_cntr returns its 1024 cells", idx == list(range(1024)),
            "%d cells, first %r, last %r" % (len(idx), idx[:3], idx[-3:]))

    # Legacy (padded, non-canonical) bytestrings, as p4runtime-shell sends them with
    # canonical_bytestrings off: the target must accept them and address the same entry.
    sh.global_options["canonical_bytestrings"] = False
    try:
        padded = table_entry("write_dest_ip_table", {"meta.mod_blob_ptr_dnat": 3}, "update_dst_ip",
                             {"new_ip": "10.0.0.5", "new_port": 80})
    finally:
        sh.global_options["canonical_bytestrings"] = True
    pmsg = padded.msg()
    c.check("padded encoding is really padded (ptr %r, new_port %r)"
            % (pmsg.match[0].exact.value, pmsg.action.action.params[1].value),
            len(pmsg.match[0].exact.value) == 3 and len(pmsg.action.action.params[1].value) == 2)
    try:
        padded.insert()
        ok, detail = True, ""
    except Exception as e:  # noqa: BLE001
        ok, detail = False, str(e)
    c.check("insert with padded bytestrings", ok, detail)
    same = table_entry("write_dest_ip_table", {"meta.mod_blob_ptr_dnat": 3}, "update_dst_ip",
                       {"new_ip": "10.0.0.5", "new_port": 80})
    c.equal("read it back by its canonical key",
            [norm_entry(e.msg()) for e in same.read()],
            [("write_dest_ip_table", (("meta.mod_blob_ptr_dnat", 3),),
              ("update_dst_ip", (("new_ip", ip("10.0.0.5")), ("new_port", 80))))])
    c.equal("delete it by its canonical key", code_name(write_error_codes(same.delete)), "write succeeded")

    bad = sorted(set(b for b in READ_VALUES if not canonical(b)))
    c.check("every value read back is a canonical bytestring (%d values)" % len(READ_VALUES), not bad,
            "non-canonical: %r" % bad[:10])

    # Clean up in reverse (table entries before the group, the group before its members).
    for ent, norm in reversed(writes):
        try:
            ent.delete()
            ok, detail = True, ""
        except Exception as e:  # noqa: BLE001
            ok, detail = False, str(e)
        c.check("delete %s" % (norm,), ok, detail)
    c.equal("tables empty after deletes", (read_tables(), read_members(), read_groups()), ([], [], []))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--p4info", required=True)
    args = ap.parse_args()

    c = Checks("p4runtime-shell")

    def watchdog():
        c.check("finished within %d s" % WATCHDOG_SECONDS, False)
        c.summary()
        os._exit(1)

    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()
    try:
        run(c, args.addr, args.p4info)
    except Exception:  # noqa: BLE001
        c.check("no unexpected exception", False, traceback.format_exc())
    timer.cancel()
    c.summary()
    sys.stdout.flush()
    # p4runtime-shell's stream thread can outlive teardown on errors: do not wait for it.
    os._exit(0 if c.failed == 0 else 1)


if __name__ == "__main__":
    main()
