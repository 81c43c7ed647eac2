#!/usr/bin/env bash
# Replay the bundled 65 days of SPY and QQQ option chains through the policy, then print the
# summary and the newest runs. Everything lands in ./demo-output; nothing else is touched.
# With --serve, then open the calibration panel on that data at http://127.0.0.1:8000/calibration/
set -euo pipefail
cd "$(dirname "$0")/.."
serve=no
[ "${1:-}" = "--serve" ] && serve=yes
bash scripts/setup.sh
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
calibration-policy demo --out demo-output
echo
calibration-policy history SPY --data demo-output --limit 5 --full
if [ "$serve" = yes ]; then
  echo
  echo "Serving the calibration panel on the demo data: open http://127.0.0.1:8000/calibration/ (Ctrl-C to stop)"
  calibration-policy serve --data demo-output
fi
