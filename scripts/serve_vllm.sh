#!/usr/bin/env bash
# Serve the app's embedded SmolLM2 (its float copy) with vLLM's CPU build on loopback, through
# vLLM's OpenAI-compatible API. vLLM runs in its own virtualenv, .venv-vllm, as a separate server
# would: its requirements conflict with the app's transformers range.
#
#   bash scripts/serve_vllm.sh            # 127.0.0.1:8000, served name "smollm2-135m-instruct"
#   VLLM_PORT=8011 bash scripts/serve_vllm.sh
#   then: .venv/bin/python app.py --openai-url http://127.0.0.1:8000/v1
#
# Knobs (environment): VLLM_HOST (127.0.0.1), VLLM_PORT (8000), VLLM_MODEL (a folder or Hub id;
# default: the app's float copy of the embedded GGUF, made on first use), VLLM_SERVED_NAME,
# VLLM_MAX_MODEL_LEN (2048), VLLM_CPU_KVCACHE_SPACE (GiB of KV cache, 1), VLLM_MAX_LOGPROBS (20),
# VLLM_EAGER (set: --enforce-eager), VLLM_PLAYGROUND_FAST_TOP_P (0: vLLM's own top-p sort),
# VLLM_EXECUTOR (uni: the worker in the server's process; mp for tensor parallel on GPUs).
# Extra arguments go to vLLM's server as they are (e.g. --tensor-parallel-size 2 on GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
if [ ! -x "$VENV/bin/python" ]; then
  echo "no $VENV: run  bash scripts/install.sh --serve  (installs vllm-cpu into $VENV)" >&2
  exit 1
fi
APP_PY=${APP_PYTHON:-.venv/bin/python}
[ -x "$APP_PY" ] || APP_PY=python3
if [ -z "${VLLM_MODEL:-}" ]; then
  # The same weights the app loads offline: the embedded GGUF dequantized once to safetensors.
  VLLM_MODEL=$("$APP_PY" -c 'from engine.core.registry import Registry
from engine.core.models import float_copy_of_gguf
s = Registry(online=False, reason="serve").resolve("smollm2-135m-instruct")
print(float_copy_of_gguf(s.path, s.filename))')
fi
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# vLLM's CPU build keeps one core for its scheduler: on a 2-core machine that leaves the model one
# core. Measured here (bench serving, 32 students): 63 tokens/s with the default, 77 with both cores.
if [ "$(nproc)" -le 2 ]; then
  export VLLM_CPU_NUM_OF_RESERVED_CPU=${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}
fi
export VLLM_TARGET_DEVICE=${VLLM_TARGET_DEVICE:-cpu}
# The app's vLLM plugin (scripts/vllm_plugin, registered through its dist-info): top-k then top-p on
# the k best logits instead of vLLM's whole-vocabulary sort per step; 152 -> 231 tokens/s here with the
# Decoding tab's defaults (top_k 50, top_p 0.9) at 32 requests. VLLM_PLAYGROUND_FAST_TOP_P=0: off.
export PYTHONPATH="$PWD/scripts/vllm_plugin${PYTHONPATH:+:$PYTHONPATH}"
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
# The `vllm` console script fails here on a package-metadata lookup (the distribution is
# named vllm-cpu); the module entry point is the same server.
exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
  --host "${VLLM_HOST:-127.0.0.1}" --port "${VLLM_PORT:-8000}" \
  --model "$VLLM_MODEL" --served-model-name "${VLLM_SERVED_NAME:-smollm2-135m-instruct}" \
  --dtype float32 --max-model-len "${VLLM_MAX_MODEL_LEN:-2048}" \
  --max-logprobs "${VLLM_MAX_LOGPROBS:-20}" ${VLLM_EAGER:+--enforce-eager} --disable-log-stats \
  --distributed-executor-backend "${VLLM_EXECUTOR:-uni}" "$@"
