"""The main job end to end on the tiny organism (--quick), its report, re-run skipping and bad configs."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.pipeline import STAGES, resolve_config, run_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, organism_tiny):
    out = tmp_path_factory.mktemp("pipeline")
    assert main(["pipeline", "--quick", "--out", str(out)]) == 0  # the README's command
    results = run_pipeline(None, out, quick=True)  # everything unchanged: all stages skipped
    return out, results


def test_quick_pipeline_writes_every_stage_and_a_report(quick_run):
    out, results = quick_run
    assert list(results) == list(STAGES)
    for name in STAGES:
        assert (out / name / "stage.json").is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    methods = [r["method"] for r in summary["methods"]]
    assert methods[0] == "before" and "constrained" in methods and "edit" in methods
    before = summary["methods"][0]
    assert before["forget QA given"] is not None and before["retain QA unseen"] is not None
    edit = json.loads((out / "unlearn" / "edit" / "model" / "edit.json").read_text())
    assert edit["method"] == "memit" and edit["requests"]
    assert before["forget QA"] is not None and 0 <= before["final"] <= 1
    assert summary["relapse"] and {r["quantization"] for r in summary["relapse"]} == {"bnb-int8", "rtn-4"}
    page = (out / "report.html").read_text()
    for title in (
        "Model organism",
        "causal tracing",
        "Chosen layers",
        "methods × metrics",
        "Relapse",
        "Feature-level view",
        "Stability",
    ):
        assert title in page, title
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page


def test_each_method_trains_what_its_objective_chooses(quick_run):
    import yaml

    out, results = quick_run
    layers = results["select"].summary["layers"]
    cfg = {
        m: yaml.safe_load((out / "unlearn" / m / "config.yaml").read_text())
        for m in ("constrained", "rmu", "npo")
    }
    assert cfg["constrained"]["select"]["layers"] == layers and not cfg["constrained"]["train"]["keep_best"]
    assert cfg["constrained"]["data"]["forget_positions"] == "entities"
    assert cfg["rmu"]["select"]["kind"] == "mlp.down" and cfg["rmu"]["params"]["layer"] == max(layers)
    assert cfg["npo"]["select"] == {**cfg["npo"]["select"], "layers": "all", "kind": "*"}
    assert not cfg["npo"]["train"]["keep_best"] and cfg["npo"]["train"]["max_steps"] == 20


def test_rerun_skips_unchanged_stages_and_reruns_downstream_of_a_change(quick_run):
    out, again = quick_run
    assert all(r.skipped for r in again.values())
    changed = run_pipeline(None, out, quick=True, overrides=["quantize.methods=[rtn-4]"])
    assert not changed["quantize"].skipped and changed["unlearn"].skipped and not changed["report"].skipped


def test_report_renders_in_chromium(quick_run, tmp_path, render_in_chromium):
    out, _ = quick_run
    dom, err, shot = render_in_chromium(out / "report.html", tmp_path)
    n = dom.count("<img ")
    assert n >= 4 and f'data-images-loaded="{n}/{n}"' in dom
    assert "Uncaught" not in err
    assert shot.stat().st_size > 10_000


def test_bad_configs_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("unlearn:\n  train: [\n")
    assert main(["pipeline", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "malformed YAML" in capsys.readouterr().err and not (tmp_path / "o").exists()
    bad.write_text("unlearn:\n  train:\n    stepz: 3\n")
    with pytest.raises(WorkbenchError, match="unknown key.*stepz"):
        resolve_config(bad)
    bad.write_text("unlearn:\n  steps: 3\n")
    with pytest.raises(WorkbenchError, match="unlearn.steps is now unlearn.train.max_steps"):
        resolve_config(bad)
    with pytest.raises(WorkbenchError, match="unknown unlearning method"):
        resolve_config(None, ["unlearn.methods=[forget_everything]"])
    with pytest.raises(WorkbenchError, match="both model: and data:"):
        resolve_config(None, ["model=/some/model"])
    with pytest.raises(WorkbenchError, match="mmlu_formulation 'letters' is unknown"):
        resolve_config(None, ["eval.mmlu_formulation=letters"])
    assert resolve_config(None, ["eval.mmlu_formulation=mcf"]).eval.mmlu_formulation == "mcf"
