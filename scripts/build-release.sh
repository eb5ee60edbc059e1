#!/usr/bin/env bash
# Builds the release binary as distributed: statically linked against glibc (crt-static), which
# halves the cost of every exec of frona (frona itself and its init helper) on each `frona run`.
# Prints the path of the binary.
#
# `--target` is explicit so that RUSTFLAGS reach only the target artifacts, not the
# proc-macros and build scripts compiled for the host.
set -euo pipefail
cd "$(dirname "$0")/.."
host="$(rustc -vV | sed -n 's/^host: //p')"
case "$host" in
  *-linux-gnu) flags="-C target-feature=+crt-static" ;;
  *) flags="" ;;
esac
RUSTFLAGS="${RUSTFLAGS:-} $flags" cargo build --release --locked -p frona --target "$host" >&2
echo "$PWD/target/$host/release/frona"
