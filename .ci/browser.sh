#!/usr/bin/env bash
# Debian's Chromium and its chromedriver for the report's browser test (tests/pipelines/test_report_browser.py).
# Installs them when missing (apt-get update only when apt does not know the packages yet), then prints
# the two paths, browser first, one per line; .ci/run exports them as HYBRIDMIX_CHROMIUM and
# HYBRIDMIX_CHROMEDRIVER. Nothing else is downloaded: Selenium is given the driver's path.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# The fonts are what chromium-common only recommends: a page needs some sans-serif and monospace font.
PACKAGES=(chromium chromium-driver fonts-liberation fonts-dejavu-core)
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if (( ${#missing[@]} )); then
  # An apt that has never been updated has no candidate for them.
  if ! apt-cache policy "${missing[@]}" 2>/dev/null | grep -q "Candidate: [0-9]"; then
    $SUDO apt-get update -q >&2
  fi
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
browser=$(command -v chromium || true)
driver=$(command -v chromedriver || true)
[[ -x "$browser" && -x "$driver" ]] || { echo "browser: chromium or chromedriver not found after install" >&2; exit 1; }
"$browser" --version >&2
"$driver" --version >&2
echo "$browser"
echo "$driver"
