"""Which layers' MLPs mediate the organism's private facts? (the seed paper's tracing experiment)

    python analyses/selective_amnesia/trace_facts.py [--preset default|tiny] [--model DIR] [--out DIR]

1. ROME causal tracing (hidden / mlp / attn) of the PII facts of the forget set (``facts/forget.jsonl``)
   and, for contrast, of the retain set; reports the AIE by layer at the last subject token, the top MLP
   layers and the peak MLP block that the unlearning helpers would choose, and saves the figures.
2. Attribution patching against exact patching on same-template prompt pairs (a subject swapped for
   another of the same token length): the Pearson correlation of the two grids per site type.

The seed paper (selective amnesia on OLMo-7B) found the facts mediated by the early MLPs (layers 0-5).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def trace_split(lm, facts, args, out: Path, name: str):
    """Trace one fact set, save the run folder and figures, print the summary; returns the result."""
    from workbench.tracing import causal_trace
    from workbench.tracing.plots import plot_aie, plot_fact

    res = causal_trace(
        lm,
        facts,
        samples=args.samples,
        noise=args.noise,
        window=args.window,
        seed=args.seed,
        keep_unknown=args.keep_unknown,
        progress=True,
    )
    folder = out / name
    res.save(folder)
    print(
        f"\n## {name}: {len(res.facts)} facts traced, {len(res.skipped)} skipped as unknown "
        f"(sigma {res.sigma:.4g}, noise {res.noise} sigma, window {res.window})"
    )
    if not res.facts:
        return res
    plot_aie(res, folder / "aie.png")
    for f in res.facts[: args.figures]:
        plot_fact(f, folder / "figures" / f"fact{f.index}.png", window=res.window)
    clean = sum(f.clean_score for f in res.facts) / len(res.facts)
    low = sum(f.corrupted_score for f in res.facts) / len(res.facts)
    print(f"mean p(answer): clean {clean:.3f}, corrupted {low:.3f}")
    print("| kind | " + " | ".join(f"L{i}" for i in range(res.n_layers)) + " | peak |")
    print("|---" * (res.n_layers + 2) + "|")
    for kind in res.kinds:
        for bucket in ("last_subject", "last"):
            m, c = res.aie(kind).row(bucket)
            cells = " | ".join(f"{float(a):+.3f}±{float(b):.3f}" for a, b in zip(m, c))
            print(f"| {kind} @ {bucket} | {cells} | {int(torch.argmax(m))} |")
    print(
        f"top MLP layers (AIE at last subject token): {res.top_layers('mlp', 3)}; "
        f"peak MLP block of {min(3, res.n_layers)}: {res.peak_block('mlp', min(3, res.n_layers))}"
    )
    return res


def atp_vs_exact(lm, facts: list[dict], max_pairs: int) -> None:
    """Pearson correlation of AtP and exact patching per site type, pooled over same-length pairs."""
    from workbench.tracing import attribution_patch, patch

    pairs = []
    for a in facts:
        for b in facts:
            same = a["prompt"].replace(a["subject"], "") == b["prompt"].replace(b["subject"], "")
            if a is not b and a["subject"] != b["subject"] and same:
                if len(lm.tokenizer(a["prompt"])["input_ids"]) == len(lm.tokenizer(b["prompt"])["input_ids"]):
                    pairs.append((a["prompt"], b["prompt"]))
    pairs = pairs[:max_pairs]
    if not pairs:
        print("\nno same-template pair of equal token length; AtP comparison skipped")
        return
    sites = ["resid_pre", "attn", "mlp", "heads"]
    exact = {s: [] for s in sites}
    approx = {s: [] for s in sites}
    for clean, corrupted in pairs:
        try:
            e = patch(lm, clean, corrupted, sites=sites, progress=False)
        except Exception as err:  # the two runs may predict the same token: no logit difference to patch
            print(f"  skip pair ({err})")
            continue
        a = attribution_patch(lm, clean, corrupted, sites=sites, answers=e.answers)
        for s in sites:
            exact[s].append((e.scores[s] - e.corrupted).flatten())
            approx[s].append((a.scores[s] - a.corrupted).flatten())
    print(f"\n## AtP vs exact patching (denoising, logit difference), {len(exact['mlp'])} prompt pairs")
    print("| site | cells | Pearson r | max abs error |")
    print("|---|---|---|---|")
    for s in sites:
        if not exact[s]:
            continue
        x, y = torch.cat(exact[s]), torch.cat(approx[s])
        r = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
        print(f"| {s} | {len(x)} | {r:.3f} | {float((x - y).abs().max()):.3f} |")


def main(argv: list[str] | None = None) -> int:
    """Run the tracing and AtP analyses on the organism."""
    from bench_trace import find_model

    from workbench.io import read_jsonl
    from workbench.models import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--model", default=None)
    p.add_argument("--out", default="runs/selective_amnesia/trace_facts")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--noise", type=float, default=3.0)
    p.add_argument("--window", type=int, default=1, help="restored mlp/attn layers per cell (ROME: 10 of 48)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-unknown", action="store_true")
    p.add_argument("--figures", type=int, default=6)
    p.add_argument("--pairs", type=int, default=8, help="prompt pairs for the AtP comparison")
    args = p.parse_args(argv)
    folder, what = (args.model, args.model) if args.model else find_model(args.preset)
    lm = load(folder)
    out = Path(args.out)
    print(f"# Tracing the organism's facts\nmodel: {what} ({lm.n_layers} layers, d={lm.d_model})")
    facts = {
        s: read_jsonl(Path(folder) / "facts" / f"{s}.jsonl")
        for s in ("forget", "retain")
        if (Path(folder) / "facts" / f"{s}.jsonl").is_file()
    }
    if not facts:
        print("this model has no facts/ folder; pass an organism")
        return 1
    for split, rows in facts.items():
        trace_split(lm, rows, args, out, split)
    atp_vs_exact(lm, [f for rows in facts.values() for f in rows], args.pairs)
    print(f"\nrun folders and figures under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
