#!/usr/bin/env bash
# Install calibration-policy with its panel and test tools. Safe to run again: it only adds
# what is missing. Chromium (for the browser tests) comes from Debian's packages when
# apt-get is available and we are root; Playwright drives it, so no browser is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
want_browser="${1:-}"
python3 -m pip install --quiet --disable-pip-version-check -e '.[ui,test]'
if [ "$want_browser" = "--with-browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Installing Chromium from Debian's packages for the browser tests…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is not installed and cannot be installed here (needs root and apt-get); browser tests will be skipped." >&2
  fi
fi
