#!/usr/bin/env bash
# Prometheus' promtool for the monitoring tests (rule and config checks, rule unit tests):
# Debian's `prometheus` package, installed with apt-get when promtool is missing. The package's
# own service is not used (the tests run promtool only).
set -euo pipefail
say() { echo "monitoring: $*"; }
die() { echo "monitoring: $*" >&2; exit 1; }
if command -v promtool >/dev/null; then say "$(promtool --version 2>&1 | head -n1)"; exit 0; fi
command -v apt-get >/dev/null || die "promtool is needed for the monitoring tests; install Debian's prometheus package (apt-get install prometheus)."
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "installing prometheus needs root or sudo; run: apt-get install prometheus"
  sudo=sudo
fi
logs="$(cd "$(dirname "$0")/.." && pwd)/.stack/logs"
mkdir -p "$logs"
say "installing Debian's prometheus (for promtool)"
{ $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus; } \
  >"$logs/apt-prometheus.log" 2>&1 || { tail -n 20 "$logs/apt-prometheus.log" >&2; die "could not install prometheus with apt-get (log: $logs/apt-prometheus.log)."; }
say "$(promtool --version 2>&1 | head -n1)"
