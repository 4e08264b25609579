#!/usr/bin/env bash
# Builds the wasm package (pop3-wasm/pkg) and the bridge. Incremental: cargo
# skips what is current, wasm-bindgen runs only when the .wasm changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bridge_profile=${BRIDGE_PROFILE:-dev}

cargo build --quiet -p pop3-wasm --target wasm32-unknown-unknown --profile wasm
wasm=target/wasm32-unknown-unknown/wasm/pop3_wasm.wasm
out=pop3-wasm/pkg
if [ ! -f "$out/pop3_wasm_bg.wasm" ] || [ "$wasm" -nt "$out/pop3_wasm_bg.wasm" ]; then
  wasm-bindgen --target web --out-dir "$out" --out-name pop3_wasm "$wasm"
fi
cargo build --quiet -p ws-bridge --profile "$bridge_profile"

# The pages load the package's browser entry without a bundler: put a copy
# of it (JS + wasm) next to them.
mkdir -p web/pop3-wasm/js web/pop3-wasm/pkg
cp pop3-wasm/js/*.js web/pop3-wasm/js/
cp "$out/pop3_wasm.js" "$out/pop3_wasm_bg.wasm" web/pop3-wasm/pkg/
