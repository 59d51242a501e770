"""The CLI on the example configs, and a NaN loss stopping the run with a one-line error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_layout():
    spec = importlib.util.spec_from_file_location(
        "semeval_layout", REPO / "tests/unit/unlearning/semeval_layout.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_semeval = _load_layout().write_semeval
CONFIGS = sorted((REPO / "configs" / "unlearn").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_example_config_is_valid(path):
    from workbench.config import load_config
    from workbench.unlearning import UnlearnConfig

    cfg = load_config(UnlearnConfig, path)
    cfg.objective_params()  # the method's params are strict too
    assert cfg.method in path.stem


def _tiny(tmp_path: Path, family: str) -> Path:
    from workbench.models.tiny import tiny_model

    lm = tiny_model(family, layers=2, seed=0)
    lm.model.save_pretrained(tmp_path / family)
    lm.tokenizer.save_pretrained(tmp_path / family)
    return tmp_path / family


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from workbench.cli import main

    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_runs_an_example_config_with_overrides(tmp_path, capsys):
    model, data = _tiny(tmp_path, "olmo2"), write_semeval(tmp_path / "data")
    cmd = ["unlearn", "--config", str(REPO / "configs/unlearn/rmu.yaml"),
           f"model={model}", f"data.path={data}", "select.layers=[0, 1]", "params.layer=null",
           "train.max_steps=3", "train.batch_size=2", "train.progress=false", "--out", str(tmp_path / "run")]  # fmt: skip
    rc, out, err = _cli(cmd, capsys)
    assert rc == 0, err[-2000:]
    assert "rmu: 3 steps" in out and "trained layers [0, 1]" in out
    for name in (
        "model/model.safetensors",
        "model/tokenizer.json",
        "metrics.json",
        "curves.png",
        "config.yaml",
    ):
        assert (tmp_path / "run" / name).is_file(), name


def test_nan_loss_stops_with_one_line_error_and_keeps_last_good_checkpoint(tmp_path, capsys):
    model, data = _tiny(tmp_path, "gpt2"), write_semeval(tmp_path / "data")
    out = tmp_path / "run"
    cmd = ["unlearn", "--config", str(REPO / "configs/unlearn/grad_ascent.yaml"),
           f"model={model}", f"data.path={data}", "train.lr=1.0e6", "train.max_grad_norm=null", "train.warmup_steps=0",
           "train.save_every=1", "train.batch_size=4", "train.progress=false", f"out={out}"]  # fmt: skip
    rc, _, err = _cli(cmd, capsys)
    assert rc == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite loss" in errors[0] and "last good checkpoint" in errors[0]
    assert not (out / "model").exists()
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest.startswith("step_") and (out / "checkpoints" / latest / "tensors.safetensors").is_file()
    assert latest in errors[0]


def test_every_registered_method_has_an_example_config_and_cli_help():
    from workbench.cli import build_parser
    from workbench.unlearning import OBJECTIVES

    stems = {p.stem for p in CONFIGS}
    help_text = build_parser()._subparsers._group_actions[0].choices["unlearn"].description
    for name in OBJECTIVES:
        assert name in stems, f"configs/unlearn/{name}.yaml is missing"
        assert name in help_text, f"the unlearn command's description does not mention {name}"
