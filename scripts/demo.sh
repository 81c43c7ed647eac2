#!/usr/bin/env bash
# Replay the bundled 65 days of SPY and QQQ option chains through the policy, then print the
# summary and the newest runs. Everything lands in ./demo-output; nothing else is touched.
# With --serve, then open the calibration panel on that data at http://127.0.0.1:8000/calibration/
# With --store postgresql://user:pw@host/db, runs, suggestions and the archive go to that database
# instead (its tables are created or upgraded first; the database itself must exist).
set -euo pipefail
cd "$(dirname "$0")/.."
serve=no
store=()
while [ $# -gt 0 ]; do
  case "$1" in
    --serve) serve=yes ;;
    --store) store=(--store "$2"); shift ;;
    --store=*) store=(--store "${1#--store=}") ;;
    *) printf 'Unknown option %s (known: --serve, --store URL)\n' "$1" >&2; exit 2 ;;
  esac
  shift
done
bash scripts/setup.sh
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
if [ ${#store[@]} -gt 0 ]; then
  calibration-policy db upgrade "${store[@]}"
fi
calibration-policy demo --out demo-output "${store[@]}"
echo
calibration-policy history SPY --data demo-output --limit 5 --full "${store[@]}"
if [ "$serve" = yes ]; then
  echo
  echo "Serving the options agent's app with the calibration panel on the demo data: open http://127.0.0.1:8000/calibration/ (Ctrl-C to stop)"
  calibration-policy serve --data demo-output --app examples/options_agent/app.py "${store[@]}"
fi
