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


def _block(after: str, lang: str, n: int = 1) -> str:
    """The first ``n`` ``lang`` code blocks after the heading ``after``, joined."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(after) :]
    return "\n".join(re.findall(rf"```{lang}\n(.*?)```", section, re.S)[:n])


def test_readme_python_example_runs(organism_tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _block(
        "## Python", "python", n=2
    )  # the workflow and the editing example (the hooks one is a sketch)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    report = namespace["report"]
    assert report.semeval is not None and report.mia is not None and report.mmlu is not None
    assert (tmp_path / "runs" / "py" / "model" / "config.json").is_file()
    edit = namespace["edit"]
    assert edit.layers == [0, 1] and all(float(d.abs().max()) > 0 for d in edit.deltas.values())


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
        "edit/model",
        "quantize",
        "sae",
        "sae_saelens",
        "dashboard",
    ):
        assert (tmp_path / "runs" / folder).is_dir(), folder
