#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with stable Rust and libFuzzer's coverage instrumentation (no
# nightly, no cargo-fuzz needed), runs each for SECONDS (default 10) from its seed corpus in
# fuzz/corpus/TARGET, and fails when any target crashes, panics, times out or runs out of memory.
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]      targets: policy protocol detect redact (default all)
#   FUZZ_JOBS=2 scripts/fuzz.sh 300 redact   several fuzzing processes per target
#
# New inputs found go to fuzz/target/corpus/TARGET (not committed); a crash is saved as
# fuzz/artifacts/TARGET/crash-… and can be replayed with
#   fuzz/target/<host>/release/TARGET fuzz/artifacts/TARGET/crash-…
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

seconds="${1:-10}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(policy protocol detect redact)
jobs="${FUZZ_JOBS:-1}"

# libfuzzer-sys compiles libFuzzer itself, which is C++.
command -v c++ >/dev/null || install_debian_packages scripts/fuzz.sh g++

host="$(rustc -vV | sed -n 's/^host: //p')"
# What `cargo fuzz build --sanitizer none` passes, all stable flags: the sancov pass with
# inline 8-bit counters, the PC table and comparison tracing, and `--cfg fuzzing`. The explicit
# `--target` keeps them off build scripts and proc macros, which are not linked with libFuzzer.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
started=$SECONDS
# Not --locked: fuzz/Cargo.lock follows the crates' own dependencies, which change without it.
cargo build --manifest-path fuzz/Cargo.toml --target-dir fuzz/target --release \
  --target "$host" --bins
echo "fuzz: built in $((SECONDS - started))s"

failed=()
for target in "${targets[@]}"; do
  bin="fuzz/target/$host/release/$target"
  [[ -x $bin ]] || {
    echo "fuzz: no target \`$target\`" >&2
    exit 2
  }
  work="fuzz/target/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$target"
  log="fuzz/target/$target.log"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$target")
  if [[ -f fuzz/dict/$target.dict ]]; then
    args=(-dict="fuzz/dict/$target.dict" "${args[@]}")
  fi
  if ((jobs > 1)); then
    # -fork runs the jobs as child processes that share the corpus and stop at the first crash.
    args=(-fork="$jobs" "${args[@]}")
  fi
  status=0
  "$bin" "${args[@]}" >"$log" 2>&1 || status=$?
  if ((jobs > 1)); then
    # -fork prints no final stats; its last status line has the total runs and the rate.
    runs="$(sed -n 's/^#\([0-9]*\): .*/\1/p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^#[0-9]*: .* exec\/s: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)"
  else
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  fi
  runs="${runs:-0}" rate="${rate:-0}"
  if ((status != 0)); then
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $status) after $runs runs; the end of $log:" >&2
    tail -n 40 "$log" >&2
  else
    echo "fuzz: $target ok: $runs runs in ${seconds}s, $rate exec/s, $(find "$work" -type f | wc -l) inputs found so far in $work"
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
