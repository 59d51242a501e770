"""MEMIT and AlphaEdit: only the listed layers change, revert is bit-exact, the null-space projection holds,
layers from a trace, and the saved model."""

from __future__ import annotations

import json

import pytest
import torch

import workbench as wb
from workbench.editing import edit, second_moments
from workbench.editing.alphaedit import AlphaEditState


def _state(lm):
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


def test_memit_changes_only_the_listed_layers_and_reverts_bit_for_bit(
    lm3, request_dict, other_dict, source, fast
):
    before = _state(lm3)
    res = edit(
        lm3,
        [request_dict, other_dict],
        method="memit",
        layers=[0, 1],
        stats_source=source,
        progress=False,
        **fast,
    )
    after = _state(lm3)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"}
    assert set(res.deltas) == {0, 1} and all(d.abs().max() > 0 for d in res.deltas.values())
    torch.testing.assert_close(
        res.deltas[1],
        after["model.layers.1.mlp.down_proj.weight"] - before["model.layers.1.mlp.down_proj.weight"],
    )
    res.revert()
    assert all(torch.equal(before[k], v) for k, v in _state(lm3).items())


def test_alphaedit_update_is_orthogonal_to_preserved_keys(request_dict, other_dict, source, fast):
    from workbench.models.tiny import tiny_model

    lm3 = tiny_model("olmo2", layers=3, seed=0, dtype=torch.float64)  # W + ΔW without float32 rounding
    cfg = dict(fast, nullspace_threshold=0.05, nullspace_relative=True)
    res = edit(
        lm3, [request_dict], method="alphaedit", layers=[0, 1], stats_source=source, progress=False, **cfg
    )
    C = second_moments(lm3, [0, 1], source, n_samples=fast["mom2_n_samples"], progress=False)
    for layer in (0, 1):
        vals, vecs = torch.linalg.eigh(C[layer])
        preserved = vecs[:, vals >= 0.05 * vals.max()]  # the keys' principal directions
        dW = res.deltas[layer].double()
        assert preserved.shape[1] > 0 and dW.norm() > 0
        assert float((dW @ preserved).norm() / (dW.norm() * preserved.norm())) < 1e-6
    state = res.state
    assert isinstance(state, AlphaEditState) and state.edits == 1
    # sequential: the next call takes the state and adds its keys to the cache
    cache0 = state.cache[1].clone()
    res2 = edit(
        lm3,
        [other_dict],
        method="alphaedit",
        layers=[0, 1],
        stats_source=source,
        progress=False,
        state=state,
        **cfg,
    )
    assert res2.state.edits == 2 and float((res2.state.cache[1] - cache0).norm()) > 0


def test_layers_from_a_trace(lm3, request_dict, source, fast):
    from workbench.tracing import FactTrace, TraceResult

    grid = torch.zeros(4, 3)
    grid[2] = torch.tensor([0.1, 0.9, 0.5])  # last subject token (span 1..3): layer 1 strongest, then 2
    fact = FactTrace(
        "p", "s", None, 0, "x", ["a", "b", "c", "d"], [1, 2, 3, 4], (1, 3), 1.0, 0.0, True, {"mlp": grid}
    )
    trace = TraceResult([fact], ("mlp",), 3, 1, 3.0, 0.1, 1, 0)
    res = edit(lm3, [request_dict], method="rome", trace=trace, stats_source=source, progress=False, **fast)
    assert res.layers == [1]
    res.revert()
    res = edit(
        lm3,
        [request_dict],
        method="memit",
        trace=trace,
        stats_source=source,
        progress=False,
        trace_width=2,
        **fast,
    )
    assert res.layers == [1, 2]


def test_save_writes_a_loadable_edited_model(lm3, request_dict, source, tmp_path, fast):
    res = edit(lm3, [request_dict], method="rome", layers=[1], stats_source=source, progress=False, **fast)
    folder = res.save(tmp_path / "edited")
    meta = json.loads((folder / "edit.json").read_text())
    assert (
        meta["method"] == "rome" and meta["layers"] == [1] and meta["requests"][0]["target_new"] == " Paris"
    )
    back = wb.load(folder)
    name = res.weights[1]
    assert torch.equal(back.model.get_parameter(name), lm3.model.get_parameter(name))
    res.revert()
    with pytest.raises(wb.WorkbenchError, match="reverted"):
        res.save(tmp_path / "again")


def test_requests_about_one_subject_share_one_key(lm3, request_dict, other_dict, source, fast):
    from workbench.editing.requests import load_requests
    from workbench.editing.targets import subject_units

    second = dict(request_dict, prompt="Mira Okafor works as a", target_new="painter", target_true="nurse")
    reqs = load_requests([request_dict, other_dict, second])
    assert subject_units(reqs, "subject_last") == [[0, 2], [1]]
    assert subject_units(reqs, "last") == [[0], [1], [2]]
    res = edit(lm3, reqs, method="memit", layers=[1], stats_source=source, progress=False, **fast)
    assert res.keys[1].shape[0] == 2 and len(res.target_prob) == 3
    assert res.target_prob[0] == res.target_prob[2]
