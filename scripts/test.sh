#!/usr/bin/env bash
# The whole test suite, set-up included: installs from uv.lock into ./.venv (scripts/setup.sh),
# then runs pytest there. Long variants (hundreds of crash kills, big concurrency runs) run with
# CALIBRATION_POLICY_LONG_TESTS=1. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-browser --with-postgresql --compile-packages
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
# Bytecode in one folder of its own (.venv/pycache): the installed packages' compiled at set-up, the tests' own
# modules (with pytest's assertion rewriting) at their first run, and kept; never a __pycache__ beside a source,
# where tests compare folders byte for byte. Where the shell sets PYTHONDONTWRITEBYTECODE, every worker of every
# run compiled all of it again (collecting took 9 s of CPU a worker instead of 3).
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"
unset PYTHONDONTWRITEBYTECODE
# The tests' temporary folders on a RAM file system (/dev/shm) when it has 4 GB free: every run, change and
# suggestion is fsync'd, and on a shared disk those waits were much of the suite's time. The tests check what
# is written and what survives a killed process, which a tmpfs keeps as a disk does; what fsync costs on a disk
# is measured by the benchmarks. CALIBRATION_POLICY_TEST_TMP=DIR picks the place, =disk keeps the system's.
tmp="${CALIBRATION_POLICY_TEST_TMP:-}" run_tmp=""
if [ -z "$tmp" ] && [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -n 1 | tr -d ' ')" -gt 4000000 ] 2>/dev/null; then
  tmp="/dev/shm/calibration-policy-tests-$(id -u)"
  find "$tmp" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf {} + 2>/dev/null || true  # a day-old failed run's
fi
if [ -n "$tmp" ] && [ "$tmp" != disk ]; then
  run_tmp="$tmp/run-$$"
  mkdir -p "$run_tmp" && chmod 755 "$tmp" "$run_tmp"  # the tests' PostgreSQL server runs as postgres, in here
  export TMPDIR="$run_tmp"
  echo "The tests' temporary folders: $TMPDIR (removed when every test passes)" >&2
fi
# One worker more than the cores (pytest-xdist; work stealing evens out the long subprocess tests): many tests
# spend part of their time waiting (on a child process, the browser, PostgreSQL, a racy window's 0.2 s) and the
# extra worker fills it (on 2 cores: 332 s against 352 s with one worker a core). `-n 0` runs in one process.
status=0
python -m pytest -q -n "$(($(nproc) + 1))" --dist worksteal "$@" || status=$?
if [ -n "$run_tmp" ] && [ "$status" = 0 ]; then rm -rf "$run_tmp"; fi
exit "$status"
