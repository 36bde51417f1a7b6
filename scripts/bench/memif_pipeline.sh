#!/usr/bin/env bash
# Mpps through the p4k8s pipeline between two DPDK pods on memif CDQs,
# against testpmd memif-to-memif directly (the ceiling), in several core
# layouts measured in the same run. Needs root and dpdk-testpmd
# (apt-get install dpdk).
#
#   scripts/bench/memif_pipeline.sh [--runs R (3)] [--duration S (5)]
#                                   [--layouts "L1 L2 ..."] [--txpkts BYTES (64)]
#                                   [--bin PATH] [--out FILE.md]
#
# A layout is KIND:key=core,...; every forwarding lcore and the worker are
# pinned to the core given, each testpmd's main lcore (statistics only,
# asleep between prints) is pinned explicitly with --main-lcore to the
# other core of 0 and 1 (DPDK makes the LOWEST lcore of -l the main one
# otherwise, so `-l 1,0` used to forward on 1, not 0).
#
# pipeline:w=W,a=A,b=B
#           `p4k8s run --config` (release build) with two memif server
#           ports, 2 (pod A) and 3 (pod B), one worker on core W;
#           `p4k8s ctl apply` writes pods 198.18.0.1 (port 2) and 198.18.0.2
#           (port 3, MAC 02:00:00:00:00:0b), the addresses of testpmd's
#           txonly engine. Pod A: testpmd txonly (memif client of port 2)
#           forwarding on core A; pod B: testpmd rxonly (memif client of
#           port 3) forwarding on core B.
# direct:a=A,b=B
#           pod A's memif client connects straight to pod B's memif server;
#           no p4k8s. Same testpmd commands otherwise.
# pipeline1:w=W,p=P
#           ONE testpmd hosts both pods (two memif clients: port 0 on the
#           pipeline's port 2, port 1 on its port 3), forwarding on core P,
#           --forward-mode=io --tx-first --burst=BURST1: a closed loop, A's
#           first bursts go through the pipeline to B, which sends what it
#           receives out of A again (no TTL or MAC is changed by io).
# direct1:p=P
#           the same testpmd with its two memif ports connected to each
#           other (port 0 server, port 1 client of one socket): both
#           directions circulate, so the figure is the sum of both ports'
#           receive rates.
#
# The figure is the pods' receive rate (testpmd's Rx-pps of B, or of both
# ports for the one-process layouts), averaged over the --duration seconds
# after a 1 s warm-up, the median of --runs runs, each with fresh
# processes; runs of the layouts are interleaved (run 1 of every layout,
# then run 2, ...) so load from elsewhere spreads over all of them. "A sends"
# is what testpmd got into its ring (txonly drops the rest before counting).
#
# No back-pressure from B to A through the pipeline (like a NIC): when B's
# ring is full, the worker drops (TxFull). Two busy-polling processes on one
# core are time-sliced by the scheduler (CFS slices of milliseconds, far
# longer than a 1024-slot ring lasts at these rates).
set -euo pipefail

RUNS=3
DURATION=5
TXPKTS=64
BURST1=128
BIN=""
OUT=""
LAYOUTS="direct:a=1,b=1 pipeline:w=0,a=1,b=1 direct:a=0,b=1 pipeline:w=0,a=0,b=1 pipeline:w=0,a=1,b=0 direct1:p=1 pipeline1:w=0,p=1"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --layouts) LAYOUTS=$2; shift 2 ;;
        --txpkts) TXPKTS=$2; shift 2 ;;
        --burst1) BURST1=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
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

CMDS=() # the commands of the current layout, for the report
# testpmd NAME CORE "VDEV..." TESTPMD-ARGS...: starts testpmd forwarding on
# CORE, its main lcore on the other core, in the background (pid in $TP_PID).
N=0
testpmd() {
    local name=$1 core=$2 vdevs=$3
    shift 3
    N=$((N + 1))
    local prefix="p4k8s-bench-$$-$N-$name"
    PREFIXES+=("$prefix")
    local main=$(( core == 0 ? 1 : 0 ))
    local args=(-l "0,1" --main-lcore "$main" --no-huge -m 1024 --no-pci --file-prefix="$prefix")
    local v
    for v in $vdevs; do args+=(--vdev="$v"); done
    args+=(-- --total-num-mbufs=16384 --txpkts="$TXPKTS" --auto-start --stats-period=1 "$@")
    CMDS+=("dpdk-testpmd ${args[*]}")
    # With --stats-period testpmd prints until SIGINT and never reads stdin.
    dpdk-testpmd "${args[@]}" </dev/null >"$TMP/$name.log" 2>&1 &
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

# series LOG FIELD PORT: one value per statistics period of FIELD (Rx-pps,
# Tx-pps) of PORT.
series() {
    awk -v f="$2:" -v want="$3" '/NIC statistics for port/ {p = $6} $1 == f && p == want {print $2}' "$1"
}

# mean LOG FIELD PORT SKIP: mean in Mpps of DURATION periods after SKIP.
mean() {
    series "$1" "$2" "$3" | tail -n +"$(($4 + 1))" | head -n "$DURATION" \
        | awk '{s += $1; n++} END {printf "%.3f", n ? s / n / 1e6 : 0}'
}

# measure RXLOG:PORT[+RXLOG:PORT] TXLOG:PORT: RES_RX (sum of the receive
# rates) and RES_TX over DURATION s after a 1 s warm-up.
measure() {
    sleep 1
    local spec log port
    declare -A skip
    for spec in ${1//+/ } $2; do
        log=${spec%:*}; port=${spec#*:}
        skip[$spec]=$(series "$TMP/$log.log" Rx-pps "$port" | wc -l)
    done
    sleep "$DURATION"
    sleep 0.5
    RES_RX=0
    for spec in ${1//+/ }; do
        log=${spec%:*}; port=${spec#*:}
        RES_RX=$(awk -v a="$RES_RX" -v b="$(mean "$TMP/$log.log" Rx-pps "$port" "${skip[$spec]}")" 'BEGIN {printf "%.3f", a + b}')
    done
    log=${2%:*}; port=${2#*:}
    RES_TX=$(mean "$TMP/$log.log" Tx-pps "$port" "${skip[$2]}")
}

start_target() { # W
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$TMP/config.toml" <<EOF
[dataplane]
workers = 1
cores = [$1]
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
    TARGET=$!
    PIDS+=("$TARGET")
    # On a loaded machine the target may take a while to serve; without the
    # scenario every frame is dropped and the closed loop (pipeline1) dies,
    # which would be measured as 0 Mpps: fail instead.
    local applied=""
    for _ in $(seq 300); do
        if "$BIN" ctl apply --addr "127.0.0.1:$port" "$TMP/scenario.toml" >/dev/null 2>&1; then
            applied=1
            break
        fi
        sleep 0.1
    done
    [ -n "$applied" ] || { echo "p4k8s ctl apply failed for 30 s:" >&2; cat "$TMP/target.log" >&2; exit 1; }
    CMDS+=("p4k8s run --config config.toml   # [dataplane] workers = 1, cores = [$1]; [[port]] 2 and 3: kind = \"memif\", socket = a.sock, b.sock (servers)"
        "p4k8s ctl apply --addr ADDR scenario.toml   # [[pod]] 198.18.0.1 port 2 mac 02:00:00:00:00:0a; 198.18.0.2 port 3 mac 02:00:00:00:00:0b")
}

VA="mac=02:00:00:00:00:0a"
VB="mac=02:00:00:00:00:0b"
MEMIF="socket-abstract=no"

run_pipeline() { # w a b
    start_target "$1"
    testpmd b "$3" "net_memif0,role=client,socket=$TMP/b.sock,$MEMIF,$VB" --forward-mode=rxonly
    local b=$TP_PID
    wait_stats "$TMP/b.log"
    testpmd a "$2" "net_memif0,role=client,socket=$TMP/a.sock,$MEMIF,$VA" --forward-mode=txonly --eth-peer=0,02:00:00:00:00:0b
    local a=$TP_PID
    wait_stats "$TMP/a.log"
    measure b:0 a:0
    stop "$a" "$b" "$TARGET"
}

run_direct() { # a b
    testpmd b "$2" "net_memif0,role=server,socket=$TMP/d.sock,$MEMIF,$VB" --forward-mode=rxonly
    local b=$TP_PID
    wait_stats "$TMP/b.log"
    for _ in $(seq 50); do [ -S "$TMP/d.sock" ] && break; sleep 0.1; done
    testpmd a "$1" "net_memif0,role=client,socket=$TMP/d.sock,$MEMIF,$VA" --forward-mode=txonly --eth-peer=0,02:00:00:00:00:0b
    local a=$TP_PID
    wait_stats "$TMP/a.log"
    measure b:0 a:0
    stop "$a" "$b"
}

IO1=(--forward-mode=io --tx-first --burst="$BURST1" --eth-peer=0,02:00:00:00:00:0b --eth-peer=1,02:00:00:00:00:0b)
run_pipeline1() { # w p
    start_target "$1"
    testpmd ab "$2" "net_memif0,role=client,socket=$TMP/a.sock,$MEMIF,$VA net_memif1,role=client,socket=$TMP/b.sock,$MEMIF,$VB" "${IO1[@]}"
    local p=$TP_PID
    wait_stats "$TMP/ab.log"
    measure ab:1 ab:0
    # A closed loop: what A sends is what B receives, or frames were lost.
    awk -v r="$RES_RX" -v t="$RES_TX" 'BEGIN {exit !(r < 0.98 * t || t < 0.98 * r)}' \
        && echo "WARNING: pipeline1 lost frames: B receives $RES_RX Mpps, A sends $RES_TX Mpps" >&2
    stop "$p" "$TARGET"
}

run_direct1() { # p
    testpmd ab "$1" "net_memif0,role=server,socket=$TMP/d.sock,$MEMIF,$VA net_memif1,role=client,socket=$TMP/d.sock,$MEMIF,$VB" "${IO1[@]}"
    local p=$TP_PID
    wait_stats "$TMP/ab.log"
    measure ab:0+ab:1 ab:0
    stop "$p"
}

# core LAYOUT KEY: the core of KEY in LAYOUT (kind:k=v,...).
core() { tr ',' '\n' <<<"${1#*:}" | awk -F= -v k="$2" '$1 == k {print $2}'; }

describe() {
    local l=$1
    case "${l%%:*}" in
        pipeline) echo "pipeline, worker on $(core "$l" w), A on $(core "$l" a), B on $(core "$l" b)" ;;
        direct) echo "direct A -> B, A on $(core "$l" a), B on $(core "$l" b)" ;;
        pipeline1) echo "pipeline, worker on $(core "$l" w), one testpmd hosts A and B on $(core "$l" p)" ;;
        direct1) echo "direct, one testpmd with 2 ports connected to each other on $(core "$l" p)" ;;
    esac
}

run_layout() {
    local l=$1
    case "${l%%:*}" in
        pipeline) run_pipeline "$(core "$l" w)" "$(core "$l" a)" "$(core "$l" b)" ;;
        direct) run_direct "$(core "$l" a)" "$(core "$l" b)" ;;
        pipeline1) run_pipeline1 "$(core "$l" w)" "$(core "$l" p)" ;;
        direct1) run_direct1 "$(core "$l" p)" ;;
        *) echo "unknown layout $l" >&2; exit 2 ;;
    esac
    cleanup
    rm -f "$TMP"/*.sock
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

echo "layouts:" >&2
for l in $LAYOUTS; do echo "  $l = $(describe "$l")" >&2; done
declare -A RXS TXS LAYCMDS
for r in $(seq "$RUNS"); do
    for l in $LAYOUTS; do
        CMDS=()
        run_layout "$l"
        echo "run $r $l: pods receive $RES_RX Mpps (A sends $RES_TX Mpps)   [$(uptime | sed 's/.*load/load/')]" >&2
        RXS[$l]="${RXS[$l]:-}$RES_RX "
        TXS[$l]="${TXS[$l]:-}$RES_TX "
        LAYCMDS[$l]=$(printf '    %s\n' "${CMDS[@]}")
    done
done

report() {
    cat <<EOF
$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?'), ${TXPKTS}-byte frames, one queue pair, ${DURATION} s after 1 s warm-up, median of $RUNS interleaved runs. Each testpmd's main lcore (statistics) sits on the other core of 0/1 (--main-lcore).

| layout | setup | pods receive (Mpps) | A sends (Mpps) | runs (receive, Mpps) |
| --- | --- | ---: | ---: | --- |
EOF
    local l
    for l in $LAYOUTS; do
        echo "| \`$l\` | $(describe "$l") | $(printf '%s\n' ${RXS[$l]} | median) | $(printf '%s\n' ${TXS[$l]} | median) | ${RXS[$l]% } |"
    done
    echo
    echo "Commands (per layout, as run the last time; paths are in the run's temporary directory):"
    echo
    for l in $LAYOUTS; do
        echo "\`$l\`:"
        echo
        echo "${LAYCMDS[$l]}"
        echo
    done
}
if [ -n "$OUT" ]; then
    report | tee "$OUT"
else
    report
fi
