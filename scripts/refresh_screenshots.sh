#!/usr/bin/env bash
# Retake the screenshots in docs/screenshots/ (shown in the README) from the current app.
# The browser tests write most of them; the embeddings views, the evaluation suite, stress test and
# rank views, and the LoRA run (a full 40-step
# training, one to two minutes) are taken by their own scripts.
# Emoji and CJK need fonts in Chromium: apt-get install -y fonts-noto-color-emoji fonts-noto-cjk
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -m browser
port=7899
.venv/bin/python app.py --offline --port "$port" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid' EXIT
until curl -sf "http://127.0.0.1:$port/" >/dev/null; do sleep 1; done
.venv/bin/python scripts/screenshot_embeddings.py "http://127.0.0.1:$port/"
.venv/bin/python scripts/screenshot_lora.py "http://127.0.0.1:$port/"
.venv/bin/python scripts/screenshot_evaluation2.py "http://127.0.0.1:$port/"
.venv/bin/python scripts/screenshot_sizes.py "http://127.0.0.1:$port/"
echo "screenshots refreshed in docs/screenshots/"
