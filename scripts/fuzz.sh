#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a time budget each.
#
#   scripts/fuzz.sh                 # 60 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 3600            # an hour per target
#   scripts/fuzz.sh 600 multiline   # some targets only
#   FUZZ_JOBS=4 scripts/fuzz.sh 3600   # several libFuzzer workers per target
#
# Seeds come from fuzz/corpus/<target>/ (committed, read only here); what the
# fuzzer finds goes to fuzz/target/corpus/<target>/ (not committed). A crash
# leaves its input in fuzz/artifacts/<target>/ and fails this script: turn it
# into a regression test (pop3-wasm/tests/regressions.rs) before fixing.
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer=address); on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them. cargo-fuzz comes from
# scripts/setup.sh, before the test run starts; this installs it only when
# it is still missing (run on its own).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(response_session multiline sasl_server_messages bridge_wire bridge_stls_reply bridge_forwarded_for bridge_e2e_guard driver_input)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  # --force: cargo may still list it as installed when only the binary is gone.
  cargo install --force cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
echo "== cargo fuzz build (release, address sanitizer)"
cargo fuzz build -O 2>&1 | grep -v '^\s*Compiling' || true
for t in "${targets[@]}"; do
  work="target/corpus/$t"
  mkdir -p "$work" "artifacts/$t"
  echo "== fuzz $t for ${secs}s"
  # -rss_limit_mb: the core must stay small whatever the input;
  # -timeout: any single input taking a second is a bug (a hang).
  jobs=()
  if [ -n "${FUZZ_JOBS:-}" ]; then jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); fi
  set +e
  cargo fuzz run -O "$t" "$work" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=5 -max_len=65536 \
    -print_final_stats=1 "${jobs[@]}" >"target/fuzz-$t.log" 2>&1
  rc=$?
  set -e
  grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|Test unit written|Done [0-9]+ runs)|panicked|INFO: seed corpus' "target/fuzz-$t.log" || true
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t exited with $rc; log: fuzz/target/fuzz-$t.log" >&2
    tail -40 "target/fuzz-$t.log" >&2
    exit 1
  fi
  if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
    echo "fuzz: $t found crashing inputs in fuzz/artifacts/$t:" >&2
    ls "artifacts/$t" >&2
    exit 1
  fi
done
echo "== fuzz: no crashes (${secs}s per target: ${targets[*]})"
