#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: installs what
# is missing (scripts/setup.sh), builds, then runs the Rust tests and the
# Node end-to-end tests (real Dovecot, real bridge, the packed package).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh

echo "== cargo test (core transcripts, bridge sockets)"
cargo test --workspace --quiet

echo "== node --test (end to end against Dovecot through ws-bridge)"
node --test tests/e2e/*.test.mjs
