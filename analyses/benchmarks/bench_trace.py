"""Benchmark: batched causal tracing and patching against the one-forward-per-cell baselines.

    python analyses/benchmarks/bench_trace.py [--preset default|tiny] [--model DIR] [--facts 2]
        [--samples 10] [--windows 10,default] [--threads N] [--repeat 1] [--no-patch]

1. The full 3-kind grid (hidden, mlp, attn) of ``--facts`` facts at each window of ``--windows`` (ROME's
   10, and the depth-scaled default ``default_window``: 1 on 6 layers), three ways in the same run: ROME's loop (one forward of ``samples + 1``
   rows per cell), the batched trace with prefix reuse only, and the batched trace that also starts
   every cell at its first restored block from the cached corrupted run (``resume_layers``, the
   default); wall and CPU seconds, speed-ups over the loop, max abs difference against it. The floor:
   the FLOPs every needed cell truly needs (blocks from the restored one on, tokens from the restored
   one on, plus the fact's baseline run) at the rate of plain dense forwards of the same model, in CPU
   seconds; "this plan" counts what the layer-skipping trace computes (hidden and mlp cells start one
   block later, the last block computes keys only before the last token), which is below that floor.
2. The resid_pre patching grid of one prompt pair: ``workbench.patch`` against TransformerLens's
   ``get_act_patch_resid_pre`` on a ``TransformerBridge`` of the same weights.

The model is the organism of ``--preset`` when it is in the cache (else the tiny organism, else a tiny
random OLMo-2), or ``--model``. On a shared machine, compare CPU seconds at ``--threads 1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

from workbench.tracing.result import KINDS

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


def batched(lm, facts, *, samples: int, window: int, max_batch_tokens: int, resume: bool):
    """``causal_trace``'s per-fact loop (one baseline run, then the batched grid), layer skipping on/off."""
    from workbench.tracing.causal_trace import fact_noise
    from workbench.tracing.restore import fact_baseline, restored_grid
    from workbench.tracing.subject import as_fact, embedding_std, encode_fact

    facts = [as_fact(f, i) for i, f in enumerate(facts)]
    sigma = 3.0 * embedding_std(lm, [f.subject for f in facts])
    out = []
    for i, f in enumerate(facts):
        ids, span = encode_fact(lm.tokenizer, f, i)
        eps = fact_noise(0, i, samples, span[1] - span[0], lm.d_model) * sigma
        base = fact_baseline(lm, ids, span, eps, resume_layers=resume)
        grid = restored_grid(
            lm,
            ids,
            span,
            eps,
            base.answer,
            KINDS,
            window=window,
            max_batch_tokens=max_batch_tokens,
            resume_layers=resume,
            base=base,
        )
        out.append((ids, span, eps, base.answer, grid))
    return out


def block_flops(lm) -> tuple[float, float]:
    """Matmul FLOPs per token of one block, and of its query/key/value projections alone
    (2 x weights; MoE experts scaled by top-k / experts)."""
    cfg = lm.model.config
    share = getattr(cfg, "num_experts_per_tok", 1) / getattr(cfg, "num_experts", 1)
    path = lm.adapter.layer.format(i=0)
    attn = lm.adapter.attn_heads.format(i=0)  # the output projection (its input is the heads)
    attn_mod = attn.rsplit(".", 1)[0]
    full = qkv = 0.0
    for name, p in lm.model.get_submodule(path).named_parameters(prefix=path):
        if p.ndim > 1:
            n = p.numel() * (share if "experts" in name else 1)
            full += 2.0 * n
            qkv += 2.0 * n if name.startswith(attn_mod + ".") and not name.startswith(attn + ".") else 0.0
    return full, qkv


def forward_flops(lm, rows: int, T: int, start: int, first: int, last_keys_only: bool = False) -> float:
    """FLOPs of ``rows`` rows running tokens ``start..T-1`` through blocks ``first..``, logits at the last.

    ``last_keys_only``: the last block computes only the keys/values of positions before the last."""
    full, qkv = block_flops(lm)
    d_attn = lm.n_heads * lm.d_head
    blocks = [full + 4.0 * (i + 1) * d_attn for i in range(start, T)]
    last = sum(blocks)
    if last_keys_only:
        last = blocks[-1] + qkv * (T - 1 - start)
    n_full = max(0, lm.n_layers - 1 - first)
    return rows * (n_full * sum(blocks) + last + 2.0 * lm.d_model * lm.config.vocab_size)


def flop_counts(lm, T: int, s0: int, samples: int, window: int) -> dict[str, float]:
    """Per fact: ROME's loop; the floor of the issue (the baseline run, and every cell that needs a
    forward from its restored layer and token on); and this trace's plan (hidden cells from block l+1,
    mlp cells from the block after their window's first, the last block's keys only before the last
    token)."""
    from workbench.tracing.restore import unique_cells, window_layers

    L, S, K = lm.n_layers, samples, len(KINDS)
    work, _ = unique_cells(list(KINDS), T, L, s0, window)
    base = forward_flops(lm, S + 1, T, 0, 0)
    floor = plan = base
    for t, k, layer, first in work.tolist():
        restored = layer if KINDS[k] == "hidden" else window_layers(layer, window, L).start
        floor += forward_flops(lm, S, T, t, restored)
        plan += forward_flops(lm, S, T, t, first, last_keys_only=True)
    return {"loop": K * T * L * forward_flops(lm, S + 1, T, 0, 0), "floor": floor, "plan": plan}


def dense_rate(lm, T: int, rows: int) -> float:
    """FLOP/s of plain forwards (no hooks) of ``rows`` x ``T`` tokens, best of three (CPU seconds)."""
    from workbench.tracing.causal_trace import last_logits

    x = torch.zeros(rows, T, dtype=torch.long)
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            t0 = time.process_time()
            last_logits(lm, x)
            best = min(best, time.process_time() - t0)
    return forward_flops(lm, rows, T, 0, 0) / best


def timed(fn, repeat: int = 1):
    """(result, wall seconds, CPU seconds): the best of ``repeat`` runs."""
    best = (None, float("inf"), float("inf"))
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        run = (out, time.perf_counter() - w0, time.process_time() - c0)
        best = min(best, run, key=lambda r: r[2])
    return best


def floor_seconds(lm, facts, samples: int, window: int, max_batch_tokens: int) -> tuple[dict, float, float]:
    """FLOP counts summed over the facts, the dense forward rate and the floor in CPU seconds."""
    flops = {"loop": 0.0, "floor": 0.0, "plan": 0.0}
    rate_flops = rate_s = 0.0
    for ids, span, *_ in facts:
        for key, v in flop_counts(lm, len(ids), span[0], samples, window).items():
            flops[key] += v
        rows = 1 + max(1, (max_batch_tokens // len(ids) - 1) // samples) * samples
        rate_flops += forward_flops(lm, rows, len(ids), 0, 0)
        rate_s += forward_flops(lm, rows, len(ids), 0, 0) / dense_rate(lm, len(ids), rows)
    rate = rate_flops / rate_s
    return flops, rate, flops["floor"] / rate


def bench_trace(lm, facts, samples: int, window: int, max_batch_tokens: int, repeat: int = 1) -> None:
    """Part 1: the full 3-kind ROME grid at one window."""
    kw = dict(samples=samples, window=window, max_batch_tokens=max_batch_tokens)
    batched(lm, facts[:1], **{**kw, "samples": 1}, resume=True)  # warm-up
    old, w_old, c_old = timed(lambda: batched(lm, facts, **kw, resume=False), repeat)
    new, w_new, c_new = timed(lambda: batched(lm, facts, **kw, resume=True), repeat)
    worst = {"prefix": 0.0, "layers": 0.0}

    def loop():
        for (ids, span, eps, answer, grid), (_, _, _, _, grid_old) in zip(new, old):
            fact = SimpleNamespace(input_ids=ids, subject_span=span, answer_id=answer)
            ref = per_cell_loop(lm, fact, eps, KINDS, window)
            for key, g in (("layers", grid), ("prefix", grid_old)):
                worst[key] = max(worst[key], max(float((ref[k] - g[k]).abs().max()) for k in KINDS))

    _, w_loop, c_loop = timed(loop, repeat)
    flops, rate, floor_s = floor_seconds(lm, new, samples, window, max_batch_tokens)
    cells = sum(len(ids) for ids, *_ in new) * lm.n_layers * len(KINDS)
    print(f"causal trace, window {window}: {len(new)} facts, {cells} cells x {samples} samples (3 kinds)")
    head = ("wall s", "CPU s", "x loop wall", "x loop CPU", "/ floor CPU", "max|diff|")
    print(f"  {'':24s}" + "".join(f"{h:>12s}" for h in head))
    rows_out = [
        ("per-cell loop (ROME)", w_loop, c_loop, None),
        ("batched, prefix reuse", w_old, c_old, worst["prefix"]),
        ("batched, + layer cache", w_new, c_new, worst["layers"]),
    ]
    for name, w, c, diff in rows_out:
        cols = (w, c, w_loop / w, c_loop / c, c / floor_s)
        d = "" if diff is None else f"{diff:12.1e}"
        print(f"  {name:24s}" + "".join(f"{x:12.2f}" for x in cols) + d)
    print(
        f"  FLOPs: loop {flops['loop'] / 1e9:.1f} G, floor {flops['floor'] / 1e9:.1f} G "
        f"(x{flops['loop'] / flops['floor']:.1f} less), this plan {flops['plan'] / 1e9:.1f} G; "
        f"dense forward rate {rate / 1e9:.1f} GFLOP/s -> floor {floor_s:.2f} CPU s"
    )


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
    p.add_argument(
        "--windows",
        default="10,default",
        help="mlp/attn windows to trace: ROME's 10 and the depth-scaled default (1 on 6 layers)",
    )
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--repeat", type=int, default=1, help="time each trace this many times, keep the best")
    p.add_argument("--no-patch", action="store_true", help="skip part 2 (patching against TransformerLens)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from workbench.models import load
    from workbench.tracing.result import default_window

    folder, what = (args.model, args.model) if args.model else find_model(args.preset)
    lm = load(folder)
    print(f"model: {what} ({lm.n_layers} layers, d={lm.d_model}); torch threads {torch.get_num_threads()}")
    facts = load_facts(folder, args.facts)
    for w in args.windows.split(","):
        window = default_window(lm.n_layers) if w == "default" else int(w)
        bench_trace(lm, facts, args.samples, window, args.max_batch_tokens, args.repeat)
    if not args.no_patch:
        bench_patch(lm, folder, load_facts(folder, 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
