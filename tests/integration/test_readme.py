"""The README stays true: its Python example and its CLI block run as written on the tiny organism."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _block(after: str, lang: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(after) :]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs(organism_tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _block("## Python", "python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    report = namespace["report"]
    assert report.semeval is not None and report.mia is not None and report.mmlu is not None
    assert (tmp_path / "runs" / "py" / "model" / "config.json").is_file()


def test_readme_cli_block_runs(organism_tiny, tmp_path):
    script = _block("## CLI", "bash")
    (tmp_path / "configs").symlink_to(REPO / "configs")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for folder in (
        "trace",
        "patch",
        "eval",
        "unlearn/model",
        "quantize",
        "sae",
        "sae_saelens",
        "dashboard",
    ):
        assert (tmp_path / "runs" / folder).is_dir(), folder
