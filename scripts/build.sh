#!/usr/bin/env bash
# Builds the wasm package (pop3-wasm/pkg: the default module and the
# TLS-capable one) and the bridge. Incremental: cargo
# skips what is current, wasm-bindgen runs only when the .wasm changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bridge_profile=${BRIDGE_PROFILE:-dev}

out=pop3-wasm/pkg

# wasm_module PROFILE NAME [CARGO ARGS…]: builds the crate for wasm32 and,
# when the .wasm changed, runs wasm-bindgen and wasm-opt on it, giving
# $out/NAME.js and $out/NAME_bg.wasm.
wasm_module() {
  local profile=$1 name=$2
  shift 2
  cargo build --quiet -p pop3-wasm --target wasm32-unknown-unknown --profile "$profile" "$@"
  local wasm=target/wasm32-unknown-unknown/$profile/pop3_wasm.wasm
  if [ ! -f "$out/${name}_bg.wasm" ] || [ "$wasm" -nt "$out/${name}_bg.wasm" ]; then
    wasm-bindgen --target web --out-dir "$out" --out-name "$name" "$wasm"
    # binaryen's size optimiser (the npm build: Debian's binaryen 108 is too
    # old for externref tables and writes a module that does not load):
    # about a third off the module. The feature flags are what rustc and
    # wasm-bindgen emit for wasm32 today.
    node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-reference-types --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-multivalue --enable-mutable-globals \
      "$out/${name}_bg.wasm" -o "$out/${name}_bg.wasm"
  fi
}

# The default module: the client, no TLS inside (the bridge does TLS).
wasm_module wasm pop3_wasm
# The TLS-capable module (end-to-end TLS: rustls + ring inside, `TlsEngine`
# exported), loaded only by sessions that ask for it. Its own profile keeps
# both builds incremental (see the root Cargo.toml). ring's C parts need
# clang (scripts/setup.sh installs it).
wasm_module wasm-tls pop3_wasm_tls --features tls
# The analyzer's module: the TLS-capable one plus the diagnosis rules
# (`runDiagnosis`), loaded only by diagnose(). Apart, because the rules and
# their words (about 30 KiB gzip) would take the TLS-capable module over its
# 450 KiB budget.
wasm_module wasm-diag pop3_wasm_diag --features tls,diagnose
cargo build --quiet -p ws-bridge --profile "$bridge_profile"

# The pages load the package's browser entry without a bundler: put a copy
# of it (JS + the three wasm modules: the TLS-capable one is fetched only by
# a session that asks for end-to-end TLS, the analyzer's only by diagnose())
# next to them.
mkdir -p web/pop3-wasm/js web/pop3-wasm/pkg
cp pop3-wasm/js/*.js web/pop3-wasm/js/
cp "$out/pop3_wasm.js" "$out/pop3_wasm_bg.wasm" "$out/pop3_wasm_tls.js" "$out/pop3_wasm_tls_bg.wasm" \
  "$out/pop3_wasm_diag.js" "$out/pop3_wasm_diag_bg.wasm" web/pop3-wasm/pkg/

# The checker page decodes messages with postal-mime (ESM, no bundler):
# a copy of its browser build next to the pages.
if [ -d node_modules/postal-mime/dist/esm ]; then
  mkdir -p web/vendor/postal-mime
  cp node_modules/postal-mime/dist/esm/*.js node_modules/postal-mime/LICENSE.txt web/vendor/postal-mime/
fi
