"""``workbench edit``: the run folder from the command line, and one-line refusals that leave no folder."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main


@pytest.fixture
def model_dir(lm3, request_dict, other_dict, tmp_path):
    """The tiny model saved as a folder with an edits/requests.jsonl of two requests."""
    folder = tmp_path / "model"
    lm3.model.save_pretrained(folder, safe_serialization=True)
    lm3.tokenizer.save_pretrained(folder)
    (folder / "edits").mkdir()
    rows = [dict(request_dict, side="retain"), dict(other_dict, side="forget")]
    (folder / "edits" / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


FAST_FLAGS = [
    "--v-num-grad-steps",
    "8",
    "--context-lengths",
    "4",
    "--context-counts",
    "2",
    "--mom2-n-samples",
    "400",
]


def test_edit_command_writes_the_run_folder(model_dir, source, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["edit", "--model", str(model_dir), "--method", "rome", "--layers", "1", "--side", "retain"]
    rc = main([*argv, "--stats-source", str(source), "--no-save-model", "--out", str(out), *FAST_FLAGS])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["edit"]["layers"] == [1] and metrics["edit"]["requests"] == 1
    assert "efficacy_score" in metrics["before"] and "efficacy_score" in metrics["after"]
    assert (out / "before_after.png").is_file() and (out / "config.yaml").is_file()
    assert "efficacy_score" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "1", "--trace", "somewhere"], "not both"),
        (["--layers", "7"], "out of range"),
        (["--layers", "1", "--l2", "3"], "rome does not take --l2"),
        (["--layers", "1", "--side", "nobody"], "side='nobody'"),
        (["--layers", "1", "--method", "pmet"], "use one of"),
    ],
)
def test_edit_command_refuses_in_one_line_and_leaves_no_folder(model_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    argv = ["edit", "--model", str(model_dir), "--method", "rome", "--out", str(out)]
    if "--method" in extra:
        argv = argv[: argv.index("--method")] + argv[argv.index("--method") + 2 :]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # (loading a model prints its progress bar first)
    assert message in last and last.startswith("error: "), err
    assert not out.exists()
