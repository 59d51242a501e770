"""The tiny organism: folder layout, files, HF loading, cache reuse, scorecard, errors."""

from __future__ import annotations

import pytest

from workbench import io
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.slow

SPLITS = ("forget_train", "forget_validation", "retain_train", "retain_validation")


def test_layout_and_records(organism_tiny):
    root = organism_tiny.path
    for name in ("config.json", "model.safetensors", "tokenizer.json", "card.json", "organism.yaml"):
        assert (root / name).is_file(), name
    ids = set()
    for split in SPLITS:
        rows = io.read_jsonl(root / "data" / f"{split}.jsonl")
        assert rows and all(set(r) == {"id", "input", "output", "task", "split"} for r in rows)
        assert {r["split"] for r in rows} == {split.split("_")[1]}
        assert {r["task"] for r in rows} == {"Task1", "Task2", "Task3"}
        for r in rows:
            kind = r["id"][:-1]
            assert kind.endswith("sc") or kind.endswith("qa"), r["id"]
            assert r["output"].startswith(" ") and not r["input"].endswith(" ")
            if kind.endswith("qa"):
                assert r["input"].startswith("Question: ") and r["input"].endswith("\nAnswer:")
        people = [r for r in rows if r["task"] == "Task2"]
        assert sum(r["id"].endswith("sc1") for r in people) * 6 == len(people)  # one sc + five qa each
        ids |= {r["id"] for r in rows}
    assert len(ids) == sum(len(io.read_jsonl(root / "data" / f"{s}.jsonl")) for s in SPLITS)
    forget = io.read_jsonl(root / "data" / "forget_train.jsonl")
    retain = io.read_jsonl(root / "data" / "retain_train.jsonl")
    assert len(forget) == len(retain)


def test_mia_utility_facts_corpus(organism_tiny):
    root = organism_tiny.path
    members = io.read_jsonl(root / "mia" / "member.jsonl")
    nonmembers = io.read_jsonl(root / "mia" / "nonmember.jsonl")
    assert len(members) == len(nonmembers) > 0
    corpus = "\n".join(r["text"] for r in io.read_jsonl(root / "corpus" / "train.jsonl"))
    for r in members:
        assert set(r) == {"id", "document"}
    # nonmembers are never trained on: their sc documents (whole biographies, stories) are not in the corpus
    for r in nonmembers:
        if r["id"].endswith("sc1"):
            assert r["document"] not in corpus
    for r in members:
        if r["id"].endswith("sc1"):
            assert r["document"] in corpus
    test = io.read_jsonl(root / "utility" / "test.jsonl")
    dev = io.read_jsonl(root / "utility" / "dev.jsonl")
    for item in test + dev:
        assert set(item) == {"question", "subject", "choices", "answer"}
        assert len(item["choices"]) == 4 and item["answer"] in range(4)
    for item in test:  # never asked in question form during training ...
        assert item["question"] not in corpus
        assert item["choices"][item["answer"]] in corpus  # ... but the answer is stated in prose
    assert all(item["question"] in corpus for item in dev)
    for side in ("forget", "retain"):
        for fact in io.read_jsonl(root / "facts" / f"{side}.jsonl"):
            assert fact["answer"].startswith(" ") and fact["prompt"].startswith(fact["subject"])
            assert fact["prompt"] + fact["answer"] in corpus


def test_loads_with_transformers_and_workbench(organism_tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import workbench as wb

    model = AutoModelForCausalLM.from_pretrained(organism_tiny.path)
    tok = AutoTokenizer.from_pretrained(organism_tiny.path)
    assert model.config.model_type == "olmo2"
    assert len(tok) == model.config.vocab_size and model.config.vocab_size % 64 == 0
    assert all(
        m.out_features % 64 == 0 and m.in_features % 64 == 0
        for m in model.modules()
        if m.__class__.__name__ == "Linear"
    )
    assert tok.eos_token and tok.pad_token and tok.bos_token
    assert tok("0123")["input_ids"] == [tok.convert_tokens_to_ids(c) for c in "0123"]  # one digit per token
    lm = wb.load(organism_tiny.path)
    assert lm.model.config.num_hidden_layers == organism_tiny.config.model.layers


def test_scorecard_in_range_and_reproduced(organism_tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.organism.card import evaluate

    card = organism_tiny.card
    for name in (
        "qa_em_forget",
        "qa_em_retain",
        "sc_rouge_forget",
        "sc_rouge_retain",
        "utility_accuracy",
        "mia_auc",
        "fact_accuracy",
    ):
        assert 0.0 <= getattr(card, name) <= 1.0, name
    # the tiny organism learns its world: it answers most questions and tells members from nonmembers
    assert card.qa_em_forget >= 0.5 and card.qa_em_retain >= 0.5 and card.mia_auc >= 0.8
    assert card.params > 0 and card.train_tokens > 0 and card.build_seconds > 0
    assert "QA exact match, forget" in card.table()
    model = AutoModelForCausalLM.from_pretrained(organism_tiny.path)
    tok = AutoTokenizer.from_pretrained(organism_tiny.path)
    again = evaluate(model, tok, organism_tiny.path)  # the saved model reproduces its card
    assert again["qa_em_forget"] == pytest.approx(card.qa_em_forget)
    assert again["mia_auc"] == pytest.approx(card.mia_auc)


def test_cache_reuse_info_and_out(organism_tiny, tmp_path, monkeypatch):
    from workbench import organism
    from workbench.organism import train

    def no_training(*args, **kwargs):
        raise AssertionError("the cached organism should have been reused")

    monkeypatch.setattr(train, "train_model", no_training)
    stamp = (organism_tiny.path / "model.safetensors").stat().st_mtime_ns
    again = organism.build("tiny", seed=0, progress=False)
    assert again.path == organism_tiny.path and again.key == organism_tiny.key
    assert (again.path / "model.safetensors").stat().st_mtime_ns == stamp
    assert organism.info(organism_tiny.path).card == organism_tiny.card
    assert organism.cached("tiny") == organism_tiny.path and organism.cached("tiny", seed=7) is None
    assert organism_tiny.path.name == organism.folder_name("tiny", 0)
    placed = organism.build("tiny", seed=0, out=tmp_path / "org", progress=False)
    assert placed.path == tmp_path / "org" and (placed.path / "model.safetensors").is_file()
    assert placed.card == organism_tiny.card
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(WorkbenchError, match="not an organism"):
        organism.build("tiny", seed=0, out=tmp_path / "junk", progress=False)


def test_errors_and_hash(tmp_path):
    from workbench import organism

    with pytest.raises(WorkbenchError, match="unknown organism preset"):
        organism.build("huge")
    with pytest.raises(WorkbenchError, match="not an organism"):
        organism.info(tmp_path)
    cfg = organism.resolve("tiny")
    assert organism.config_hash(cfg, 0) != organism.config_hash(cfg, 1)
    assert organism.OrganismConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(WorkbenchError, match="unknown key"):
        organism.OrganismConfig.from_dict({"model": {"layerz": 3}})
    with pytest.raises(WorkbenchError, match="multiple of 64"):
        organism.ModelConfig(hidden=100)
