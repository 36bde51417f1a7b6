#!/usr/bin/env python3
"""Interoperability test: finsy (asyncio P4Runtime client) against `p4k8s run`.

The same scenario as p4rt_shell_test.py, through finsy's async API: connect as
primary with the upstream k8s_dp P4Info (finsy pushes it), write what
upstream's manager writes for 3 pods and a 2-endpoint TCP service in one
WriteRequest, read every table back and compare, check the per-update status
finsy reports for a duplicate insert (ALREADY_EXISTS) and a delete of a
missing key (NOT_FOUND), read `pkt_cntr`, delete everything and check the
tables are empty again. Other addresses and ids than the shell test, so the
two cannot mask each other's leftovers.

Usage: finsy_test.py --addr 127.0.0.1:PORT --p4info p4/upstream/k8s_dp.p4info.txt
Prints "finsy: N passed, N failed" and exits 1 on any failure.
"""

import argparse
import asyncio
import ipaddress
import sys
import traceback
from pathlib import Path

import finsy as fy
from finsy import GRPCStatusCode, P4ClientError

TIMEOUT = 20.0  # seconds, for any one step
TOTAL_TIMEOUT = 120.0

PODS = [("10.1.0.2", 2), ("10.1.0.3", 3), ("10.1.0.4", 4)]
ENDPOINTS = [(11, "10.1.0.3"), (12, "10.1.0.4")]  # (endpoint id = member id, pod IP)
TARGET_PORT = 8443
VIP, VIP_PORT = "10.96.1.20", 443
GROUP = 200
PROFILE = "as_sl3_tcp"
TABLES = ["arpt_to_port_table", "ipv4_to_port_table", "write_dest_ip_table", "set_meta_tcp",
          "tx_balance_tcp", "write_source_ip_table"]


def mac(port):
    return "02:00:00:00:02:%02x" % port


def num(v):
    """A decoded finsy value (int, IP address, MAC address, string) as an integer."""
    if isinstance(v, int):
        return v
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return int(v)
    s = str(v)
    if ":" in s and len(s) == 17:
        return int(s.replace(":", ""), 16)
    try:
        return int(ipaddress.IPv4Address(s))
    except ValueError:
        return int(s, 0)


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


def norm_action(a):
    if isinstance(a, fy.P4IndirectAction):
        if a.group_id is not None:
            return ("group", a.group_id)
        if a.member_id is not None:
            return ("member", a.member_id)
        return ("oneshot",)
    if a is None:
        return None
    return (a.name.split(".")[-1], tuple(sorted((k, num(v)) for k, v in a.args.items())))


def short(name):
    """finsy names match fields by their last component (alias): "hdr.arp.tpa" -> "tpa"."""
    return name.split(".")[-1]


def norm_entry(e):
    match = tuple(sorted((short(k), num(v)) for k, v in (e.match or {}).items()))
    return (short(e.table_id), match, norm_action(e.action))


def short_norm(n):
    """An expected table entry (full match field names) in finsy's names."""
    if n[0] in ("member", "group"):
        return n
    return (n[0], tuple(sorted((short(k), v) for k, v in n[1])), n[2])


def scenario():
    """(finsy entity, normalized form) for everything the manager writes, in write order."""
    ip = lambda s: int(ipaddress.IPv4Address(s))  # noqa: E731
    mac_int = lambda s: int(s.replace(":", ""), 16)  # noqa: E731
    out = []
    for pod_ip, port in PODS:
        out.append((fy.P4TableEntry("arpt_to_port_table", match=fy.Match({"hdr.arp.tpa": pod_ip}),
                                    action=fy.Action("set_dest_vport", p=port)),
                    ("arpt_to_port_table", (("hdr.arp.tpa", ip(pod_ip)),), ("set_dest_vport", (("p", port),)))))
        out.append((fy.P4TableEntry("ipv4_to_port_table", match=fy.Match({"hdr.ipv4.dst_addr": pod_ip}),
                                    action=fy.Action("set_dest_mac_vport", p=port, new_dmac=mac(port))),
                    ("ipv4_to_port_table", (("hdr.ipv4.dst_addr", ip(pod_ip)),),
                     ("set_dest_mac_vport", (("new_dmac", mac_int(mac(port))), ("p", port))))))
    for ep_id, ep_ip in ENDPOINTS:
        out.append((fy.P4TableEntry("write_dest_ip_table", match=fy.Match({"meta.mod_blob_ptr_dnat": ep_id}),
                                    action=fy.Action("update_dst_ip", new_ip=ep_ip, new_port=TARGET_PORT)),
                    ("write_dest_ip_table", (("meta.mod_blob_ptr_dnat", ep_id),),
                     ("update_dst_ip", (("new_ip", ip(ep_ip)), ("new_port", TARGET_PORT))))))
        out.append((fy.P4ActionProfileMember(PROFILE, member_id=ep_id,
                                             action=fy.Action("set_default_lb_dest", ptr=ep_id)),
                    ("member", PROFILE, ep_id, ("set_default_lb_dest", (("ptr", ep_id),)))))
    out.append((fy.P4ActionProfileGroup(PROFILE, group_id=GROUP,
                                        members=[fy.P4Member(ep_id, weight=1) for ep_id, _ in ENDPOINTS]),
                ("group", PROFILE, GROUP, tuple(sorted((ep_id, 1) for ep_id, _ in ENDPOINTS)))))
    for _, ep_ip in ENDPOINTS:
        out.append((fy.P4TableEntry("set_meta_tcp",
                                    match=fy.Match({"hdr.ipv4.dst_addr": ep_ip, "hdr.tcp.dst_port": TARGET_PORT}),
                                    action=fy.Action("set_key_for_reverse_ct", ptr=GROUP)),
                    ("set_meta_tcp", (("hdr.ipv4.dst_addr", ip(ep_ip)), ("hdr.tcp.dst_port", TARGET_PORT)),
                     ("set_key_for_reverse_ct", (("ptr", GROUP),)))))
    out.append((fy.P4TableEntry("tx_balance_tcp",
                                match=fy.Match({"hdr.ipv4.dst_addr": VIP, "hdr.tcp.dst_port": VIP_PORT}),
                                action=fy.P4IndirectAction(group_id=GROUP)),
                ("tx_balance_tcp", (("hdr.ipv4.dst_addr", ip(VIP)), ("hdr.tcp.dst_port", VIP_PORT)), ("group", GROUP))))
    out.append((fy.P4TableEntry("write_source_ip_table", match=fy.Match({"meta.mod_blob_ptr_snat": GROUP}),
                                action=fy.Action("update_src_ip", new_ip=VIP, new_port=VIP_PORT)),
                ("write_source_ip_table", (("meta.mod_blob_ptr_snat", GROUP),),
                 ("update_src_ip", (("new_ip", ip(VIP)), ("new_port", VIP_PORT))))))
    return [(ent, short_norm(n)) for ent, n in out]


async def collect(sw, entity):
    async def _go():
        return [e async for e in sw.read(entity)]
    return await asyncio.wait_for(_go(), TIMEOUT)


async def read_tables(sw):
    got = []
    for t in TABLES:
        got.extend(norm_entry(e) for e in await collect(sw, fy.P4TableEntry(t)))
    return sorted(got)


async def read_members(sw):
    return sorted(("member", PROFILE, m.member_id, norm_action(m.action))
                  for m in await collect(sw, fy.P4ActionProfileMember(PROFILE)))


async def read_groups(sw):
    return sorted(("group", PROFILE, g.group_id, tuple(sorted((m.member_id, m.weight) for m in (g.members or []))))
                  for g in await collect(sw, fy.P4ActionProfileGroup(PROFILE)))


async def write_error_codes(coro):
    """Await a write; return [(update index, status name)] from finsy's P4ClientError, or None on success."""
    try:
        await asyncio.wait_for(coro, TIMEOUT)
    except P4ClientError as e:
        return {"code": e.code.name, "details": sorted((i, d.canonical_code.name) for i, d in e.details.items())}
    return None


async def body(c, sw, p4info_path):
    c.check("connected as primary", sw.is_primary)
    c.check("P4Runtime version reported", str(sw.p4runtime_version).startswith("1."), sw.p4runtime_version)

    writes = scenario()
    c.equal("tables start empty", (await read_tables(sw), await read_members(sw), await read_groups(sw)),
            ([], [], []))

    # The manager's writes, as one batch (finsy keeps the order within a WriteRequest).
    try:
        await asyncio.wait_for(sw.insert([ent for ent, _ in writes]), TIMEOUT)
        c.check("insert the manager's %d entities in one WriteRequest" % len(writes), True)
    except P4ClientError as e:
        c.check("insert the manager's %d entities in one WriteRequest" % len(writes), False, str(e))

    want = sorted(n for _, n in writes if n[0] not in ("member", "group"))
    got = await read_tables(sw)
    for t in TABLES:
        c.equal("read back %s" % t, [e for e in got if e[0] == t], [e for e in want if e[0] == t])
    c.equal("read back %s members" % PROFILE, await read_members(sw),
            sorted(n for _, n in writes if n[0] == "member"))
    c.equal("read back %s group membership" % PROFILE, await read_groups(sw),
            sorted(n for _, n in writes if n[0] == "group"))

    # Read one entry by key, and all entries of all tables with one wildcard.
    one = [norm_entry(e) for e in await collect(sw, fy.P4TableEntry(
        "write_source_ip_table", match=fy.Match({"meta.mod_blob_ptr_snat": GROUP})))]
    c.equal("read write_source_ip_table by key", one, [n for _, n in writes if n[0] == "write_source_ip_table"])
    every = sorted(norm_entry(e) for e in await collect(sw, fy.P4TableEntry()))
    c.equal("wildcard read of every table", every, want)

    # Duplicate insert: per-update ALREADY_EXISTS; the entry keeps its action.
    pod_ip, _ = PODS[0]
    def dup():
        return fy.P4TableEntry("arpt_to_port_table", match=fy.Match({"hdr.arp.tpa": pod_ip}),
                               action=fy.Action("set_dest_vport", p=9))
    c.equal("duplicate insert: finsy reports per-update ALREADY_EXISTS",
            await write_error_codes(sw.insert([dup()])), {"code": "UNKNOWN", "details": [(0, "ALREADY_EXISTS")]})
    c.equal("duplicate insert left the entry unchanged",
            [norm_entry(e) for e in await collect(sw, fy.P4TableEntry(
                "arpt_to_port_table", match=fy.Match({"hdr.arp.tpa": pod_ip})))],
            [writes[0][1]])

    # Delete of a missing key: per-update NOT_FOUND.
    def missing():
        return fy.P4TableEntry("arpt_to_port_table", match=fy.Match({"hdr.arp.tpa": "10.1.0.99"}))
    c.equal("delete of a missing key: finsy reports per-update NOT_FOUND",
            await write_error_codes(sw.delete([missing()])), {"code": "UNKNOWN", "details": [(0, "NOT_FOUND")]})

    # A batch with both, between two good updates: each update gets its own status.
    def good():  # finsy's +/- mark the object itself: one object per update
        return fy.P4TableEntry("arpt_to_port_table", match=fy.Match({"hdr.arp.tpa": "10.1.0.50"}),
                               action=fy.Action("set_dest_vport", p=2))
    res = await write_error_codes(sw.write([+good(), +dup(), -missing(), -good()]))
    c.equal("mixed batch: finsy reports ALREADY_EXISTS and NOT_FOUND at their indices, OK elsewhere",
            res, {"code": "UNKNOWN", "details": [(1, "ALREADY_EXISTS"), (2, "NOT_FOUND")]})
    c.equal("mixed batch: the good insert and delete both applied",
            [norm_entry(e) for e in await collect(sw, fy.P4TableEntry(
                "arpt_to_port_table", match=fy.Match({"hdr.arp.tpa": "10.1.0.50"})))], [])

    # Indirect counter pkt_cntr.
    got = await collect(sw, fy.P4CounterEntry("pkt_cntr", index=7))
    c.check("read pkt_cntr[7]: one entry with counter data",
            len(got) == 1 and got[0].index == 7 and got[0].data is not None and got[0].packet_count >= 0, got)
    cells = sorted(e.index for e in await collect(sw, fy.P4CounterEntry("pkt_cntr")))
    c.check("wildcard read of pkt_cntr returns its 1024 cells", cells == list(range(1024)),
            "%d cells, first %r, last %r" % (len(cells), cells[:3], cells[-3:]))

    # Delete everything, in reverse, in one WriteRequest.
    try:
        await asyncio.wait_for(sw.delete([ent for ent, _ in reversed(writes)]), TIMEOUT)
        c.check("delete the manager's entities in one WriteRequest", True)
    except P4ClientError as e:
        c.check("delete the manager's entities in one WriteRequest", False, str(e))
    c.equal("tables empty after deletes", (await read_tables(sw), await read_members(sw), await read_groups(sw)),
            ([], [], []))


async def run(c, addr, p4info_path):
    # p4force: push the P4Info even if the target already has one (another client pushed it).
    opts = fy.SwitchOptions(p4info=Path(p4info_path), p4force=True, device_id=1)
    sw = fy.Switch("p4k8s", addr, opts)
    try:
        await asyncio.wait_for(sw.__aenter__(), TIMEOUT)
    except Exception as e:  # noqa: BLE001
        c.check("connect and push the upstream P4Info", False, "%s: %s" % (type(e).__name__, e))
        return
    c.check("connect and push the upstream P4Info", True)
    try:
        await body(c, sw, p4info_path)
    finally:
        await asyncio.wait_for(sw.__aexit__(None, None, None), TIMEOUT)


async def amain(c, args):
    try:
        await asyncio.wait_for(run(c, args.addr, args.p4info), TOTAL_TIMEOUT)
    except asyncio.TimeoutError:
        c.check("finished within %d s" % TOTAL_TIMEOUT, False, traceback.format_exc())
    except Exception:  # noqa: BLE001
        c.check("no unexpected exception", False, traceback.format_exc())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--p4info", required=True)
    args = ap.parse_args()
    c = Checks("finsy")
    asyncio.run(amain(c, args))
    c.summary()
    sys.exit(0 if c.failed == 0 else 1)


if __name__ == "__main__":
    main()
