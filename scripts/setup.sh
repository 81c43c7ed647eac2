#!/usr/bin/env bash
# Install calibration-policy, its panel and its test tools into ./.venv, exactly as pinned in
# uv.lock. Never touches the system Python (Debian's is "externally managed", PEP 668): uv is
# bootstrapped into .venv/uv-tool with the venv's own pip, then `uv sync --frozen` installs the
# lock. Safe to run again: a synced venv costs about a second.
#
#   bash scripts/setup.sh                  # the package, its panel and the test tools
#   bash scripts/setup.sh --with-browser   # plus Debian's chromium for the browser tests
#   bash scripts/setup.sh --with-postgresql  # plus Debian's PostgreSQL server binaries (the store tests)
#   bash scripts/setup.sh --compile-packages # plus the installed packages' bytecode, once per lock (the tests)
#
# Choose the interpreter with CALIBRATION_PYTHON (default: python3 on PATH, 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."
want_browser="" want_postgresql="" want_bytecode=""
for arg in "$@"; do
  case "$arg" in
    --with-browser) want_browser=1 ;;
    --with-postgresql) want_postgresql=1 ;;
    --compile-packages) want_bytecode=1 ;;
    *) printf 'Unknown option %s (known: --with-browser, --with-postgresql, --compile-packages)\n' "$arg" >&2; exit 2 ;;
  esac
done
UV_VERSION="0.13.9"
venv=".venv"

say() { printf '%s\n' "$*" >&2; }
is_root_with_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

python="${CALIBRATION_PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  say "No Python found ('$python'). Install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv), or set CALIBRATION_PYTHON to one."
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "$("$python" --version 2>&1) is too old: calibration-policy needs Python 3.11 or newer. Set CALIBRATION_PYTHON to a newer one."
  exit 1
fi

# A venv needs the venv module and ensurepip, which Debian ships separately (python3-venv).
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  pkg="python3-venv"
  if is_root_with_apt; then
    say "Installing Debian's $pkg (Python's venv module is missing)…"
    apt_install "$pkg"
  else
    say "Python's venv module is missing. Install it, then run this again: sudo apt-get install $pkg"
    exit 1
  fi
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "Creating the project's virtual environment in $venv …"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

uv="$venv/uv-tool/bin/uv"
if [ ! -x "$uv" ] || [ "$("$uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "Bootstrapping uv $UV_VERSION inside $venv (nothing is installed system-wide)…"
  rm -rf "$venv/uv-tool"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$venv/uv-tool" "uv==$UV_VERSION"
fi

# uv keeps its download cache in the user's cache folder; a bare `env -i` shell has no HOME.
if [ -z "${UV_CACHE_DIR:-}" ]; then
  if [ -n "${HOME:-}" ]; then export UV_CACHE_DIR="$HOME/.cache/uv"; else export UV_CACHE_DIR="$PWD/$venv/uv-cache"; fi
fi
# Trust the machine's certificate store (a company proxy's CA lives there, not in uv's own list).
UV_PROJECT_ENVIRONMENT="$venv" UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-true}" \
  "$uv" sync --quiet --frozen --extra ui --extra test --extra postgresql --extra lint --extra docs --python "$venv/bin/python"
# The package is installed editable (its source is src/), so nothing compiled it: where the shell sets
# PYTHONDONTWRITEBYTECODE, every command would compile each module again (0.17 s of a 0.7 s `--help`).
# Compile it once, as an ordinary install does; a second run only compares times.
"$venv/bin/python" -m compileall -q -j 0 src >/dev/null
# The tests start many Python processes; where the shell sets PYTHONDONTWRITEBYTECODE, each would compile the
# installed packages it imports again (uv, unlike pip, does not compile them at install). Compile them once per
# lock file (about 13 s the first time, nothing after) into the tests' own bytecode folder, which scripts/test.sh
# points Python at (PYTHONPYCACHEPREFIX). Not for the demo: its one process would only wait.
if [ -n "$want_bytecode" ]; then
  export PYTHONPYCACHEPREFIX="$PWD/$venv/pycache"
  stamp="$PYTHONPYCACHEPREFIX/.packages-$(sha256sum uv.lock | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    say "Compiling the installed packages' bytecode once for this lock file…"
    "$venv/bin/python" -m compileall -q -j 0 "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null
    rm -f "$PYTHONPYCACHEPREFIX"/.packages-* "$venv"/.bytecode-* && touch "$stamp"
  fi
fi

if [ -n "$want_browser" ] && ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if is_root_with_apt; then
    say "Installing Chromium from Debian's packages for the browser tests…"
    apt_install chromium
  else
    say "Chromium is missing, so the browser tests will be skipped. To run them: sudo apt-get install chromium"
  fi
fi

# The PostgreSQL store's tests start a throwaway server from initdb/pg_ctl (no server to set up).
has_initdb() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if [ -n "$want_postgresql" ] && ! has_initdb; then
  if is_root_with_apt; then
    say "Installing Debian's PostgreSQL server binaries for the PostgreSQL store tests…"
    apt_install postgresql
  else
    say "PostgreSQL's initdb is missing, so the PostgreSQL store tests will be skipped. To run them: sudo apt-get install postgresql"
  fi
fi
