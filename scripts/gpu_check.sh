#!/usr/bin/env bash
# The device check: every step of analyses/benchmarks/bench_scale.py on one GPU in bf16 (OLMo-2-1B and
# the full 16-layer OLMoE-1B-7B, random weights from their published configurations), in under 8 minutes.
# Prints the table and exits non-zero when any step fails, or when the run passes the time limit.
#
#   bash scripts/gpu_check.sh                        # CUDA (needs a CUDA build of torch, bitsandbytes)
#   bash scripts/gpu_check.sh --device cpu --tiny    # the same code path on tiny models (the test)
#
# Extra arguments go to bench_scale.py (e.g. --models olmo2, --json rows.json). The Python is $PYTHON,
# else .venv/bin/python, else python3; on a GPU machine use an environment with CUDA torch and
# `pip install -e .` (scripts/setup.sh pins the CPU build of torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
LIMIT=${GPU_CHECK_LIMIT_S:-480}
device=(--device cuda)
for arg in "$@"; do
  case "$arg" in --device|--device=*) device=() ;; esac
done
rc=0
# the benchmark stops its own worker at the limit; the outer timeout is a safety net
timeout -k 30 $((LIMIT + 120)) "$PY" analyses/benchmarks/bench_scale.py "${device[@]}" --dtype bfloat16 \
  --train-dtype bfloat16 --time-limit "$LIMIT" "$@" || rc=$?
if [ "$rc" -eq 124 ]; then
  echo "error: the device check did not finish within $((LIMIT + 120)) s" >&2
fi
if [ "$rc" -ne 0 ]; then
  echo "gpu_check: FAILED (exit $rc)" >&2
  exit "$rc"
fi
echo "gpu_check: every step passed" >&2
