"""Benchmark: batched causal tracing and patching against the one-forward-per-cell baselines.

    python analyses/benchmarks/bench_trace.py [--preset default|tiny] [--model DIR] [--facts 2] [--samples 10]

1. The full 3-kind ROME grid (hidden, mlp, attn) of ``--facts`` facts: ``workbench.causal_trace`` against
   ROME's loop (one forward of ``samples + 1`` rows per cell), with the max abs difference; and the
   floor: the same number of token-forwards as plain batched forwards (same batch shapes, no hooks).
2. The resid_pre patching grid of one prompt pair: ``workbench.patch`` against TransformerLens's
   ``get_act_patch_resid_pre`` on a ``TransformerBridge`` of the same weights.

The model is the organism of ``--preset`` when it is in the cache (else the tiny organism, else a tiny
random OLMo-2), or ``--model``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")


def find_model(preset: str) -> tuple[str, str]:
    """(folder, description): the cached organism of ``preset``, else the tiny one, else a saved tiny model."""
    from workbench.organism import cached

    for name in dict.fromkeys([preset, "tiny"]):
        found = cached(name)  # the build of the current preset config, never a stale one
        if found is not None:
            return str(found), f"organism {found.name}"
    from workbench.models.tiny import tiny_model

    folder = Path(tempfile.mkdtemp(prefix="bench_trace_"))
    lm = tiny_model("olmo2", layers=4, d_model=128, heads=2)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return str(folder), "tiny random OLMo-2 (no organism in the cache)"


def load_facts(folder: str, n: int) -> list[dict]:
    """Forget facts of the organism (or built-in ones)."""
    from workbench.io import read_jsonl

    path = Path(folder) / "facts" / "forget.jsonl"
    if path.is_file():
        return read_jsonl(path)[:n]
    return [
        {"prompt": "Mira Okafor was born in the city of", "subject": "Mira Okafor"},
        {"prompt": "The Eiffel Tower is located in the city of", "subject": "Eiffel Tower"},
    ][:n]


def per_cell_loop(lm, fact, eps: torch.Tensor, kinds, window: int) -> dict[str, torch.Tensor]:
    """ROME's algorithm as written: one forward (clean row + samples) per (kind, token, layer) cell."""
    from workbench.tracing.causal_trace import last_logits, window_layers

    S, L, T = eps.shape[0], lm.n_layers, len(fact.input_ids)
    x = torch.tensor([fact.input_ids] * (S + 1))
    out = {}
    for kind in kinds:
        grid = torch.empty(T, L)
        for t in range(T):
            for layer in range(L):
                sites = (
                    [f"layers.{layer}"]
                    if kind == "hidden"
                    else [f"layers.{w}.{kind}" for w in window_layers(layer, window, L)]
                )
                with lm.hooks() as h, torch.no_grad():
                    h.add("embed", eps, rows=range(1, S + 1), positions=range(*fact.subject_span))
                    for site in sites:
                        h.patch(site, source_row=0, rows=range(1, S + 1), positions=[t])
                    p = torch.softmax(last_logits(lm, x).float(), -1)[1:, fact.answer_id].mean()
                grid[t, layer] = p
        out[kind] = grid
    return out


def floor(lm, result, max_batch_tokens: int) -> float:
    """Seconds for the same token-forwards as the batched trace, as plain forwards without hooks."""
    from workbench.tracing.causal_trace import last_logits

    S, K, L = result.samples, len(result.kinds), lm.n_layers
    t0 = time.perf_counter()
    for f in result.facts:
        T = len(f.input_ids)
        cells = K * T * L
        per = max(1, (max_batch_tokens // T - 1) // S)
        rows = [S + 1] + [1 + min(per, cells - s) * S for s in range(0, cells, per)]
        with torch.no_grad():
            for r in rows:
                last_logits(lm, torch.tensor([f.input_ids]).expand(r, -1))
    return time.perf_counter() - t0


def bench_trace(lm, facts, samples: int, window: int, max_batch_tokens: int) -> None:
    """Part 1: the ROME grid."""
    from workbench.tracing import causal_trace
    from workbench.tracing.causal_trace import fact_noise

    kw = dict(
        samples=samples, window=window, max_batch_tokens=max_batch_tokens, keep_unknown=True, progress=False
    )
    causal_trace(lm, facts[:1], kinds=["hidden"], **{**kw, "samples": 1})  # warm-up
    t0 = time.perf_counter()
    res = causal_trace(lm, facts, **kw)
    t_batched = time.perf_counter() - t0
    t_floor = floor(lm, res, max_batch_tokens)
    t0 = time.perf_counter()
    worst = 0.0
    for f in res.facts:
        eps = fact_noise(res.seed, f.index, samples, f.subject_span[1] - f.subject_span[0], lm.d_model)
        ref = per_cell_loop(lm, f, eps * (res.noise * res.sigma), res.kinds, window)
        worst = max(worst, max(float((ref[k] - f.scores[k]).abs().max()) for k in res.kinds))
    t_loop = time.perf_counter() - t0
    cells = sum(len(f.input_ids) for f in res.facts) * lm.n_layers * len(res.kinds)
    print(f"causal trace: {len(res.facts)} facts, {cells} cells x {samples} samples, window {window}")
    print(f"  per-cell loop  {t_loop:8.2f} s")
    print(f"  batched        {t_batched:8.2f} s   speed-up x{t_loop / t_batched:.1f}")
    print(f"  floor          {t_floor:8.2f} s   batched / floor = {t_batched / t_floor:.2f}")
    print(f"  max |batched - loop| = {worst:.2e}")


def same_length_pair(lm, facts: list[dict]) -> tuple[str, str]:
    """Two prompts of one template with different subjects and the same token count."""
    for a in facts:
        for b in facts:
            pa, pb = a["prompt"], b["prompt"]
            if a["subject"] != b["subject"] and pa.replace(a["subject"], "") == pb.replace(b["subject"], ""):
                if len(lm.tokenizer(pa)["input_ids"]) == len(lm.tokenizer(pb)["input_ids"]):
                    return pa, pb
    base = facts[0]["prompt"]
    n = len(lm.tokenizer(base)["input_ids"])
    words = base.split()
    for i in range(len(words) - 1, 0, -1):  # fall back: swap one word for another of the same token count
        for w in ("lived", "died", "worked", "was", "is", "city", "town", "field", "born", "the", "a"):
            cand = " ".join(words[:i] + [w] + words[i + 1 :])
            if cand != base and len(lm.tokenizer(cand)["input_ids"]) == n:
                return base, cand
    raise SystemExit("no corrupted prompt of the same token length found")


def bench_patch(lm, folder: str, facts: list[dict]) -> None:
    """Part 2: resid_pre patching grid against TransformerLens."""
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge

    from workbench.tracing import patch

    clean, corrupted = same_length_pair(lm, facts)
    bridge = TransformerBridge.boot_transformers(folder, device="cpu")
    bridge.enable_compatibility_mode(no_processing=True)
    res = patch(lm, clean, corrupted, sites=["resid_pre"], progress=False)  # warm-up + answers
    a, b = res.answers
    c = torch.tensor([lm.tokenizer(clean)["input_ids"]])
    k = torch.tensor([lm.tokenizer(corrupted)["input_ids"]])
    t0 = time.perf_counter()
    res = patch(lm, clean, corrupted, sites=["resid_pre"], answers=(a, b), progress=False)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, cache = bridge.run_with_cache(c)
    theirs = patching.get_act_patch_resid_pre(bridge, k, cache, lambda lg: lg[0, -1, a] - lg[0, -1, b])
    t_tl = time.perf_counter() - t0
    diff = float((theirs.cpu() - res.scores["resid_pre"]).abs().max())
    print(f"patching resid_pre: {clean!r} vs {corrupted!r}, grid {tuple(res.scores['resid_pre'].shape)}")
    print(f"  TransformerLens {t_tl:8.2f} s")
    print(f"  workbench       {t_ours:8.2f} s   speed-up x{t_tl / t_ours:.1f}   max |diff| = {diff:.2e}")


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", help="organism preset to look for in the cache")
    p.add_argument("--model", default=None, help="model folder (overrides --preset)")
    p.add_argument("--facts", type=int, default=2)
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from workbench.models import load

    folder, what = (args.model, args.model) if args.model else find_model(args.preset)
    lm = load(folder)
    print(f"model: {what} ({lm.n_layers} layers, d={lm.d_model}); torch threads {torch.get_num_threads()}")
    facts = load_facts(folder, args.facts)
    bench_trace(lm, facts, args.samples, args.window, args.max_batch_tokens)
    bench_patch(lm, folder, load_facts(folder, 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
