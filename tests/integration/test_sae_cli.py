"""``workbench sae collect|train|eval|export|dashboard`` end to end on the tiny organism."""

from __future__ import annotations

import json

import pytest
import torch

from workbench.cli import main


def test_sae_cli_end_to_end(tmp_path, organism_tiny, capsys):
    org = str(organism_tiny.path)
    store, run = tmp_path / "store", tmp_path / "run"
    assert (
        main(
            [
                "sae",
                "collect",
                "--model",
                org,
                "--site",
                "layers.0",
                "--source",
                org,
                "--out",
                str(store),
                "--max-tokens",
                "4096",
                "--shard-tokens",
                "1500",
            ]
        )
        == 0
    )
    assert "tokens 4096" in capsys.readouterr().out
    assert (
        main(
            [
                "sae",
                "train",
                "--store",
                str(store),
                "--out",
                str(run),
                "--sae.arch",
                "mutual_choice",
                "--sae.d-sae",
                "256",
                "--sae.k",
                "8",
                "--train.steps",
                "30",
                "--train.batch-size",
                "256",
                "--set",
                "train.log_every=10",
                "--set",
                "sae.aux=aux_zipf",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "batchtopk" in out and "fvu" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["reconstruction"]["fvu"] < 1.5 and (run / "config.yaml").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    # strict config: a typo is a one-line user error (exit 2)
    assert (
        main(["sae", "train", "--store", str(store), "--out", str(tmp_path / "bad"), "--set", "sae.kk=3"])
        == 2
    )
    assert "unknown key" in capsys.readouterr().err
    ev = tmp_path / "eval"
    assert (
        main(
            [
                "sae",
                "eval",
                "--sae",
                str(run),
                "--store",
                str(store),
                "--model",
                org,
                "--source",
                org,
                "--n-texts",
                "8",
                "--out",
                str(ev),
            ]
        )
        == 0
    )
    res = json.loads((ev / "metrics.json").read_text())
    assert res["splice"]["ce_zero"] > res["splice"]["ce_clean"] and (ev / "density.png").is_file()
    assert "ce_recovered" in capsys.readouterr().out
    exp = tmp_path / "saelens"
    assert main(["sae", "export", "--sae", str(run), "--out", str(exp)]) == 0
    from sae_lens import SAE

    from workbench import sae

    theirs, ours = SAE.load_from_disk(exp), sae.load(run)
    x = torch.randn(5, ours.cfg.d_in)
    assert torch.allclose(theirs.encode(x), ours.encode(x), atol=1e-5)
    dash = tmp_path / "dash"
    assert (
        main(
            [
                "sae",
                "dashboard",
                "--sae",
                str(run),
                "--model",
                org,
                "--source",
                org,
                "--out",
                str(dash),
                "--n-texts",
                "16",
                "--n-features",
                "4",
            ]
        )
        == 0
    )
    assert (dash / "dashboard.html").read_text().count("class=feat") == 4


def test_sae_cli_missing_store_is_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sae", "train"])
    assert main(["sae", "train", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "no store.json" in capsys.readouterr().err
