#!/usr/bin/env bash
# Install the app into .venv (Python 3.11). With --test, also the test tools and Debian's
# chromium for the browser tests. Safe to run again: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip >/dev/null 2>&1 || true
pip install -q torch==2.13.0
pip install -q -r requirements.txt
pip install -q --no-deps -r requirements-offline.txt
if [ "${1:-}" = "--test" ]; then
  pip install -q -r requirements-test.txt
  if [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get install -y -q chromium >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
    else
      echo "install Chromium at /usr/bin/chromium for the browser tests" >&2
    fi
  fi
fi
echo "installed into .venv"
