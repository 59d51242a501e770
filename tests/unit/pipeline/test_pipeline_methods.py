"""Per-method choices (which parameters train, derived params, keep-best) come from the objectives, and the
pipeline turns them into the same unlearning configs as before the objectives held them."""

from __future__ import annotations

from pathlib import Path

from workbench.config import to_dict
from workbench.pipeline import resolve_config
from workbench.pipeline.stages.unlearn import method_config
from workbench.unlearning.objectives import OBJECTIVES
from workbench.unlearning.objectives.npo import NPO


def _config(method: str, layers: list[int], overrides: list[str] | None = None) -> dict:
    cfg = resolve_config(None, overrides)
    return to_dict(method_config(cfg, method, layers, "model", "data", Path("out") / method))


def test_objectives_declare_their_choices():
    # no objective keeps its best checkpoint in the pipeline (constrained did before the subword organism)
    assert not any(cls.keep_best for cls in OBJECTIVES.values())
    assert OBJECTIVES["constrained"].default_select([4, 2], "attn") == {"layers": [4, 2], "kind": "attn"}
    assert OBJECTIVES["rmu"].default_select([1, 5], "mlp") == {"layers": [3, 4, 5], "kind": "mlp.down"}
    assert OBJECTIVES["rmu"].default_select([1], "mlp") == {"layers": [0, 1], "kind": "mlp.down"}
    assert OBJECTIVES["rmu"].default_params([1, 5]) == {"layer": 5}
    assert OBJECTIVES["grad_diff"].default_select([1], "mlp") == {"layers": "all", "kind": "*"}
    assert OBJECTIVES["npo"].default_params([3]) == {}


def test_method_configs_match_the_published_rules():
    layers = [2, 4, 5]
    c = _config("constrained", layers)
    assert c["select"]["layers"] == layers and c["select"]["kind"] == "mlp.down"
    assert not c["train"]["keep_best"] and c["params"] == {} and c["data"]["forget_positions"] == "entities"
    r = _config("rmu", layers)
    assert r["select"]["layers"] == [3, 4, 5] and r["select"]["kind"] == "mlp.down"
    assert r["params"] == {"layer": 5} and not r["train"]["keep_best"]
    for name in ("grad_ascent", "grad_diff", "npo", "simnpo"):
        b = _config(name, layers)
        assert b["select"]["layers"] == "all" and b["select"]["kind"] == "*" and not b["train"]["keep_best"]
    # the shared budget and data, whatever the method
    for m in (c, r, b):
        assert (m["train"]["max_steps"], m["train"]["batch_size"], m["train"]["lr"]) == (240, 16, 2e-3)
        assert (m["train"]["warmup_steps"], m["train"]["eval_every"], m["data"]["max_length"]) == (
            10,
            10,
            256,
        )
        assert m["data"]["path"] == "data" and m["data"]["sampler"] == "mixed" and m["dtype"] == "float32"


def test_user_params_win_over_the_objectives_and_keep_best_can_be_switched_off():
    r = _config("rmu", [1, 2], ["unlearn.params={rmu: {layer: 0, alpha: 2.0}}"])
    assert r["params"] == {"layer": 0, "alpha": 2.0}
    c = _config("constrained", [1], ["unlearn.train.keep_best=false"])
    assert not c["train"]["keep_best"]


def test_the_pipeline_asks_the_objective(monkeypatch):
    monkeypatch.setattr(NPO, "keep_best", True)
    monkeypatch.setattr(
        NPO, "default_select", classmethod(lambda cls, layers, kind: {"layers": layers, "kind": "attn"})
    )
    monkeypatch.setattr(NPO, "default_params", classmethod(lambda cls, layers: {"beta": 0.5}))
    n = _config("npo", [3])
    assert n["select"]["layers"] == [3] and n["select"]["kind"] == "attn"
    assert n["params"] == {"beta": 0.5} and n["train"]["keep_best"]
