#!/usr/bin/env bash
# Install everything the build and the tests need, when it is missing.
#
#   scripts/setup.sh            all steps
#   scripts/setup.sh rust       wasm32 target + wasm-bindgen-cli matching Cargo.lock, cargo-deny,
#                               every crate in Cargo.lock (so `cargo deny --offline` can run)
#   scripts/setup.sh fuzz       cargo-fuzz (the test run fuzzes every parser)
#   scripts/setup.sh dovecot    Debian's Dovecot (POP3) for the end-to-end fixture
#   scripts/setup.sh chromium   Debian's Chromium for the page tests
#   scripts/setup.sh nginx      nginx (scale-out tests)
#   scripts/setup.sh monitoring Prometheus + promtool, Postfix, Dovecot's LMTP (pop3-exporter tests)
#   scripts/setup.sh apt PKG…   any package from APT_BINARIES below
#   scripts/setup.sh npm        node_modules from package.json / package-lock.json
#
# Idempotent and quiet when everything is present; prints what it installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages the default run installs (append chromium, nginx… as tests need them).
# systemd: systemd-analyze checks deploy/systemd/; strace: the bridge's system calls against its unit's filter.
# clang, llvm (llvm-ar): ring's C and assembly for wasm32 (the TLS-capable module).
# prometheus, postfix, dovecot-lmtpd: pop3-exporter against a real Prometheus, the delivery round trip through a real MTA.
# iproute2: `ip netns`, for the benchmark's slow link (its smoke runs in the tests).
DEFAULT_APT_PACKAGES=(clang llvm dovecot-pop3d chromium nginx tmux systemd strace prometheus postfix dovecot-lmtpd iproute2)

# Package -> a file it installs; the package counts as present when the file exists.
declare -A APT_BINARIES=(
  [dovecot-pop3d]=/usr/lib/dovecot/pop3
  [dovecot-core]=/usr/sbin/dovecot
  [chromium]=/usr/bin/chromium
  [nginx]=/usr/sbin/nginx
  [openssl]=/usr/bin/openssl
  [tmux]=/usr/bin/tmux
  [systemd]=/usr/bin/systemd-analyze
  [strace]=/usr/bin/strace
  [clang]=/usr/bin/clang
  [llvm]=/usr/bin/llvm-ar
  [prometheus]=/usr/bin/promtool
  [postfix]=/usr/sbin/postfix
  [dovecot-lmtpd]=/usr/lib/dovecot/lmtp
  [iproute2]=/usr/sbin/ip
)

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"
  fi
}

# ---------------------------------------------------------------- rust
wasm_bindgen_lock_version() {
  # Version of the `wasm-bindgen` crate recorded in Cargo.lock (empty if none).
  [ -f Cargo.lock ] || return 0
  awk '
    /^\[\[package\]\]/ { inpkg = 1; name = ""; next }
    inpkg && /^name = / { name = $3; gsub(/"/, "", name); next }
    inpkg && /^version = / && name == "wasm-bindgen" { v = $3; gsub(/"/, "", v); print v; exit }
  ' Cargo.lock
}

setup_rust() {
  command -v rustup >/dev/null 2>&1 || die "rustup not found (install a Rust toolchain with rustup first)"
  command -v cargo >/dev/null 2>&1 || die "cargo not found"

  if ! rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
    say "installing Rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi

  local want have=""
  want="$(wasm_bindgen_lock_version)"
  if [ -z "$want" ]; then
    say "Cargo.lock records no wasm-bindgen yet; skipping wasm-bindgen-cli"
    return 0
  fi
  if command -v wasm-bindgen >/dev/null 2>&1; then
    have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')"
  fi
  if [ "$have" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (found: ${have:-none}); this takes a few minutes"
    # Deliberately without --locked: it fails to build in this environment.
    # --force: cargo may still list it as installed when only the binary is gone.
    cargo install --force wasm-bindgen-cli --version "=$want"
  fi

  setup_cargo_deny
  # cargo deny reads the metadata of every crate in Cargo.lock, for every
  # platform: fetch them now, so the check itself runs offline.
  cargo fetch --quiet
}

# The dependency policy check (deny.toml); the test run uses licenses, bans
# and sources only, which need no advisory database.
CARGO_DENY_VERSION=0.20.2
setup_cargo_deny() {
  local have=""
  if cargo deny --version >/dev/null 2>&1; then
    have="$(cargo deny --version 2>/dev/null | awk '{print $2}')"
  fi
  [ "$have" != "$CARGO_DENY_VERSION" ] || return 0
  say "installing cargo-deny $CARGO_DENY_VERSION (found: ${have:-none}); this takes a few minutes"
  # Its release profile asks for fat LTO and one codegen unit, which a tool
  # run for a second does not need; without them it builds in about 4 minutes
  # on two busy cores.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install --force --locked cargo-deny --version "=$CARGO_DENY_VERSION"
}

# cargo-fuzz, for scripts/fuzz.sh (part of the test run): installed here,
# before anything runs, not half-way through the tests.
setup_fuzz() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found"
  if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz; this takes a few minutes"
    # --force: cargo may still list it as installed when only the binary is gone.
    cargo install --force --locked cargo-fuzz
  fi
}

# ---------------------------------------------------------------- apt
APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
}

apt_present() {
  local pkg="$1" bin="${APT_BINARIES[$1]:-}"
  if [ -n "$bin" ]; then
    [ -e "$bin" ]
  else
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'
  fi
}

dovecot_system_pid() {
  # PID of the system-wide Dovecot master (the one using /run/dovecot), if running.
  local f=/run/dovecot/master.pid pid
  [ -r "$f" ] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# setup_apt PKG… : install the packages whose binaries are missing.
setup_apt() {
  local missing=() pkg
  for pkg in "$@"; do
    apt_present "$pkg" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0

  local dovecot_before
  dovecot_before="$(dovecot_system_pid)"

  apt_update_once
  say "apt-get install ${missing[*]}"
  # Postfix asks how to configure the system's mail during the install; the
  # tests run private instances with their own config, so: none.
  if printf '%s\n' "${missing[@]}" | grep -qx postfix && command -v debconf-set-selections >/dev/null 2>&1; then
    echo 'postfix postfix/main_mailer_type select No configuration' | as_root debconf-set-selections
  fi

  # Keep the packages' init scripts from starting system-wide services during the
  # install (the tests run their own instances on high loopback ports), unless the
  # machine already has a policy-rc.d of its own.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ] && [ "$(id -u)" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || rc=$?
  if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed ($rc)"

  # If the install started the system Dovecot anyway (it listens on 110/995), stop it.
  if [ -z "$dovecot_before" ] && [ -n "$(dovecot_system_pid)" ]; then
    say "stopping the system-wide dovecot started by the install"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      as_root systemctl stop dovecot >/dev/null 2>&1 || true
      as_root systemctl disable dovecot >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
      as_root service dovecot stop >/dev/null 2>&1 || true
    fi
    local pid
    pid="$(dovecot_system_pid)"
    if [ -n "$pid" ]; then as_root kill "$pid" 2>/dev/null || true; fi
  fi
  for pkg in "${missing[@]}"; do
    apt_present "$pkg" || die "$pkg installed but ${APT_BINARIES[$pkg]:-it} is still missing"
  done
}

setup_dovecot() {
  setup_apt dovecot-pop3d openssl
}

setup_monitoring() {
  setup_apt dovecot-pop3d dovecot-lmtpd prometheus postfix openssl
}

# ---------------------------------------------------------------- npm
setup_npm() {
  [ -f package.json ] || return 0
  command -v npm >/dev/null 2>&1 || die "npm not found"
  local stale=0
  if [ ! -d node_modules ]; then stale=1
  elif [ package.json -nt node_modules ]; then stale=1
  elif [ -f package-lock.json ] && [ package-lock.json -nt node_modules ]; then stale=1
  fi
  [ "$stale" -eq 1 ] || return 0
  if [ -f package-lock.json ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  else
    say "npm install"
    npm install --no-audit --no-fund --loglevel=error
  fi
  # npm may leave the directory's mtime alone when nothing changed.
  touch node_modules
}

# ---------------------------------------------------------------- main
main() {
  if [ "$#" -eq 0 ]; then
    setup_rust
    setup_fuzz
    setup_apt "${DEFAULT_APT_PACKAGES[@]}" openssl
    setup_npm
    return 0
  fi
  local step
  while [ "$#" -gt 0 ]; do
    step="$1"; shift
    case "$step" in
      rust) setup_rust ;;
      fuzz) setup_fuzz ;;
      dovecot) setup_dovecot ;;
      monitoring) setup_monitoring ;;
      chromium|nginx) setup_apt "$step" ;;
      apt) setup_apt "$@"; return 0 ;;
      npm) setup_npm ;;
      all) main ;;
      -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
      *) die "unknown step: $step (rust, fuzz, dovecot, monitoring, chromium, nginx, apt PKG…, npm)" ;;
    esac
  done
}

main "$@"
