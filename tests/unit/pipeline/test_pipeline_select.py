"""The select stage picks layers from the pipeline's trace by the unlearning selection rule."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.errors import WorkbenchError
from workbench.pipeline import resolve_config
from workbench.pipeline.context import Context
from workbench.pipeline.runner import StageResult
from workbench.pipeline.stages import select

FACTS = [
    {"prompt": "Mira Okafor was born in the city of", "subject": "Mira Okafor"},
    {"prompt": "The Eiffel Tower is located in the city of", "subject": "Eiffel Tower"},
]


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    """A saved trace of a 6-layer tiny OLMo-2 (random weights, every fact kept)."""
    from workbench.models.tiny import tiny_model
    from workbench.tracing import causal_trace

    lm = tiny_model("olmo2", layers=6, seed=0)
    result = causal_trace(lm, FACTS, kinds=["mlp"], samples=2, window=1, keep_unknown=True, progress=False)
    folder = tmp_path_factory.mktemp("trace")
    result.save(folder)
    return result, folder


def _select(trace, tmp_path, overrides: list[str]) -> dict:
    result, folder = trace
    res = {"trace": StageResult("trace", folder, "h", {}, 0.0, False)}
    (tmp_path / "select").mkdir(parents=True)
    return select.run(Context(resolve_config(None, overrides), tmp_path), tmp_path / "select", res)


def test_top_n_peak_block_and_explicit_layers(trace, tmp_path):
    result, _ = trace
    top = _select(trace, tmp_path / "a", ["select.top_n=2"])
    assert top["layers"] == sorted(result.top_layers("mlp", 2)) and "2 layers" in top["reason"]
    peak = _select(trace, tmp_path / "b", ["select.peak_width=3"])
    assert peak["layers"] == sorted(result.peak_block("mlp", 3)) and "block of 3" in peak["reason"]
    given = _select(trace, tmp_path / "c", ["select.layers=[4, 1]", "select.kind=attn"])
    assert given["layers"] == [1, 4] and given["kind"] == "attn" and "explicitly" in given["reason"]
    everything = _select(trace, tmp_path / "d", ["select.layers=all"])
    assert everything["layers"] == list(range(6))
    assert top["mlp_effect"] == pytest.approx([float(x) for x in result.layer_effect("mlp")])
    assert (tmp_path / "a" / "select" / "selection.json").is_file()


def test_layers_out_of_range_are_refused(trace, tmp_path):
    with pytest.raises(WorkbenchError, match=r"select.layers \[9\] out of range"):
        _select(trace, tmp_path, ["select.layers=[9]"])
    assert dataclasses.is_dataclass(resolve_config(None).select)
