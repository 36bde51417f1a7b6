#!/usr/bin/env python3
"""Generate N services for scripts/bench/side_by_side.sh.

  gen.py scenario N OUT   p4k8s ctl apply scenario (4 pods + N services)
  gen.py iptables N OUT   kube-proxy-style iptables-restore file (nat + filter)

The measured service (written last): VIP 10.96.0.10, two ports (80/tcp ->
pod b 8080, 5201/tcp -> pod b 5201), one endpoint (iperf3 cannot be
balanced: its control and data connections must reach the same server).
Services 1..N-1 are others: VIP 10.96.<1 + i/250>.<1 + i%250>, port 80/tcp, 1 to 3
endpoints on pods b, c, d with a target port of their own (10000 + i;
upstream's program keys replies by endpoint, so no two services may share
one).  Nothing listens on the other services' endpoints; they only fill
the tables and chains.

The iptables file mirrors kube-proxy's iptables mode (v1.2x): nat
PREROUTING/OUTPUT -> KUBE-SERVICES, one rule per service port jumping to
KUBE-SVC-<hash>, whose `statistic --mode random --probability` rules jump
to one KUBE-SEP-<hash> per endpoint (hairpin mark + DNAT); filter FORWARD
-> KUBE-FORWARD (drop INVALID, accept marked and established), and
KUBE-POSTROUTING masquerading marked packets.  The measured service comes
LAST in KUBE-SERVICES: a new connection to it walks every other service's
rule first (kube-proxy's order is arbitrary; last is the worst case, and
pod-to-pod connections walk the whole chain anyway).
"""
import base64
import hashlib
import sys

PODS = [("a", 2), ("b", 3), ("c", 4), ("d", 5)]
CLUSTER_CIDR = "10.1.0.0/16"


def services(n):
    """[(name, vip, port, [(ip, tport)])], the measured one last."""
    out = []
    for i in range(1, n):
        vip = "10.96.%d.%d" % (1 + i // 250, 1 + i % 250)
        k = 1 + i % 3
        eps = [("10.1.0.%d" % (3 + (i + j) % 3), 10000 + i) for j in range(k)]
        out.append(("default/svc-%d:http" % i, vip, 80, eps))
    out.append(("default/bench:http", "10.96.0.10", 80, [("10.1.0.3", 8080)]))
    out.append(("default/bench:iperf3", "10.96.0.10", 5201, [("10.1.0.3", 5201)]))
    return out


def scenario(n):
    lines = []
    for _, port in PODS:
        lines += ['[[pod]]', 'ip = "10.1.0.%d"' % port, "port = %d" % port,
                  'mac = "02:00:00:00:00:%02x"' % port, ""]
    for _, vip, port, eps in services(n):
        lines += ["[[service]]", 'vip = "%s"' % vip, "port = %d" % port, 'proto = "tcp"',
                  "endpoints = [%s]" % ", ".join('"%s:%d"' % e for e in eps), ""]
    return "\n".join(lines)


def chain(prefix, *parts):
    h = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(h).decode()[:16]


def iptables(n):
    svcs = services(n)
    nat_chains = ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat_rules = [
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
    ]
    svc_rules, per_chain = [], []
    for name, vip, port, eps in svcs:
        svc = chain("KUBE-SVC-", name, "tcp")
        nat_chains.append(svc)
        svc_rules.append(
            "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" "
            "-m tcp --dport %d -j %s" % (vip, name, port, svc))
        per_chain.append(
            "-A %s ! -s %s -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" "
            "-m tcp --dport %d -j KUBE-MARK-MASQ" % (svc, CLUSTER_CIDR, vip, name, port))
        for j, (ip, tport) in enumerate(eps):
            sep = chain("KUBE-SEP-", name, "tcp", ip, str(tport))
            nat_chains.append(sep)
            left = len(eps) - j
            stat = "" if left == 1 else \
                "-m statistic --mode random --probability %.11f " % (1.0 / left)
            per_chain.append("-A %s -m comment --comment \"%s -> %s:%d\" %s-j %s"
                             % (svc, name, ip, tport, stat, sep))
            per_chain.append("-A %s -s %s/32 -m comment --comment \"%s\" -j KUBE-MARK-MASQ"
                             % (sep, ip, name))
            per_chain.append("-A %s -p tcp -m comment --comment \"%s\" -m tcp "
                             "-j DNAT --to-destination %s:%d" % (sep, name, ip, tport))
    svc_rules.append(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" "
        "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    nat_chains.append("KUBE-NODEPORTS")
    out = ["*nat"] + [":%s - [0:0]" % c for c in nat_chains]
    out += nat_rules + svc_rules + per_chain + ["COMMIT", "*filter",
        ":KUBE-FORWARD - [0:0]",
        "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" "
        "-m mark --mark 0x4000/0x4000 -j ACCEPT",
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" "
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT", ""]
    return "\n".join(out)


def main():
    kind, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    text = {"scenario": scenario, "iptables": iptables}[kind](n)
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
