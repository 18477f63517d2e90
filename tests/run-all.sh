#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: installs the system packages
# the tests need (if missing), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Programs the real-program tests run, allocator libraries `check` audits,
# binutils (ld -r, objcopy, ar) for prefixed-mode static archives, and
# libc6-dev for the statically linked program `run` must detect, and clang +
# lld (ld64.lld) to regenerate the Mach-O fixtures tests/macho_check.rs compares.
packages=(gcc g++ binutils libc6-dev perl git sqlite3 python3 libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 clang lld)
# Windows builds and tests/msrv.rs, tests/windows.rs: Debian's rustc 1.63 with
# the windows-gnu std, its cargo, mingw-w64 and wine (without recommends: no
# fonts, no 32-bit wine).
windows_packages=(rustc libstd-rust-dev-windows cargo mingw-w64 wine)
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
updated=""
install() {
  local missing=()
  for p in "${@:2}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }
    $sudo apt-get install -y -qq $1 "${missing[@]}" >/dev/null
  fi
}
install "" "${packages[@]}"
install --no-install-recommends "${windows_packages[@]}"

# The benchmarks are never run here (timings do not decide pass or fail),
# but they must keep building.
cargo test --workspace --benches --no-run
cargo test --workspace "$@"
