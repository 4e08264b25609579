#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: installs what
# is missing (scripts/setup.sh), builds, then runs the Rust tests and the
# Node end-to-end tests (real Dovecot, real bridge, the packed package).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo deny (licences, one version of each crate, crates.io only: deny.toml)"
# --all-features: the client's optional `tls` dependencies (rustls, ring, x509-cert…) count too.
cargo deny --offline --all-features check licenses bans sources

bash scripts/build.sh

echo "== cargo test (core transcripts, TLS engine, the analyzer, bridge sockets)"
# With the client's `tls` and `diagnose` features, so the TLS engine's tests
# (pop3-wasm/tests/tls.rs) and the analyzer's (tests/diagnose.rs) run too.
cargo test --workspace --quiet --features pop3-wasm/tls,pop3-wasm/diagnose

echo "== fuzz (cargo-fuzz, 60 s per target)"
bash scripts/fuzz.sh 60

# --test-timeout: with node --test each file runs as one test of the run,
# so this bounds every file as a whole (its hooks and top level included):
# a hang fails that file in minutes instead of stalling the run until CI's
# limit. The longest file takes about 2 minutes here.
echo "== load (1000 concurrent sessions, 1-minute soak)"
node --test --test-timeout=600000 tests/load/load.test.mjs

# Last, so the run ends on the suite's summary.
echo "== node --test (end to end: Dovecot, scripted and hostile servers, pages in Chromium, CLIs, bench smoke)"
node --test --test-timeout=600000 tests/e2e/*.test.mjs
