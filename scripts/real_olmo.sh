#!/usr/bin/env bash
# A worked run on a real OLMo checkpoint with the official SemEval-2025 Task 4 data on N GPUs.
#   bash scripts/real_olmo.sh DATA_DIR [N_GPUS] [MODEL]
# DATA_DIR holds forget.jsonl / retain.jsonl (or the official parquet files). The trace reads
# DATA_DIR/facts/forget.jsonl if you wrote one, else the forget QA records as they are (the subject is
# the question's named entity, the answer the record's output).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: scripts/real_olmo.sh DATA_DIR [N_GPUS] [MODEL]}
N=${2:-8}
MODEL=${3:-allenai/OLMo-1B-0724-hf}
OUT=runs/real_olmo
FACTS="$DATA/facts/forget.jsonl"
[ -f "$FACTS" ] || FACTS=$(ls "$DATA"/forget*.jsonl | head -n 1)
bash scripts/setup.sh
# 1. where the facts live: causal tracing, facts sharded across the GPUs and merged
.venv/bin/accelerate launch --config_file scripts/accelerate/ddp_1node.yaml --num_processes "$N" \
  -m workbench trace --model "$MODEL" --facts "$FACTS" --out "$OUT/trace"
# 2. layer-constrained unlearning of the traced layers, DDP over N GPUs
.venv/bin/accelerate launch --config_file scripts/accelerate/ddp_1node.yaml --num_processes "$N" \
  -m workbench unlearn --config configs/unlearn/constrained_traced.yaml \
  model="$MODEL" data.path="$DATA" select.trace="$OUT/trace" out="$OUT/unlearn" dtype=bfloat16
# 3. the SemEval metrics, MIA and MMLU (lm-eval) on the result
.venv/bin/workbench eval --model "$OUT/unlearn/model" --data "$DATA" --suite semeval,mia,mmlu --out "$OUT/eval"
# Or everything in one job (one process; unlearning through accelerate on the visible device):
#   .venv/bin/workbench pipeline --config configs/pipeline/olmo1b_semeval.yaml --set data="$DATA" --out "$OUT/pipeline"
