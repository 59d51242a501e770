"""The pipeline's stage runner (skip when unchanged, named failures that keep earlier output) and the HTML builder."""

from __future__ import annotations

import pytest

from workbench.errors import WorkbenchError
from workbench.pipeline.runner import Stage, run_stages, stable_hash
from workbench.reporting import Figure, Report, Section, Table
from workbench.reporting.plots import save_figure, subplots


def test_stages_skip_when_unchanged_and_rerun_downstream(tmp_path):
    calls = []

    def a(folder, res):
        calls.append("a")
        (folder / "a.txt").write_text("A")
        return {"x": 1}

    def b(folder, res):
        calls.append("b")
        return {"from_a": res["a"].summary["x"] + 1}

    stages = [Stage("a", a, inputs={"k": 1}), Stage("b", b, inputs={}, after=("a",))]
    r = run_stages(stages, tmp_path)
    assert r["b"].summary == {"from_a": 2} and calls == ["a", "b"]
    r = run_stages(stages, tmp_path)
    assert calls == ["a", "b"] and r["a"].skipped and r["b"].skipped
    stages[0].inputs = {"k": 2}
    run_stages(stages, tmp_path)
    assert calls == ["a", "b", "a", "b"]


def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_failing_stage_is_named_and_earlier_output_kept(tmp_path):
    def ok(folder, res):
        (folder / "kept.txt").write_text("x")
        return {}

    def bad(folder, res):
        raise ValueError("loss is nan")

    with pytest.raises(WorkbenchError, match="stage 'bad' failed with ValueError: loss is nan"):
        run_stages([Stage("ok", ok), Stage("bad", bad)], tmp_path)
    assert (tmp_path / "ok" / "kept.txt").is_file() and not (tmp_path / "bad" / "stage.json").exists()


def test_report_embeds_figures_and_formats_tables(tmp_path):
    fig, ax = subplots()
    ax[0][0].plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "p.png")
    rep = Report(
        "T",
        "lead",
        [
            Section(
                "S",
                [
                    "text <b>",
                    Table([{"m": "x", "v": 0.12345, "n": 1200}]),
                    Figure(tmp_path / "p.png", "cap"),
                    Figure(tmp_path / "none.png"),
                ],
            )
        ],
    )
    page = rep.render()
    assert "data:image/png;base64," in page and "0.123" in page and "1,200" in page
    assert "text &lt;b&gt;" in page and "was not produced" in page and "http" not in page


def test_report_renders_in_headless_chromium(tmp_path, render_in_chromium):
    fig, ax = subplots()
    ax[0][0].imshow([[0, 1], [1, 0]])
    save_figure(fig, tmp_path / "p.png")
    Report("T", "lead", [Section("S", [Table([{"a": 1.0}]), Figure(tmp_path / "p.png", "c")])]).write(
        tmp_path / "r.html"
    )
    dom, err, shot = render_in_chromium(tmp_path / "r.html", tmp_path)
    assert 'data-images-loaded="1/1"' in dom
    assert "Uncaught" not in err and ":CONSOLE" not in err.replace("INFO:CONSOLE", "")
    assert shot.is_file() and shot.stat().st_size > 1000
