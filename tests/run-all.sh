#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: installs the system packages
# the tests need (if missing), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Programs the real-program tests run, allocator libraries `check` audits,
# binutils (ld -r, objcopy, ar) for prefixed-mode static archives, and
# libc6-dev for the statically linked program `run` must detect, and clang +
# lld (ld64.lld) to regenerate the Mach-O fixtures tests/macho_check.rs compares,
# and Debian's rustc 1.63 with the Windows std (tests/msrv.rs; Windows builds).
packages=(gcc g++ binutils libc6-dev perl git sqlite3 python3 libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 clang lld
  rustc libstd-rust-dev-windows)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo test --workspace "$@"
