"""Benchmark: batched greedy generation vs one-at-a-time greedy generation (the official SemEval way).

The official SemEval-2025 Task 4 script generates one prompt at a time with
``model.generate(input_ids, max_new_tokens=256, do_sample=False, use_cache=True,
pad_token_id=tokenizer.eos_token_id)`` and decodes with ``skip_special_tokens=True,
clean_up_tokenization_spaces=True``. :func:`workbench.evaluation.generation.generate_greedy` batches
with left padding and a KV cache. This script times both on the same prompts and counts identical
outputs. Goal: >= 5x faster, identical outputs.

    python analyses/benchmarks/bench_generation.py --model organism:default --n 64 --max-new-tokens 256
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def _model(spec: str):
    from workbench.models import load

    if spec.startswith("organism:"):
        from workbench.organism import build

        org = build(spec.split(":", 1)[1], seed=0, progress=False)
        return load(org.path), org.path
    return load(spec), None


def _prompts(data: str | None, org_path, n: int, seed: int) -> list[str]:
    from workbench.data import read_semeval
    from workbench.evaluation.semeval import sample_records

    source = (
        data
        or org_path
        or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "lume")
    )
    records = read_semeval(source)
    per_cell = max(1, n // 12 + 1)
    return [r.input for r in sample_records(records, per_cell, seed)][:n]


@torch.inference_mode()
def one_at_a_time(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The official loop: one prompt per ``generate`` call."""
    outs = []
    for p in prompts:
        ids = tokenizer(p, return_tensors="pt").input_ids
        out = model.generate(
            ids,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=tokenizer.eos_token_id,
        )
        outs.append(
            tokenizer.batch_decode(
                out[:, ids.shape[1] :], skip_special_tokens=True, clean_up_tokenization_spaces=True
            )[0]
        )
    return outs


def main(argv: list[str] | None = None) -> int:
    """Time both ways and print the speed-up and the number of identical outputs."""
    from workbench.evaluation.generation import generate_greedy

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="organism:default", help="model folder, hub id or organism:<preset>")
    p.add_argument(
        "--data", default=None, help="SemEval data (default: the organism's, else ../shared/data/lume)"
    )
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm, org_path = _model(args.model)
    prompts = _prompts(args.data, org_path, args.n, args.seed)
    t0 = time.perf_counter()
    batched = generate_greedy(
        lm.model, lm.tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
    )
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = one_at_a_time(lm.model, lm.tokenizer, prompts, args.max_new_tokens)
    t_single = time.perf_counter() - t0
    same = sum(a == b for a, b in zip(batched, single))
    same_stripped = sum(" ".join(a.split()) == " ".join(b.split()) for a, b in zip(batched, single))
    print(
        f"model {args.model} ({lm.family}, {sum(x.numel() for x in lm.model.parameters()) / 1e6:.1f}M params), "
        f"{len(prompts)} prompts, max_new_tokens {args.max_new_tokens}, batch {args.batch_size}, "
        f"{args.threads} threads"
    )
    print(f"one at a time (official): {t_single:8.1f} s")
    print(f"batched (generate_greedy): {t_batched:8.1f} s")
    print(
        f"speed-up: {t_single / t_batched:.1f}x; identical outputs {same}/{len(prompts)} "
        f"({same_stripped}/{len(prompts)} up to whitespace)"
    )
    for a, b in zip(batched, single):
        if a != b:
            print(f"first difference:\n  batched: {a[:120]!r}\n  single:  {b[:120]!r}")
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
