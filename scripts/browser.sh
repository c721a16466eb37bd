#!/usr/bin/env bash
# Headless Chromium for the report's end-to-end test (renders the HTML report to a PNG):
# Debian's `chromium` package, installed with apt-get when it is missing.
set -euo pipefail
say() { echo "browser: $*"; }
die() { echo "browser: $*" >&2; exit 1; }
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null; then say "$("$name" --version 2>/dev/null | head -n1)"; exit 0; fi
done
command -v apt-get >/dev/null || die "Chromium is needed for the report test; install Debian's chromium package (apt-get install chromium)."
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "installing chromium needs root or sudo; run: apt-get install chromium"
  sudo=sudo
fi
logs="${CUSTPULSE_STACK_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.stack}/logs"
mkdir -p "$logs"
say "installing Debian's chromium"
{ $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk; } \
  >"$logs/apt-chromium.log" 2>&1 || { tail -n 20 "$logs/apt-chromium.log" >&2; die "could not install chromium with apt-get (log: $logs/apt-chromium.log)."; }
say "$(chromium --version 2>/dev/null | head -n1)"
