#!/usr/bin/env bash
# Benchmarks of frona against named peers, run side by side. Prints a Markdown table with
# medians and ratios; copy it into BENCHMARKS.md together with the machine it ran on.
#
#   scripts/bench.sh            # all benchmarks
#   RUNS=500 scripts/bench.sh   # more runs per command
#   ONLY="broker http" scripts/bench.sh   # some sections: run policy broker load http mcp
#   BASELINE=/path/to/frona scripts/bench.sh   # also time another build (e.g. the commit before
#                                              # a change) side by side: rows marked "baseline"
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

runs="${RUNS:-300}"
want() { [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]; }
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v bwrap >/dev/null || missing+=(bubblewrap)
install_debian_packages scripts/bench.sh "${missing[@]}"

frona="$(scripts/build-release.sh)"
cargo build --release --locked -p frona
frona_dynamic="$PWD/target/release/frona"
out="target/bench"
mkdir -p "$out"
true_bin=/bin/true

# Names in the table and the command each one times. The first is the baseline.
# Column 3 (bwrap) is the peer for the ratio column.
names=(
  "env -i /bin/true"
  "frona run --isolation off -- /bin/true"
  "bwrap --unshare-all --die-with-parent --ro-bind / / /bin/true"
  "frona run -- /bin/true (default isolation)"
  "same, dynamically linked cargo build"
)
cmds=(
  "env -i $true_bin"
  "$frona run --quiet --isolation off -- $true_bin"
  "bwrap --unshare-all --die-with-parent --ro-bind / / $true_bin"
  "$frona run --quiet -- $true_bin"
  "$frona_dynamic run --quiet -- $true_bin"
)
# The builds each frona measurement below runs: this one, and the baseline when given.
builds=("$frona")
labels=("")
if [[ -n ${BASELINE:-} ]]; then
  names+=("baseline: frona run --isolation off -- /bin/true" "baseline: frona run -- /bin/true (default isolation)")
  cmds+=("$BASELINE run --quiet --isolation off -- $true_bin" "$BASELINE run --quiet -- $true_bin")
  builds+=("$BASELINE")
  labels+=(" (baseline)")
fi

if want run; then
hyperfine --shell=none --warmup 30 --runs "$runs" --export-json "$out/run.json" \
  "${cmds[@]}" >&2

python3 - "$out/run.json" "${names[@]}" <<'PY'
import json, statistics, sys
data = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
base = statistics.median(data[0]["times"])
meds = [statistics.median(r["times"]) for r in data]
print("| command | median | p95 | vs `env -i` | vs bwrap |")
print("|---|---|---|---|---|")
for name, r, med in zip(names, data, meds):
    t = sorted(r["times"])
    p95 = t[int(len(t) * 0.95) - 1]
    print(f"| `{name}` | {med*1e3:.2f} ms | {p95*1e3:.2f} ms | {med/base:.2f}x (+{(med-base)*1e3:.2f} ms) | {med/meds[2]:.2f}x |")
PY

# Parent death: time from SIGKILL to frona until the agent's whole tree is gone, with and
# without isolation. The tree is found from the host's /proc (pids inside differ).
python3 - "$frona" <<'PY'
import os, signal, statistics, subprocess, sys, time
frona = sys.argv[1]
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
            return rest[0], int(rest[1])
    except (OSError, IndexError, ValueError):
        return None, None
def alive(pid):
    s, _ = state(pid)
    return s not in (None, "Z", "X")
def descendants(root):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            _, ppid = state(int(name))
            if ppid is not None:
                parents[int(name)] = ppid
    found, i = [root], 0
    while i < len(found):
        found += [p for p, pp in parents.items() if pp == found[i]]
        i += 1
    return found[1:]
print()
print("| scenario (30 runs) | median | max |")
print("|---|---|---|")
for label, flags, helpers in (("default isolation", [], 2), ("--isolation off", ["--isolation", "off"], 1)):
    times = []
    for _ in range(30):
        p = subprocess.Popen([frona, "run", "--quiet", *flags, "--", "sh", "-c", "sleep 60 & sleep 60 & wait"])
        deadline = time.time() + 5
        while len(tree := [t for t in descendants(p.pid) if alive(t)]) < helpers + 3:
            if time.time() > deadline:
                sys.exit(f"tree did not start: {tree}")
            time.sleep(0.005)
        start = time.perf_counter()
        os.kill(p.pid, signal.SIGKILL)
        while any(alive(t) for t in tree):
            if time.perf_counter() - start > 5:
                sys.exit(f"tree survived frona: {tree}")
            time.sleep(0.0002)
        times.append(time.perf_counter() - start)
        p.wait()
    print(f"| `kill -9 frona` until the agent tree ({len(tree)} processes) is gone, {label} | {statistics.median(times)*1e3:.2f} ms | {max(times)*1e3:.2f} ms |")
PY

fi

# Policy evaluation: 10, 100 and 1,000 rules, decided by the last rule.
if want policy; then
echo
cargo bench --quiet --locked -p frona-policy 2>/dev/null
fi

# Broker round trips: a permitted call with a cached static credential (request → policy →
# durable audit record → decision, value and end of call read back), each client on one
# persistent connection.
cargo build --release --locked -p frona-tests --bin frona-test-agent >&2
agent="$PWD/target/release/frona-test-agent"
work="$(mktemp -d)"
trap 'rm -rf "$work" /dev/shm/frona-bench-$$' EXIT
export FRONA_CONFIG_DIR="$work/config" FRONA_DATA_DIR="$work/data"
mkdir -p "$work/config/policies"
printf 'bench-value-0123456789' | "$frona" secret set bench >/dev/null
"$frona" credential register --name bench-token --backend local --path bench >/dev/null
cat > "$work/config/policies/bench.yaml" <<'YAML'
rules:
  - name: bench
    tool: bench-sdk
    credentials: [bench-token]
    effect: permit
    issue: { deliver: value }
YAML
echo
if want broker; then
echo "| broker, audit on | clients | calls | p50 | p99 | calls/s | peer: canned answers, p50 / calls/s | ratio p50 / calls/s |"
echo "|---|---|---|---|---|---|---|---|"
"$agent" echo-server "$work/echo.sock" &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null; rm -rf "$work" /dev/shm/frona-bench-$$' EXIT
for state in "$work/state" "/dev/shm/frona-bench-$$"; do
  where=disk; [[ $state == /dev/shm/* ]] && where=tmpfs
  for clients in 1 64; do
  for b in "${!builds[@]}"; do
    frona_json="$(FRONA_STATE_DIR="$state" "${builds[$b]}" run --quiet --isolation off -- "$agent" bench-broker 6400 "$clients")"
    peer_json="$(FRONA_BROKER_SOCKET="$work/echo.sock" "$agent" bench-broker 6400 "$clients")"
    python3 - "$where${labels[$b]}" "$frona_json" "$peer_json" <<'PY'
import json, sys
where, f, p = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {where} | {f['clients']} | {f['calls']} | {f['p50_us']} µs | {f['p99_us']} µs | {f['calls_per_s']:.0f} "
      f"| {p['p50_us']} µs / {p['calls_per_s']:.0f} | {f['p50_us']/max(p['p50_us'],1):.1f}x / {f['calls_per_s']/p['calls_per_s']:.2f}x |")
PY
  done
  done
done

# The floor under a durable record: append one audit-sized line and fdatasync it, alone.
echo
for state in "$work/state" "/dev/shm/frona-bench-$$"; do
  python3 - "$state" <<'PY'
import os, statistics, sys, time
path = os.path.join(sys.argv[1], "floor.log")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
line, times = b"x" * 400 + b"\n", []
for _ in range(2000):
    t = time.perf_counter(); os.write(fd, line); os.fdatasync(fd); times.append(time.perf_counter() - t)
print(f"append 400 bytes + fdatasync in `{sys.argv[1]}`: p50 {statistics.median(times)*1e6:.0f} µs")
PY
done
fi

# The broker under load (issue 8): the load test of the e2e suite, release build. 10,000
# calls from 64 clients, permit/deny/ask, with approvals, grant revocations and rotations.
if want load; then
echo
cargo test --release --locked -q -p frona-tests --test e2e -- load:: --nocapture 2>/dev/null \
  | grep -E '^(load|frames):'
fi

# HTTP credential proxy: GETs through frona's proxy (policy, injection, redaction, a durable
# decision record before the request leaves and an outcome record after) vs the same client
# straight to the same local HTTPS server, with the audit log on disk and on tmpfs.
# One row of the HTTP tables: where the audit log is, and the JSON lines of the client through
# frona and straight to the server.
http_row() {
  python3 - "$@" <<'PY'
import json, sys
where, p, d = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {where} | {p['clients']} | {p['requests']} | {p['p50_us']} µs | {p['p99_us']} µs | {p['per_s']:.0f} "
      f"| {d['p50_us']} µs / {d['per_s']:.0f} | +{p['p50_us'] - d['p50_us']} µs ({p['p50_us']/max(d['p50_us'],1):.1f}x) |")
PY
}

if want http; then
echo
echo "| HTTP, audit log on | clients | requests | p50 | p99 | req/s | peer: direct p50 / req/s | added p50 |"
echo "|---|---|---|---|---|---|---|---|"
"$agent" https-server "$work/ca.pem" > "$work/https.port" &
https_pid=$!
trap 'kill ${echo_pid:-} $https_pid 2>/dev/null; rm -rf "$work" /dev/shm/frona-bench-$$' EXIT
for _ in $(seq 50); do [[ -s $work/https.port ]] && break; sleep 0.1; done
port="$(cat "$work/https.port")"
"$frona" credential register --name bench-http --backend local --path bench \
  --route "bench=https://localhost:$port" --inject bearer >/dev/null
cat > "$work/config/policies/http.yaml" <<'YAML'
rules:
  - name: bench-http
    http: { method: GET, host: localhost, path: "/v1/*" }
    credentials: [bench-http]
    effect: permit
YAML
for state in "$work/http-state" "/dev/shm/frona-bench-http-$$"; do
  where=disk; [[ $state == /dev/shm/* ]] && where=tmpfs
  for clients in 1 16; do
  for b in "${!builds[@]}"; do
    requests=$((clients == 1 ? 6400 : 12800))
    proxied="$(SSL_CERT_FILE="$work/ca.pem" FRONA_STATE_DIR="$state" "${builds[$b]}" run --quiet --isolation off -- "$agent" bench-http proxy "$requests" "$clients" "$port")"
    direct="$(BENCH_CA="$work/ca.pem" "$agent" bench-http direct "$requests" "$clients" "$port")"
    http_row "$where${labels[$b]}" "$proxied" "$direct"
  done
  done
done
rm -rf "/dev/shm/frona-bench-http-$$"

# Placeholder credentials: the agent (under --net proxy, default isolation) sends a placeholder
# through a CONNECT tunnel of the egress proxy, which terminates TLS with the session CA,
# decides and audits each request, swaps in the value and forwards over verified TLS. The
# server answers 401 unless it got the value, so a run that did not swap fails. Peer: the same
# client straight to the server with the value.
kill $https_pid 2>/dev/null || true
value="bench-bound-value-0123456789abcdef"
BENCH_EXPECT="Bearer $value" "$agent" https-server "$work/ca.pem" > "$work/https.port" &
https_pid=$!
: > "$work/https.port"
for _ in $(seq 50); do [[ -s $work/https.port ]] && break; sleep 0.1; done
port="$(cat "$work/https.port")"
printf '%s' "$value" | "$frona" secret set bench-bound >/dev/null
"$frona" credential register --name bench-bound --backend local --path bench-bound \
  --env BENCH_TOKEN --inject-host "localhost:$port" >/dev/null
cat > "$work/config/policies/bound.yaml" <<'YAML'
rules:
  - name: bench-bound
    http: { method: GET, host: localhost, path: "/v1/*" }
    credentials: [bench-bound]
    effect: permit
YAML
echo
echo "| placeholder swap, audit log on | clients | requests | p50 | p99 | req/s | peer: direct p50 / req/s | added p50 |"
echo "|---|---|---|---|---|---|---|---|"
for state in "$work/bound-state" "/dev/shm/frona-bench-bound-$$"; do
  where=disk; [[ $state == /dev/shm/* ]] && where=tmpfs
  for clients in 1 16; do
  for b in "${!builds[@]}"; do
    requests=$((clients == 1 ? 6400 : 12800))
    proxied="$(SSL_CERT_FILE="$work/ca.pem" FRONA_STATE_DIR="$state" "${builds[$b]}" run --quiet --net proxy \
      --allow-host "localhost:$port" --allow-host "127.0.0.1:$port" \
      -- "$agent" bench-http placeholder "$requests" "$clients" "$port")"
    direct="$(BENCH_CA="$work/ca.pem" BENCH_AUTH="Bearer $value" "$agent" bench-http direct "$requests" "$clients" "$port")"
    http_row "$where${labels[$b]}" "$proxied" "$direct"
  done
  done
done
rm -rf "/dev/shm/frona-bench-bound-$$"
fi

# MCP gateway: a trivial `tools/call` round trip with the official Python SDK's stdio client,
# through `frona mcp connect` (under `frona run --isolation off`, the broker starting the
# server with its credential) against the same client starting the same server itself (the
# peer), in the same invocation. Needs the project venv with `mcp` (scripts/test.sh makes it).
if want mcp; then
python=.venv/bin/python
if ! "$python" -c "import mcp" 2>/dev/null; then
  echo "bench.sh: mcp skipped: no .venv with the MCP SDK (run scripts/test.sh first)" >&2
else
printf 'bench-mcp-token' | "$frona" secret set bench-mcp >/dev/null
"$frona" credential register --name bench-mcp --backend local --path bench-mcp >/dev/null
"$frona" mcp add demo --credential bench-mcp=DEMO_TOKEN -- "$PWD/$python" "$PWD/tests/mcp/server.py" 2>/dev/null
cat > "$work/config/policies/mcp.yaml" <<'YAML'
rules:
  - name: bench-mcp
    mcp: { server: demo, tool: get_issue }
    effect: permit
YAML
echo
echo "| MCP tools/call, audit log on | connections | calls | p50 | p99 | calls/s | peer: direct p50 / calls/s | added p50 |"
echo "|---|---|---|---|---|---|---|---|"
for state in "$work/mcp-state" "/dev/shm/frona-bench-mcp-$$"; do
  where=disk; [[ $state == /dev/shm/* ]] && where=tmpfs
  for connections in 1 8; do
  for b in "${!builds[@]}"; do
    calls=$((connections == 1 ? 2000 : 4000))
    through="$(FRONA_STATE_DIR="$state" "${builds[$b]}" run --quiet --isolation off -- \
      "$python" tests/mcp/bench.py "$calls" "$connections" "${builds[$b]}" mcp connect demo)"
    direct="$(DEMO_TOKEN=x "$python" tests/mcp/bench.py "$calls" "$connections" "$python" tests/mcp/server.py 2>/dev/null)"
    http_row "$where${labels[$b]}" "$through" "$direct"
  done
  done
done
rm -rf "/dev/shm/frona-bench-mcp-$$"
fi
fi
