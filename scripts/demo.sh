#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the embedded organism. Extra args go to the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
.venv/bin/workbench organism build --preset default "$@"
