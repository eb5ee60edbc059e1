#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and the whole test suite.
# Installs what the tests need first (nothing beyond the Rust toolchain and util-linux yet).
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests use `setpriv` (util-linux) to run frona as an unprivileged user, and bash for the
# job-control test. Both are in every Debian base image; install them if missing.
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v bash >/dev/null || need+=(bash)
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else
    echo "scripts/test.sh: missing ${need[*]}; install them and re-run" >&2
    exit 1
  fi
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) s += $(i-1) } }
     END { printf "all tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
