#!/usr/bin/env bash
# `npm run bench`: installs what the benchmark needs when missing (Dovecot,
# the npm packages, the wasm toolchain, python3), builds the wasm package and
# the bridge in release mode, then runs every scenario with its baseline
# (bench/run.mjs) and prints the table. Raw figures go to
# bench/results/<timestamp>.json. The slow link (scenario 1) makes its own
# network namespaces when run as root (bench/slow-link.mjs) and removes
# them on exit; otherwise it falls back to a delaying relay on loopback.
#
#   scripts/bench.sh            full run (about 6 minutes once built)
#   scripts/bench.sh --quick    every scenario at small sizes (about 40 s once built)
#   scripts/bench.sh --only slow,scan,bulk,bridge,scale,size,exporter,e2e   a subset
#   scripts/bench.sh --strict   exit 2 when a target is not met
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh rust dovecot npm
command -v python3 >/dev/null 2>&1 || bash scripts/setup.sh apt python3
BRIDGE_PROFILE=release bash scripts/build.sh
# Scenario 4's native load client, TCP workload server and forwarder (incremental).
cargo build --quiet --release -p ws-bridge --example relay_load

# 5000 idle sessions hold two descriptors each in the bridge and in the
# client: raise the limit for this shell and everything it starts.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

export WS_BRIDGE_BIN="${WS_BRIDGE_BIN:-$PWD/target/release/ws-bridge}"
exec node bench/run.mjs "$@"
