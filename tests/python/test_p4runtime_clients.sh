#!/usr/bin/env bash
# Interoperability tests with real P4Runtime clients: builds `p4k8s`, starts
# `p4k8s run` on a free loopback port, runs the p4runtime-shell test and the
# finsy test against it (each in its own venv, made by scripts/setup.sh), and
# stops the target on exit, whatever happens.
# Closes with one line "N passed, N failed" (totals over both programs);
# exits non-zero if either program fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
P4INFO=$ROOT/p4/upstream/k8s_dp.p4info.txt
CLIENT_TIMEOUT=180 # seconds, per Python program (each also has its own watchdog)

# The client venvs (scripts/setup.sh makes them; make them here too if missing).
make_venv() { # dir requirements
    if [ ! -x "$1/bin/python" ]; then
        echo "test_p4runtime_clients: creating $1"
        python3 -m venv "$1" && "$1/bin/pip" install -q -r "$2" || {
            rm -rf "$1"
            echo "test_p4runtime_clients: could not create $1"
            echo "0 passed, 1 failed"
            exit 1
        }
    fi
}
make_venv "$ROOT/.venv-p4rt-shell" tests/python/requirements-p4runtime-shell.txt
make_venv "$ROOT/.venv-finsy" tests/python/requirements-finsy.txt

if ! cargo build -p p4k8s --quiet; then
    echo "test_p4runtime_clients: cargo build -p p4k8s failed"
    echo "0 passed, 1 failed"
    exit 1
fi
BIN=$ROOT/target/debug/p4k8s

WORK=$(mktemp -d)
SERVER_PID=""
CLIENT_PID=""
cleanup() {
    if [ -n "$CLIENT_PID" ]; then
        kill "$CLIENT_PID" 2>/dev/null # timeout(1) passes it on to the client
        wait "$CLIENT_PID" 2>/dev/null
    fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

listening() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Start the target; retry on another port if the one picked was taken meanwhile.
PORT=""
for attempt in 1 2 3; do
    port=$(free_port)
    "$BIN" run --p4rt-addr "127.0.0.1:$port" --device-id 1 >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 300); do # up to 30 s
        if listening "$port"; then PORT=$port; break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$PORT" ] && break
    echo "test_p4runtime_clients: p4k8s run did not listen on 127.0.0.1:$port (attempt $attempt):"
    tail -20 "$WORK/server.log"
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
done
if [ -z "$PORT" ]; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "test_p4runtime_clients: p4k8s run (pid $SERVER_PID) listening on 127.0.0.1:$PORT"

passed=0
failed=0
status=0
run_client() { # label python script
    local label=$1 py=$2 script=$3 out=$WORK/$1.out rc line p f
    echo "== $label"
    # In the background, so that a TERM to this script runs the trap at once.
    timeout --kill-after=10 "$CLIENT_TIMEOUT" "$py" "$script" --addr "127.0.0.1:$PORT" --p4info "$P4INFO" >"$out" 2>&1 &
    CLIENT_PID=$!
    wait "$CLIENT_PID"
    rc=$?
    CLIENT_PID=""
    cat "$out"
    line=$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed$" "$out" | tail -1)
    if [ -n "$line" ]; then
        p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")
        f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")
    else
        echo "test_p4runtime_clients: $label ended (exit $rc) without its summary line"
        p=0
        f=1
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "test_p4runtime_clients: $label exited $rc"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$rc" -eq 0 ] || status=1
}

run_client p4runtime-shell "$ROOT/.venv-p4rt-shell/bin/python" tests/python/p4rt_shell_test.py
run_client finsy "$ROOT/.venv-finsy/bin/python" tests/python/finsy_test.py

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "test_p4runtime_clients: p4k8s run died during the tests:"
    tail -20 "$WORK/server.log"
    failed=$((failed + 1))
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "-- p4k8s run log (last 30 lines)"
    tail -30 "$WORK/server.log"
fi

echo "$passed passed, $failed failed"
exit "$status"
