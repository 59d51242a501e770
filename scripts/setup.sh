#!/usr/bin/env bash
# Create .venv (if missing) and install workbench with the pinned, tested versions.
# A second run on an installed venv only checks a stamp and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.workbench-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first, from the pinned CPU wheel (an unpinned torch pulls a multi-GB CUDA build)
.venv/bin/python -m pip install -q -c constraints.txt "torch==$(grep '^torch==' constraints.txt | cut -d= -f3)"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
