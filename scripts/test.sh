#!/usr/bin/env bash
# The whole test suite, set-up included. Long variants (hundreds of crash kills, big
# concurrency runs) run with CALIBRATION_POLICY_LONG_TESTS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-browser
python3 -m pytest -q "$@"
