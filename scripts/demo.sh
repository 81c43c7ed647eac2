#!/usr/bin/env bash
# Replay the bundled 65 days of SPY and QQQ option chains through the policy, then print the
# summary and the newest runs. Everything lands in ./demo-output; nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
calibration-policy demo --out demo-output "$@"
echo
calibration-policy history SPY --history-dir demo-output/calibration_runs --limit 5
