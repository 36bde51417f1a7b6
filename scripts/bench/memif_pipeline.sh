#!/usr/bin/env bash
# Mpps through the p4k8s pipeline between two DPDK pods on memif CDQs,
# against testpmd memif-to-memif directly (the ceiling). Needs root and
# dpdk-testpmd (apt-get install dpdk).
#
#   scripts/bench/memif_pipeline.sh [--runs R (3)] [--duration S (5)]
#                                   [--worker-core C (0)] [--a-core A (1)] [--b-core B (1)]
#                                   [--txpkts BYTES (64)] [--bin PATH]
#
# pipeline  `p4k8s run --config` (release build) with two memif server
#           ports, 2 (pod A) and 3 (pod B), one worker pinned to
#           --worker-core; `p4k8s ctl apply` writes pods 198.18.0.1 (port 2)
#           and 198.18.0.2 (port 3, MAC 02:00:00:00:00:0b), the addresses of
#           testpmd's txonly engine. Pod A: testpmd txonly (memif client of
#           port 2); pod B: testpmd rxonly (memif client of port 3).
# direct    pod A's memif client connects straight to pod B's memif server;
#           no p4k8s.
#
# Pod A forwards on --a-core, pod B on --b-core (by default both on core 1,
# sharing it; each testpmd's main lcore, which only prints statistics, is
# on the other of cores 0 and 1). Frames of --txpkts
# bytes, one queue pair. The figure is B's receive rate (testpmd's Rx-pps,
# averaged over the --duration seconds after a 1 s warm-up), the median of
# --runs runs, each with fresh processes.
#
# Caveats seen on a 2-core VM (DPDK 22.11.11): testpmd memif-to-memif
# directly moves only ~0.127 Mpps whichever side serves and wherever the
# two forward (about one 1024-slot ring per 8 ms), so the "ceiling" row is
# DPDK's memif pair, not the cores' limit; two busy-polling testpmds on one
# core are time-sliced by the scheduler, and the pipeline (no back-pressure
# from B to A, like a NIC) drops at B's full ring while B is descheduled.
# A testpmd occasionally segfaults on SIGINT at the end of a run (after the
# measurement); the script reaps it.
set -euo pipefail

RUNS=3
DURATION=5
WCORE=0
ACORE=1
BCORE=1
TXPKTS=64
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --worker-core) WCORE=$2; shift 2 ;;
        --a-core) ACORE=$2; shift 2 ;;
        --b-core) BCORE=$2; shift 2 ;;
        --txpkts) TXPKTS=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd is not installed (apt-get install dpdk)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -q -p p4k8s --bin p4k8s)
    BIN="$ROOT/target/release/p4k8s"
fi

TMP=$(mktemp -d /tmp/p4k8s-memif-bench.XXXXXX)
PIDS=()
PREFIXES=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
    for f in "${PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$f"; done
    PREFIXES=()
}
trap 'cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# stop PID...: SIGINT, wait up to 5 s, then SIGKILL.
stop() {
    for p in "$@"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

# testpmd NAME CORE VDEV MODE: starts testpmd forwarding on CORE in the
# background (pid in $TP_PID).
N=0
testpmd() {
    local name=$1 core=$2 vdev=$3 mode=$4
    N=$((N + 1))
    local prefix="p4k8s-bench-$$-$N-$name"
    PREFIXES+=("$prefix")
    local main=$(( core == 0 ? 1 : 0 ))
    # With --stats-period testpmd prints until SIGINT and never reads stdin.
    dpdk-testpmd -l "$main,$core" --no-huge -m 1024 --no-pci --file-prefix="$prefix" \
        --vdev="$vdev" -- --total-num-mbufs=16384 --txpkts="$TXPKTS" \
        --auto-start --stats-period=1 --forward-mode="$mode" \
        --eth-peer=0,02:00:00:00:00:0b </dev/null >"$TMP/$name.log" 2>&1 &
    TP_PID=$!
    PIDS+=("$TP_PID")
}

wait_stats() { # LOG: until testpmd prints periodic statistics (it forwards)
    for _ in $(seq 150); do
        grep -qa "Port statistics" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "no statistics in $1:" >&2; cat "$1" >&2; exit 1
}

# measure: B's mean Rx-pps (and A's Tx-pps) over DURATION s after 1 s warm-up.
measure() {
    sleep 1
    local b0 a0
    b0=$(grep -ac "Rx-pps" "$TMP/b.log")
    a0=$(grep -ac "Tx-pps" "$TMP/a.log")
    sleep "$DURATION"
    local rx tx
    rx=$(grep -a "Rx-pps" "$TMP/b.log" | tail -n +"$((b0 + 1))" | head -n "$DURATION" | awk '{s += $2; n++} END {printf "%.3f", n ? s / n / 1e6 : 0}')
    tx=$(grep -a "Tx-pps" "$TMP/a.log" | tail -n +"$((a0 + 1))" | head -n "$DURATION" | awk '{s += $2; n++} END {printf "%.3f", n ? s / n / 1e6 : 0}')
    RES_RX=$rx
    RES_TX=$tx
}

run_pipeline() {
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$TMP/config.toml" <<EOF
[dataplane]
workers = 1
cores = [$WCORE]
[p4runtime]
addr = "127.0.0.1:$port"
[[port]]
id = 2
kind = "memif"
socket = "$TMP/a.sock"
[[port]]
id = 3
kind = "memif"
socket = "$TMP/b.sock"
EOF
    cat >"$TMP/scenario.toml" <<EOF
[[pod]]
ip = "198.18.0.1"
port = 2
mac = "02:00:00:00:00:0a"
[[pod]]
ip = "198.18.0.2"
port = 3
mac = "02:00:00:00:00:0b"
EOF
    "$BIN" run --config "$TMP/config.toml" >"$TMP/target.log" 2>&1 &
    local target=$!
    PIDS+=("$target")
    for _ in $(seq 100); do
        "$BIN" ctl apply --addr "127.0.0.1:$port" "$TMP/scenario.toml" >/dev/null 2>&1 && break
        sleep 0.1
    done
    testpmd b "$BCORE" "net_memif0,role=client,socket=$TMP/b.sock,socket-abstract=no,mac=02:00:00:00:00:0b" rxonly
    local b=$TP_PID
    wait_stats "$TMP/b.log"
    testpmd a "$ACORE" "net_memif0,role=client,socket=$TMP/a.sock,socket-abstract=no,mac=02:00:00:00:00:0a" txonly
    local a=$TP_PID
    wait_stats "$TMP/a.log"
    measure
    stop "$a" "$b" "$target"
    cleanup
    rm -f "$TMP"/*.sock
}

run_direct() {
    testpmd b "$BCORE" "net_memif0,role=server,socket=$TMP/d.sock,socket-abstract=no,mac=02:00:00:00:00:0b" rxonly
    local b=$TP_PID
    wait_stats "$TMP/b.log"
    testpmd a "$ACORE" "net_memif0,role=client,socket=$TMP/d.sock,socket-abstract=no,mac=02:00:00:00:00:0a" txonly
    local a=$TP_PID
    wait_stats "$TMP/a.log"
    measure
    stop "$a" "$b"
    cleanup
    rm -f "$TMP"/*.sock
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

declare -A RX TX ALL
for setup in pipeline direct; do
    rxs=()
    txs=()
    for r in $(seq "$RUNS"); do
        "run_$setup"
        rx=$RES_RX
        tx=$RES_TX
        echo "$setup run $r: B receives $rx Mpps (A offers $tx Mpps)" >&2
        rxs+=("$rx")
        txs+=("$tx")
    done
    RX[$setup]=$(printf '%s\n' "${rxs[@]}" | median)
    TX[$setup]=$(printf '%s\n' "${txs[@]}" | median)
    ALL[$setup]="${rxs[*]}"
done

cat <<EOF

$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?'), ${TXPKTS}-byte frames, ${DURATION} s after 1 s warm-up, median of $RUNS runs; pod A forwards on core $ACORE, pod B on core $BCORE.

| setup | B receives (Mpps) | A sends into its ring (Mpps) | runs (B, Mpps) |
| --- | ---: | ---: | --- |
| p4k8s pipeline (memif port 2 -> pipeline -> memif port 3), worker on core $WCORE | ${RX[pipeline]} | ${TX[pipeline]} | ${ALL[pipeline]} |
| testpmd memif -> memif directly (ceiling), no p4k8s | ${RX[direct]} | ${TX[direct]} | ${ALL[direct]} |

Commands:

    p4k8s run --config CONFIG   # [dataplane] workers = 1, cores = [$WCORE]; memif ports 2 and 3 (servers)
    p4k8s ctl apply SCENARIO    # [[pod]] 198.18.0.1 port 2; 198.18.0.2 port 3 mac 02:00:00:00:00:0b
    dpdk-testpmd -l MAIN,$BCORE --no-huge -m 1024 --no-pci --file-prefix=B --vdev=net_memif0,role=client,socket=b.sock,socket-abstract=no,mac=02:00:00:00:00:0b -- --total-num-mbufs=16384 --txpkts=$TXPKTS --auto-start --stats-period=1 --forward-mode=rxonly
    dpdk-testpmd -l MAIN,$ACORE --no-huge -m 1024 --no-pci --file-prefix=A --vdev=net_memif0,role=client,socket=a.sock,socket-abstract=no,mac=02:00:00:00:00:0a -- --total-num-mbufs=16384 --txpkts=$TXPKTS --auto-start --stats-period=1 --forward-mode=txonly --eth-peer=0,02:00:00:00:00:0b
    # direct: B with role=server,socket=d.sock; A with role=client,socket=d.sock; no p4k8s
EOF
