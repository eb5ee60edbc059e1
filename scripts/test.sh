#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and the whole test suite.
# Installs what the tests need first (Debian packages, and moto in a project venv).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# What the end-to-end tests run: `setpriv` (util-linux) to run frona as an unprivileged user,
# bash for the job-control test, curl for the HTTP proxy tests, and the real programs the
# isolation must not break (sh, python3, node, git, and a C compiler with static glibc for a
# static binary).
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v bash >/dev/null || need+=(bash)
command -v python3 >/dev/null || need+=(python3)
command -v node >/dev/null || need+=(nodejs)
command -v git >/dev/null || need+=(git)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++) # libFuzzer, for the fuzzing smoke run
[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/aarch64-linux-gnu/libc.a ]] || need+=(libc6-dev)
# frona's SSH agent is tested against real OpenSSH: ssh, ssh-agent, ssh-add, ssh-keygen and sshd
# on loopback ports (tests/tests/e2e/ssh_agent.rs).
command -v ssh-agent >/dev/null || need+=(openssh-client)
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
# systemd-analyze and systemd-sysusers check the unit files in systemd/ (tests/tests/e2e/systemd.rs).
command -v systemd-analyze >/dev/null || need+=(systemd)
install_debian_packages scripts/test.sh "${need[@]}"

# The AWS backend is tested against moto, the AWS emulator, and the MCP gateway against the
# official Python MCP SDK (a server and a client), both in a project venv.
moto_version="5.2.5"
mcp_version="1.30.0"
if [[ ! -x .venv/bin/moto_server ]] || ! .venv/bin/python -c "import moto, sys, importlib.metadata as m; sys.exit(moto.__version__ != '$moto_version' or m.version('mcp') != '$mcp_version')" 2>/dev/null; then
  python3 -m venv .venv 2>/dev/null || { install_debian_packages scripts/test.sh python3-venv && python3 -m venv .venv; }
  .venv/bin/pip install --quiet --disable-pip-version-check "moto==$moto_version" flask flask-cors "mcp==$mcp_version"
fi
export FRONA_TEST_MOTO_SERVER="$PWD/.venv/bin/moto_server"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole suite, summed over every test binary.
summary="$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) s += $(i-1) } }
     END { printf "all tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log")"
# A fuzzing smoke run (docs/fuzzing.md): every target briefly from its seed corpus, which holds
# the inputs of every crash found so far. About 2-3 minutes from a clean fuzz/target.
scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
echo "$summary"
