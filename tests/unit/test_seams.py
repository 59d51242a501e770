"""Public functions answer bad input with one WorkbenchError line, and a refused command leaves no folder."""

from __future__ import annotations

import pytest

import workbench as wb
from workbench.cli import main
from workbench.models import wrap
from workbench.models.tiny import tiny_model

FACT = {"prompt": "Mira was born in", "subject": "Mira"}


@pytest.fixture(scope="module")
def lms():
    lm = tiny_model("olmo2")
    return lm, wrap(lm.model, None)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda lm, bare: wb.patch(bare, "a b c", "a b d", progress=False), "needs a tokenizer"),
        (lambda lm, bare: wb.attribution_patch(bare, "a b c", "a b d"), "needs a tokenizer"),
        (lambda lm, bare: wb.causal_trace(bare, [FACT], progress=False), "needs a tokenizer"),
        (lambda lm, bare: wb.causal_trace(lm, [], progress=False), "no facts to trace"),
        (lambda lm, bare: wb.causal_trace(lm, [FACT], sample=3), "unknown TraceConfig option"),
        (lambda lm, bare: wb.patch(lm, "a b c d e", "a b", progress=False), "equal lengths"),
        (lambda lm, bare: wb.evaluate(lm, "/nonexistent-data"), "does not exist"),
        (lambda lm, bare: wb.quantize(lm, "int3-magic"), "unknown quantization method"),
    ],
)
def test_bad_input_is_one_workbench_error(lms, call, match):
    with pytest.raises(wb.WorkbenchError, match=match) as info:
        call(*lms)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["quantize", "--model", "/nonexistent-model", "--method", "rtn-4"],
        ["trace", "--model", "/nonexistent-model", "--facts", "/nonexistent-facts.jsonl"],
        ["patch", "--model", "/nonexistent-model", "--clean", "a", "--corrupted", "b"],
        ["eval", "--model", "/nonexistent-model", "--data", "/nonexistent-data"],
    ],
)
def test_a_refused_command_leaves_no_run_folder(tmp_path, capsys, argv):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
