#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite offline. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export WORKBENCH_CACHE="${WORKBENCH_CACHE:-$PWD/.cache/workbench}"
export MPLBACKEND=Agg
.venv/bin/ruff check workbench tests analyses
.venv/bin/lint-imports --no-cache  # the package layering (pyproject.toml [tool.importlinter])
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
