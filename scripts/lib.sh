# shellcheck shell=bash
# Shared by the scripts: sourced, not run.

# install_debian_packages CALLER PACKAGE… — installs the named Debian packages when running as
# root with apt-get; otherwise says what is missing and exits.
install_debian_packages() {
  local caller="$1"
  shift
  (($#)) || return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    # To stderr: the callers' stdout is their result (bench.sh prints Markdown tables).
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >&2
  else
    echo "$caller: missing $*; install them (apt-get install $*) and re-run" >&2
    exit 1
  fi
}
