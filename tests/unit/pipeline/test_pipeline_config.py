"""The pipeline config embeds the modules' own configs, re-declares none of their defaults, and refuses
bad values with one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workbench.config import to_dict
from workbench.errors import WorkbenchError
from workbench.evaluation.config import EvalConfig
from workbench.pipeline import PipelineConfig, resolve_config
from workbench.pipeline.config import QUICK, RENAMED
from workbench.tracing import TraceConfig
from workbench.unlearning.config import DataConfig, SelectConfig, TrainConfig

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "pipeline"


def _changed_defaults(section: object, module_cls: type) -> dict:
    """The fields of ``section`` whose value differs from ``module_cls``'s own default."""
    base = module_cls()
    return {
        f.name: getattr(section, f.name)
        for f in dataclasses.fields(module_cls)
        if getattr(section, f.name) != getattr(base, f.name)
    }


def test_sections_are_the_module_configs():
    cfg = PipelineConfig()
    assert isinstance(cfg.eval, EvalConfig)
    assert isinstance(cfg.trace, TraceConfig)
    assert isinstance(cfg.select, SelectConfig)
    assert isinstance(cfg.unlearn.train, TrainConfig)
    assert isinstance(cfg.unlearn.data, DataConfig)


def test_only_the_pipeline_budget_differs_from_the_module_defaults():
    cfg = PipelineConfig()
    assert _changed_defaults(cfg.eval, EvalConfig) == {"max_new_tokens": 48}
    assert _changed_defaults(cfg.trace, TraceConfig) == {}
    assert _changed_defaults(cfg.select, SelectConfig) == {"kind": "mlp.down"}
    assert _changed_defaults(cfg.unlearn.data, DataConfig) == {}
    assert _changed_defaults(cfg.unlearn.train, TrainConfig) == {
        "max_steps": 240,
        "batch_size": 16,
        "lr": 2e-3,
        "warmup_steps": 10,
    }


def test_a_partial_section_keeps_the_pipeline_defaults():
    cfg = resolve_config(None, ["eval.limit=3", "unlearn.train.eval_every=5"])
    assert cfg.eval.limit == 3 and cfg.eval.max_new_tokens == 48
    assert cfg.unlearn.train.eval_every == 5 and cfg.unlearn.train.max_steps == 240


def test_quick_and_the_shipped_configs_resolve():
    quick = resolve_config(None, quick=True)
    assert quick.preset == "tiny" and quick.unlearn.train.max_steps == 20 and quick.select.top_n == 1
    assert quick.unlearn.data.max_length == 128 and quick.unlearn.train.lr == 2e-3
    assert len(QUICK) == len({o.split("=")[0] for o in QUICK})
    assert to_dict(resolve_config(CONFIGS / "default.yaml")) == to_dict(PipelineConfig())
    olmo = resolve_config(CONFIGS / "olmo1b_semeval.yaml")
    assert olmo.select.layers == [0, 1, 2, 3, 4, 5] and olmo.unlearn.train.lr == 1.5e-5
    assert olmo.eval.max_new_tokens == 256 and olmo.unlearn.train.max_steps == 300


def test_the_seed_reaches_every_section_that_keeps_its_default():
    cfg = resolve_config(None, ["seed=3", "trace.seed=5"])
    assert (cfg.eval.seed, cfg.trace.seed, cfg.unlearn.train.seed) == (3, 5, 3)
    assert PipelineConfig().eval.seed == EvalConfig().seed
    base = PipelineConfig()
    moved = dataclasses.replace(base, seed=4)
    assert moved.unlearn.train.seed == 4 and base.unlearn.train.seed == 0  # the original is untouched


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_renamed_keys_name_their_new_place(old):
    with pytest.raises(WorkbenchError, match=f"{old} is now"):
        resolve_config(None, [f"{old}=3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("unlearn.methods=[forget_everything]", "unknown unlearning method"),
        ("unlearn.methods=[]", "unlearn.methods is empty"),
        ("unlearn.params={npo: {betta: 1}}", r"unlearn.params.npo: unknown key\(s\) betta"),
        ("unlearn.params={nope: {}}", "unknown unlearning method"),
        ("unlearn.data.path=/x", "unlearn.data.path comes from the data"),
        ("quantize.methods=[int3]", "quantize.methods: unknown quantization method 'int3'"),
        ("select.trace=/runs/t", "select.trace is the pipeline's own trace"),
        ("select.layers=[]", "select.layers is empty"),
        ("select.top_n=0", "select.top_n"),
        ("trace.max_facts=0", "trace.max_facts=0 must be at least 1"),
        ("trace.kinds=[hidden]", "trace.kinds must include mlp"),
        ("sae.steps=0", "sae.steps must be at least 1"),
        ("eval.mmlu_formulation=letters", "mmlu_formulation 'letters' is unknown"),
        ("model=/some/model", "both model: and data:"),
        ("unlearn.stepz=3", r"unknown key\(s\) stepz"),
    ],
)
def test_bad_values_are_one_line_errors(override, message):
    with pytest.raises(WorkbenchError, match=message) as e:
        resolve_config(None, [override])
    assert "\n" not in str(e.value)


def test_a_yaml_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("unlearn:\n  train:\n    max_stepz: 3\n")
    with pytest.raises(WorkbenchError, match=f"{bad}: .*max_stepz"):
        resolve_config(bad)


def test_overrides_apply_on_top_of_a_config_object():
    cfg = resolve_config(PipelineConfig(preset="tiny"), ["unlearn.methods=[npo]"], quick=False)
    assert cfg.preset == "tiny" and cfg.unlearn.methods == ["npo"]
    plain = PipelineConfig()
    assert resolve_config(plain) is plain
