#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the embedded organism: build (or reuse) the default
# organism, then trace → unlearn → evaluate → quantize → SAE → report.html. Extra args go to the pipeline
# (e.g. --quick for tiny sizes, --set unlearn.train.max_steps=50).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
.venv/bin/workbench organism build --preset default
.venv/bin/workbench pipeline --config configs/pipeline/default.yaml --out runs/pipeline "$@"
