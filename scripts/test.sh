#!/usr/bin/env bash
# The whole test suite, set-up included: installs from uv.lock into ./.venv (scripts/setup.sh),
# then runs pytest there. Long variants (hundreds of crash kills, big concurrency runs) run with
# CALIBRATION_POLICY_LONG_TESTS=1. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-browser --with-postgresql
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
# On every core (pytest-xdist; work stealing evens out the long subprocess tests); `-n 0` runs in one process.
exec python -m pytest -q -n auto --dist worksteal "$@"
