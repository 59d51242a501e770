"""The report, one function per section, from stage summaries (no model is run)."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.pipeline import PipelineConfig
from workbench.pipeline.report import SECTIONS, write_report
from workbench.pipeline.runner import StageResult
from workbench.reporting.plots import save_figure, subplots

METRICS = {
    "semeval": {"forget/overall/knowledge": 0.9, "retain/overall/knowledge": 0.8, "task_aggregate": 0.3},
    "mmlu": {"acc": 0.5},
    "mia": {"score": 0.7},
    "final": 0.5,
    "stability": {"max_attn_logit": 4.0, "mean_log_z": 1.0},
}


def _results(tmp: Path, *, card: bool = True, sae: bool = True, stability: bool = True) -> dict:
    fig, ax = subplots()
    ax[0][0].plot([0, 1], [1, 0])
    save_figure(fig, tmp / "trace" / "aie.png")
    metrics = dict(METRICS) if stability else {k: v for k, v in METRICS.items() if k != "stability"}
    summaries = {
        "organism": {
            "model": "m",
            "data": "d",
            "source": "organism:tiny",
            "card": {"qa_em_forget": 1.0} if card else None,
        },
        "baseline": metrics,
        "trace": {"traced": 3, "skipped": 1, "peak_layer": {"mlp": 1}},
        "select": {"layers": [1], "reason": "top", "kind": "mlp", "mlp_effect": [0.1, 0.3]},
        "unlearn": {"runs": {"npo": {"trainable": 10, "wall_s": 1.5, "curves": str(tmp / "no.png")}}},
        "evaluate": {"npo": metrics},
        "quantize": {"rows": [{"unlearning": "npo", "quantization": "rtn-4", "forget_qa_rise_points": 2.0}]},
        "sae": (
            {
                "site": "layers.1",
                "d_sae": 8,
                "k": 2,
                "tokens": 100,
                "fvu": 0.1,
                "l0": 2.0,
                "dead_fraction": 0.0,
                "rows": [{"method": "npo", "forget_features_kept": 0.4}],
                "figure": str(tmp / "f.png"),
            }
            if sae
            else {"skipped": True}
        ),
    }
    return {n: StageResult(n, tmp / n, "h", s, 1.0, False) for n, s in summaries.items()}


def test_every_section_and_summary_key(tmp_path):
    assert [f.__name__ for f in SECTIONS] == [
        f"{n}_section" for n in ("organism", "trace", "select", "unlearn", "relapse", "sae", "stability")
    ]
    write_report(PipelineConfig(), _results(tmp_path), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["model", "data", "source", "card", "methods", "relapse", "sae", "seconds"]
    assert [r["method"] for r in summary["methods"]] == ["before", "npo"]
    assert summary["methods"][1]["forget QA"] == 0.9 and summary["relapse"][0]["relapse (points)"] == 2.0
    page = (tmp_path / "report.html").read_text()
    for anchor in ("organism", "trace", "select", "unlearn", "relapse", "sae", "stability"):
        assert f"id='{anchor}'" in page, anchor
    assert "data:image/png;base64," in page


def test_sections_without_content_are_left_out(tmp_path):
    write_report(PipelineConfig(), _results(tmp_path, card=False, sae=False, stability=False), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "card" not in summary and "sae" not in summary
    page = (tmp_path / "report.html").read_text()
    assert "id='organism'" not in page and "id='sae'" not in page and "id='stability'" not in page
    assert "id='relapse'" in page
