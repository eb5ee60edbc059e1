#!/usr/bin/env bash
# Benchmarks of frona against named peers, run side by side. Prints a Markdown table with
# medians and ratios; copy it into BENCHMARKS.md together with the machine it ran on.
#
#   scripts/bench.sh            # all benchmarks
#   RUNS=500 scripts/bench.sh   # more runs per command
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-300}"
if ! command -v hyperfine >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq hyperfine
  else
    echo "scripts/bench.sh: needs hyperfine (apt-get install hyperfine)" >&2
    exit 1
  fi
fi

cargo build --release --locked -p frona
frona="$PWD/target/release/frona"
out="target/bench"
mkdir -p "$out"
true_bin=/bin/true

# Names in the table and the command each one times.
names=("env -i true" "frona run -- true")
cmds=("env -i $true_bin" "$frona run --quiet -- $true_bin")

hyperfine --shell=none --warmup 30 --runs "$runs" --export-json "$out/run.json" \
  "${cmds[@]}" >&2

python3 - "$out/run.json" "${names[@]}" <<'PY'
import json, statistics, sys
data = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
base = statistics.median(data[0]["times"])
print("| command | median | p95 | vs `env -i` |")
print("|---|---|---|---|")
for name, r in zip(names, data):
    t = sorted(r["times"])
    med = statistics.median(t)
    p95 = t[int(len(t) * 0.95) - 1]
    print(f"| `{name}` | {med*1e3:.2f} ms | {p95*1e3:.2f} ms | {med/base:.2f}x (+{(med-base)*1e3:.2f} ms) |")
PY

# Parent death: time from SIGKILL to frona until the agent's whole tree is gone.
python3 - "$frona" <<'PY'
import os, signal, statistics, subprocess, sys, time
frona = sys.argv[1]
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
times = []
for _ in range(30):
    p = subprocess.Popen([frona, "run", "--quiet", "--", "sh", "-c", "sleep 60 & sleep 60 & echo $$; wait"],
                         stdout=subprocess.PIPE, text=True)
    agent = int(p.stdout.readline())
    tree = [agent] + [int(c) for c in open(f"/proc/{agent}/task/{agent}/children").read().split()]
    start = time.perf_counter()
    os.kill(p.pid, signal.SIGKILL)
    while any(alive(t) for t in tree):
        time.sleep(0.0002)
    times.append(time.perf_counter() - start)
    p.wait()
print()
print("| scenario | median | max |")
print("|---|---|---|")
print(f"| `kill -9 frona` until agent tree (3 processes) gone, 30 runs | {statistics.median(times)*1e3:.2f} ms | {max(times)*1e3:.2f} ms |")
PY
