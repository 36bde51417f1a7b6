#!/usr/bin/env bash
# Four pods on p4k8s, by hand (root): the world of p4k8s/tests/netns_e2e.rs.
#
#   scripts/e2e/pods.sh up      # namespaces e2e-a..e2e-d on TAP ports 2..5,
#                               # host port p4k8s-h/p4k8s-hp (AF_PACKET port 1),
#                               # p4k8s run on 127.0.0.1:9559, scenario.toml applied
#   ip netns exec e2e-a ping 10.1.0.3
#   ip netns exec e2e-a curl http://10.96.0.10/   # once something listens on 8080
#   scripts/e2e/pods.sh down    # stops the target, removes everything
#
# The target's log is /tmp/p4k8s-e2e/target.log. Set P4K8S to use another
# binary (default: target/release/p4k8s, built if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

DIR=/tmp/p4k8s-e2e
ADDR=127.0.0.1:9559
HOST_IF=p4k8s-h
PORT_IF=p4k8s-hp
PODS=(a:2 b:3 c:4 d:5)
BIN=${P4K8S:-target/release/p4k8s}

down() {
    if [ -f "$DIR/target.pid" ]; then
        kill -TERM "$(cat "$DIR/target.pid")" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$(cat "$DIR/target.pid")" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$DIR/target.pid"
    fi
    ip link del "$HOST_IF" 2>/dev/null || true
    for p in "${PODS[@]}"; do
        for pid in $(ip netns pids "e2e-${p%%:*}" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
        ip netns del "e2e-${p%%:*}" 2>/dev/null || true
    done
}

up() {
    [ -x "$BIN" ] || cargo build --release -p p4k8s
    down
    mkdir -p "$DIR"
    for p in "${PODS[@]}"; do
        ip netns add "e2e-${p%%:*}"
        ip -n "e2e-${p%%:*}" link set lo up
    done
    ip link add "$HOST_IF" type veth peer name "$PORT_IF"
    for i in "$HOST_IF" "$PORT_IF"; do
        sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1" || true
        ethtool -K "$i" tso off gso off >/dev/null 2>&1 || true
    done
    # Calico's gateway MAC: pods send everything to it, the host must accept it.
    ip link set "$HOST_IF" address ee:ee:ee:ee:ee:ee
    ip addr add 10.1.255.1/16 dev "$HOST_IF"
    ip link set "$PORT_IF" up
    ip link set "$HOST_IF" up

    {
        printf '[dataplane]\nworkers = 1\n\n[p4runtime]\naddr = "%s"\n\n' "$ADDR"
        printf '[[port]]\nid = 1\nkind = "af_packet"\nifname = "%s"\n\n' "$PORT_IF"
        for p in "${PODS[@]}"; do
            n=${p%%:*} id=${p##*:}
            printf '[[port]]\nid = %s\nkind = "tap"\nnetns = "e2e-%s"\nifname = "eth0"\n' "$id" "$n"
            printf 'mac = "02:00:00:00:00:%02x"\nipv4 = "10.1.0.%s/32"\noffloads = false\n\n' "$id" "$id"
        done
    } > "$DIR/config.toml"
    "$BIN" run --config "$DIR/config.toml" > "$DIR/target.log" 2>&1 &
    echo $! > "$DIR/target.pid"
    for _ in $(seq 150); do
        (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null && break
        sleep 0.1
    done
    "$BIN" ctl apply --addr "$ADDR" scripts/e2e/scenario.toml
    echo "up: pods e2e-a..e2e-d (10.1.0.2..5), host 10.1.255.1; log $DIR/target.log"
}

case "${1:-}" in
    up) up ;;
    down) down; rm -rf "$DIR"; echo down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
