"""``workbench pipeline``: the flags generated from the config, and refusals that leave no run folder."""

from __future__ import annotations

import pytest

from workbench.cli import build_parser, main
from workbench.config import config_from_args
from workbench.errors import WorkbenchError
from workbench.pipeline import PipelineConfig, run_pipeline
from workbench.pipeline.config import config_mapping


def _cfg(argv: list[str]) -> PipelineConfig:
    args = build_parser("pipeline").parse_args(["pipeline", *argv])
    return config_from_args(
        PipelineConfig, args, base=config_mapping(args.config, args.overrides, args.quick)
    )


def test_generated_flags_set_nested_fields_and_keep_the_pipeline_defaults():
    cfg = _cfg(
        ["--eval.limit", "3", "--unlearn.train.eval-every", "5", "--unlearn.methods", "constrained,npo"]
    )
    assert cfg.eval.limit == 3 and cfg.eval.max_new_tokens == 48
    assert cfg.unlearn.train.eval_every == 5 and cfg.unlearn.train.max_steps == 240
    assert (
        cfg.select.kind == "mlp.down"
        and cfg.unlearn.method_data["constrained"]["forget_positions"] == "entities"
    )
    assert cfg.unlearn.methods == ["constrained", "npo"]


def test_flags_win_over_set_over_quick():
    cfg = _cfg(["--quick", "--set", "unlearn.train.max_steps=7", "--sae.k", "2", "--no-sae.enabled"])
    assert cfg.preset == "tiny" and cfg.unlearn.train.max_steps == 7
    assert cfg.sae.k == 2 and not cfg.sae.enabled
    assert _cfg(["--quick", "--set", "sae.k=3", "--sae.k", "5"]).sae.k == 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "unlearn.steps=3"], "unlearn.steps is now unlearn.train.max_steps"),
        (["--unlearn.methods", "forget_all"], "unknown unlearning method"),
        (["--set", "unlearn.params.edit.lyers=[1]"], "unlearn.params.edit: unknown key(s) lyers"),
        (["--set", "unlearn.params.edit.method=pmet"], "unknown editing method 'pmet'"),
        (["--set", "unlearn.params.edit.target=' '"], "the forget target is empty"),
        (["--model", "m/n", "--data", "/no/such/data"], "data /no/such/data does not exist"),
        (["--facts", "/no/such/facts.jsonl"], "facts file /no/such/facts.jsonl does not exist"),
        (["--model", "./no/such/model", "--data", "."], "neither a folder nor a hub id"),
    ],
)
def test_a_refused_config_leaves_no_run_folder(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["pipeline", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_malformed_yaml_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("unlearn:\n  train: [\n")
    assert main(["pipeline", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "malformed YAML" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_run_pipeline_refuses_a_file_as_run_folder(tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(WorkbenchError, match="is a file"):
        run_pipeline(None, out)


def test_wb_exposes_the_entry_point_and_the_package():
    import workbench as wb

    assert wb.run_pipeline is run_pipeline
    assert wb.pipeline.STAGES[0] == "organism" and wb.pipeline.STAGES[-1] == "report"


def test_method_data_reaches_only_its_method(tmp_path):
    from workbench.pipeline.stages.unlearn import method_config

    cfg = _cfg(["--set", "unlearn.method_data.npo.max_length=64"])
    con = method_config(cfg, "constrained", [0, 1], "m", "d", tmp_path / "c")
    npo = method_config(cfg, "npo", [0, 1], "m", "d", tmp_path / "n")
    ga = method_config(cfg, "grad_ascent", [0, 1], "m", "d", tmp_path / "g")
    assert con.data.forget_positions == "entities" and con.select.kind == "mlp.down"
    assert not con.train.keep_best  # the constrained objective keeps its last weights in the pipeline
    assert npo.data.forget_positions == "all" and npo.data.max_length == 64
    assert ga.data.forget_positions == "all" and ga.data.max_length == cfg.unlearn.data.max_length


def test_edit_is_an_unlearning_method_with_its_own_params():
    from workbench.editing.forget import FORGET_OPTIONS

    cfg = _cfg(["--unlearn.methods", "constrained,edit", "--set", "unlearn.params.edit.layers=[2,3]"])
    assert cfg.unlearn.methods == ["constrained", "edit"] and cfg.unlearn.params["edit"]["layers"] == [2, 3]
    from workbench.config import from_dict
    from workbench.editing.forget import ForgetEdit

    fe = from_dict(ForgetEdit, {"options": {"v_num_grad_steps": 5}})
    assert fe.options == {**FORGET_OPTIONS, "v_num_grad_steps": 5}  # given options join the defaults
