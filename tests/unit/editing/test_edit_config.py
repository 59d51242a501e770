"""Editor configs: the published hyperparameters are the defaults, every field is documented, validation."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.config import add_config_arguments, config_from_args, field_docs
from workbench.editing import EDITORS, AlphaEditConfig, MEMITConfig, ROMEConfig, editor_config
from workbench.errors import WorkbenchError


def test_rome_defaults_are_the_published_hyperparameters():
    # kmeng01/rome hparams/ROME/gpt2-xl.json @ 0874014cd9837e4365f3e6f3c71400ef11509e04:
    # v_num_grad_steps 20, v_lr 5e-1, v_weight_decay 0.5, clamp_norm_factor 4, kl_factor 0.0625,
    # mom2_adjustment true, context_template_length_params [[5, 10], [10, 10]] (from "<|endoftext|>");
    # the KL prompt "{} is a" and the 5e-2 early stop are in rome/compute_v.py, top-k 5 in util/generate.py.
    c = ROMEConfig()
    assert (c.v_num_grad_steps, c.v_lr, c.v_weight_decay, c.clamp_norm_factor) == (20, 0.5, 0.5, 4.0)
    assert (c.kl_factor, c.mom2_adjustment, c.kl_prompt, c.early_stop_loss) == (0.0625, True, "{} is a", 5e-2)
    assert c.context_lengths == (5, 10) and c.context_counts == (10, 10) and c.context_starters == ("",)
    assert c.context_top_k == 5


def test_memit_and_alphaedit_defaults():
    # kmeng01/memit hparams/MEMIT/EleutherAI_gpt-j-6B.json @ 80426fd9316cf9a50c5ba15e0912f2c2c5bfe84b
    m = MEMITConfig()
    assert (m.v_num_grad_steps, m.v_lr, m.clamp_norm_factor, m.mom2_update_weight) == (25, 0.5, 0.75, 15000.0)
    assert (
        m.context_lengths == (10,)
        and m.context_counts == (5,)
        and m.context_starters
        == (
            "The",
            "Therefore",
            "Because",
            "I",
            "You",
        )
    )
    # jianghoucheng/AlphaEdit hparams/AlphaEdit/EleutherAI_gpt-j-6B.json @ f5248d3d25f1b3863bff19c387293d635866079f
    a = AlphaEditConfig()
    assert (a.v_num_grad_steps, a.clamp_norm_factor, a.nullspace_threshold, a.l2) == (25, 0.75, 2e-2, 10.0)


@pytest.mark.parametrize("method", sorted(EDITORS))
def test_every_field_has_a_docstring(method):
    cls = EDITORS[method].config_cls
    docs = field_docs(cls)
    assert {f.name for f in dataclasses.fields(cls)} <= set(docs)
    assert all(docs.values())


def test_validation_and_unknown_keys():
    with pytest.raises(WorkbenchError, match="rome.v_num_grad_steps=0 must be > 0"):
        ROMEConfig(v_num_grad_steps=0)
    with pytest.raises(WorkbenchError, match="kl_prompt"):
        MEMITConfig(kl_prompt="is a")
    with pytest.raises(WorkbenchError, match="one count per length"):
        ROMEConfig(context_lengths=(5,))
    with pytest.raises(WorkbenchError, match=r"unknown memit setting\(s\) \['lamda'\]"):
        editor_config("memit", lamda=3)
    assert editor_config("rome", {"v_lr": 0.1}, seed=3).seed == 3
    assert editor_config("memit", context_lengths=[3], context_counts=[2]).context_counts == (2,)


@pytest.mark.parametrize("method", sorted(EDITORS))
def test_cli_flags_from_the_config(method):
    import argparse

    cls = EDITORS[method].config_cls
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    args = parser.parse_args(["--v-lr", "0.1", "--context-lengths", "3", "4", "--context-counts", "1", "2"])
    cfg = config_from_args(cls, args)
    assert (cfg.v_lr, cfg.context_lengths, cfg.context_counts) == (0.1, (3, 4), (1, 2))
