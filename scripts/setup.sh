#!/usr/bin/env bash
# Installs what p4k8s's build, tests and benchmarks need on a fresh Debian
# machine (run as root): system packages, then the Python venvs of the
# P4Runtime test clients. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in iproute2 iputils-ping dpdk dpdk-dev iperf3 tcpdump python3-venv curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# P4Runtime clients for the interoperability tests, each in its own venv:
# p4runtime-shell pins protobuf < 3.21, finsy needs a recent one.
if [ -f tests/python/requirements-p4runtime-shell.txt ] && [ ! -x .venv-p4rt-shell/bin/python ]; then
    python3 -m venv .venv-p4rt-shell
    .venv-p4rt-shell/bin/pip install -q -r tests/python/requirements-p4runtime-shell.txt
fi
if [ -f tests/python/requirements-finsy.txt ] && [ ! -x .venv-finsy/bin/python ]; then
    python3 -m venv .venv-finsy
    .venv-finsy/bin/pip install -q -r tests/python/requirements-finsy.txt
fi
