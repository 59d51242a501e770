"""Activation collection through the hook engine and the shuffling store."""

from __future__ import annotations

import torch

from workbench.hooks import run_with_cache
from workbench.sae.activations import ActivationStore, CollectConfig, collect, iter_texts

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris London Berlin Rome",
    "Alan Turing worked in the field of computing.",
    "Mira Okafor was born in Halden.",
    "Question: What is the capital of Norland?",
    "0123456789 The Eiffel Tower",
] * 3


def test_collect_skips_bos_and_padding_and_matches_capture(tmp_path, tiny_olmo2):
    lm = tiny_olmo2
    src = tmp_path / "docs.txt"
    src.write_text("\n".join(TEXTS))
    store = collect(
        lm,
        src,
        tmp_path / "store",
        CollectConfig(site="layers.1.mlp", max_tokens=10_000, batch_size=4, shard_tokens=50),
        progress=False,
    )
    enc = lm.tokenize(TEXTS)
    real = enc["attention_mask"].bool() & (enc["input_ids"] != lm.tokenizer.bos_token_id)
    assert store.n_tokens == int(real.sum()) and len(store.meta["shards"]) > 2
    shards = [store.shard(i) for i in range(len(store.meta["shards"]))]
    acts = torch.cat([s["acts"] for s in shards])
    toks = torch.cat([s["tokens"] for s in shards])
    assert not bool((toks == lm.tokenizer.bos_token_id).any()) and not bool(
        (toks == lm.tokenizer.pad_token_id).any()
    )
    # same values as a direct capture of the first document
    _, cache = run_with_cache(lm, lm.tokenize(TEXTS[0]), ["layers.1.mlp"])
    first = cache["layers.1.mlp"][0, 1:]
    assert torch.allclose(acts[: len(first)], first, atol=1e-5)
    # reusable: a second collect with the same settings returns the store without recollecting
    mtime = (tmp_path / "store" / "store.json").stat().st_mtime_ns
    again = collect(
        lm, src, tmp_path / "store", CollectConfig(site="layers.1.mlp", max_tokens=10_000), progress=False
    )
    assert (
        tmp_path / "store" / "store.json"
    ).stat().st_mtime_ns == mtime and again.n_tokens == store.n_tokens


def test_store_batches_shuffle_cover_and_bound_memory(tmp_path, tiny_olmo2):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(f'{{"text": "{t}"}}\n' for t in TEXTS))
    store = collect(
        tiny_olmo2,
        src,
        tmp_path / "s",
        CollectConfig(site="layers.0", max_tokens=150, shard_tokens=40, dtype="bfloat16"),
        progress=False,
    )
    assert store.n_tokens == 150 and store.meta["dtype"] == "bfloat16"
    everything = torch.cat([store.shard(i)["acts"] for i in range(len(store.meta["shards"]))]).float()
    one_pass = list(store.batches(16, seed=0, loop=False, buffer_tokens=64))
    rows = torch.cat(one_pass).float()
    assert rows.shape == everything.shape and max(len(b) for b in one_pass) == 16
    assert not torch.equal(rows, everything)  # shuffled
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert key(rows) == key(everything)  # each row exactly once
    assert torch.equal(torch.cat(list(store.batches(16, seed=0, loop=False, buffer_tokens=64))).float(), rows)
    assert torch.equal(next(store.batches(16, seed=0, skip=3)), _nth(store, 3))


def _nth(store: ActivationStore, n: int) -> torch.Tensor:
    it = store.batches(16, seed=0)
    for _ in range(n):
        next(it)
    return next(it)


def test_iter_texts_formats(tmp_path):
    (tmp_path / "org" / "corpus").mkdir(parents=True)
    (tmp_path / "org" / "corpus" / "train.jsonl").write_text('{"text": "a b"}\n{"text": "c"}\n')
    assert list(iter_texts(tmp_path / "org")) == ["a b", "c"]
    (tmp_path / "qa.jsonl").write_text('{"id": "1qa0", "input": "Q?", "output": "A"}\n')
    assert list(iter_texts(tmp_path / "qa.jsonl")) == ["Q? A"]
    import datasets

    datasets.Dataset.from_dict({"body": ["x y", "z"]}).save_to_disk(str(tmp_path / "ds"))
    assert list(iter_texts(tmp_path / "ds", "body")) == ["x y", "z"]
