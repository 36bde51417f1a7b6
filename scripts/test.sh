#!/usr/bin/env bash
# Runs every test of p4k8s: unit and integration tests of every crate
# (root-only tests create and remove their own network namespaces), then
# the Python interoperability tests against a running `p4k8s run`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --workspace --all-targets --quiet
cargo test --workspace --quiet 2>&1
if [ -d tests/python ] && ls tests/python/test_*.sh >/dev/null 2>&1; then
    for t in tests/python/test_*.sh; do
        echo "== $t"
        bash "$t"
    done
fi
