"""Tokenization (loss on output tokens only), samplers, and clear errors on bad input."""

from __future__ import annotations

import json

import pytest

from workbench.config import from_dict
from workbench.data import SemEvalRecord
from workbench.errors import WorkbenchError
from workbench.unlearning import UnlearnConfig, unlearn
from workbench.unlearning.config import DataConfig
from workbench.unlearning.data import Sampler, collate, load_data, tokenize_record


def test_labels_cover_exactly_the_output_tokens():
    from workbench.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    rec = SemEvalRecord("x1qa0", "Question: Where was Mira born?\nAnswer:", " Halden", "Task2", "forget")
    ex = tokenize_record(tok, rec, max_length=64)
    out_ids = tok(" Halden", add_special_tokens=False)["input_ids"]
    labelled = [t for t in ex.labels if t != -100]
    assert labelled == out_ids
    assert list(ex.input_ids[-len(out_ids) :]) == out_ids
    assert ex.input_ids[0] == tok.bos_token_id and ex.forget
    whole = tokenize_record(tok, rec, max_length=64, whole=True)  # data.forget_tokens: all
    assert whole.input_ids == ex.input_ids and whole.labels == (-100, *ex.input_ids[1:])
    short = tokenize_record(tok, rec, max_length=len(out_ids) + 2)  # prompt cut from the left
    assert len(short.input_ids) == len(out_ids) + 2 and [t for t in short.labels if t != -100] == out_ids


def test_collate_pads_right_with_ignored_labels():
    from workbench.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    a = tokenize_record(
        tok, SemEvalRecord("a1sc1", "The quick", " fox jumps", "Task1", "forget"), max_length=64
    )
    b = tokenize_record(tok, SemEvalRecord("b1qa0", "Q", " Paris", "Task2", "retain"), max_length=64)
    batch = collate([a, b], tok.pad_token_id)
    assert batch.is_forget.tolist() == [True, False]
    n_b = len(b.input_ids)
    assert batch.attention_mask[1, n_b:].sum() == 0 and (batch.labels[1, n_b:] == -100).all()


@pytest.mark.parametrize("kind", ["mixed", "paired"])
def test_sampler_is_deterministic_and_ranks_get_disjoint_rows(kind):
    s = Sampler(kind, 10, 14, batch_size=2, seed=3, world=2)
    assert s.epoch(0) == s.epoch(0) and s.epoch(0) != s.epoch(1)
    for batch in s.epoch(0):
        r0, r1 = s.rows(batch, 0), s.rows(batch, 1)
        assert sorted(r0 + r1) == sorted(batch)
        assert not set(r0) & set(r1)
        if kind == "paired":
            assert [side for side, _ in r0] == ["forget", "retain"] * 2
    seen = [x for b in s.epoch(0) for x in b]
    if kind == "mixed":
        assert len(set(seen)) == len(seen) == 24  # every example once (24 = 6 global batches of 4)
    else:
        forget = [i for side, i in seen if side == "forget"]
        assert len(forget) == len(set(forget)) == 8  # 2 global batches of 4 pairs, no forget example twice


def test_validation_files_are_used_and_held_out_otherwise(semeval_dir, tmp_path):
    from semeval_layout import write_semeval

    from workbench.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    data = load_data(tok, DataConfig(path=str(semeval_dir)))
    assert (len(data.forget), len(data.retain), len(data.val_forget), len(data.val_retain)) == (12, 16, 4, 4)
    no_val = write_semeval(tmp_path / "noval", validation=False)
    data = load_data(tok, DataConfig(path=str(no_val), val_fraction=0.25))
    assert (len(data.forget), len(data.val_forget)) == (9, 3)
    assert not {e.id for e in data.forget} & {e.id for e in data.val_forget}


def _cfg(model_dir, data_dir, out, **kw):
    base = {
        "model": str(model_dir),
        "out": str(out),
        "data": {"path": str(data_dir)},
        "select": {"layers": [0]},
        "train": {"max_steps": 2, "batch_size": 2, "progress": False},
    }
    base.update(kw)
    return from_dict(UnlearnConfig, base)


def test_empty_forget_set_is_a_clear_error(tiny_model_dir, semeval_dir, tmp_path):
    (semeval_dir / "forget_train.jsonl").write_text("")
    with pytest.raises(WorkbenchError, match="forget training split is empty"):
        unlearn(_cfg(tiny_model_dir, semeval_dir, tmp_path / "run"))


def test_missing_fields_is_a_clear_error(tiny_model_dir, semeval_dir, tmp_path):
    (semeval_dir / "retain_train.jsonl").write_text(json.dumps({"id": "r1qa0", "input": "Q"}) + "\n")
    with pytest.raises(WorkbenchError, match="missing field"):
        unlearn(_cfg(tiny_model_dir, semeval_dir, tmp_path / "run"))


def test_unknown_method_and_unknown_keys(tiny_model_dir, semeval_dir, tmp_path):
    with pytest.raises(WorkbenchError, match="unknown unlearning method 'forgetful'.*constrained"):
        _cfg(tiny_model_dir, semeval_dir, tmp_path, method="forgetful")
    with pytest.raises(WorkbenchError, match="unknown key"):
        _cfg(tiny_model_dir, semeval_dir, tmp_path, train={"max_stepz": 3})
    cfg = _cfg(tiny_model_dir, semeval_dir, tmp_path, method="npo", params={"betta": 0.1})
    with pytest.raises(WorkbenchError, match="params: unknown key"):
        unlearn(cfg)


def test_layers_out_of_range_is_a_clear_error(tiny_model_dir, semeval_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, semeval_dir, tmp_path / "run", select={"layers": [1, 7]})
    with pytest.raises(WorkbenchError, match=r"select.layers \[7\] out of range; this model has layers 0..2"):
        unlearn(cfg)


def test_epochs_bound_the_run(tiny_model_dir, semeval_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, semeval_dir, tmp_path / "run",
               train={"max_steps": 100, "epochs": 1, "batch_size": 4, "eval_every": 0, "progress": False})  # fmt: skip
    result = unlearn(cfg)
    assert (result.steps, result.stopped) == (7, "epochs")  # 12 forget + 16 retain, 4 per batch


def test_adamw8bit_trains_checkpoints_and_resumes(tiny_model_dir, semeval_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    train = {"max_steps": 2, "batch_size": 4, "optimizer": "adamw8bit", "save_every": 1, "eval_every": 0,
             "progress": False, "lr": 1e-3}  # fmt: skip
    first = unlearn(_cfg(tiny_model_dir, semeval_dir, tmp_path / "run", train=train))
    assert (
        first.steps == 2
        and (tmp_path / "run" / "checkpoints" / "step_0000002" / "optimizer.safetensors").is_file()
    )
    resumed = unlearn(
        _cfg(tiny_model_dir, semeval_dir, tmp_path / "run", train={**train, "max_steps": 3}), resume=True
    )
    assert resumed.steps == 3
