"""Adaptive sparse allocation: TopK vs Mutual Choice vs Feature Choice at equal total sparsity, each with
no auxiliary loss, aux_k and aux_zipf, on organism activations.

Equal total sparsity: every SAE spends k * B (token, latent) matches per training batch of B tokens
(TopK: k per token; Mutual Choice: a global top k*B; Feature Choice: m = k*B/F tokens per latent).
Reported per SAE: dead-latent fraction (no firing on the evaluation tokens), FVU (corrected definition),
inference L0 (MC/FC encode with their learned thresholds) and CE loss recovered with the SAE spliced in.
Claim under test (Ayonrinde 2024): adaptive allocation (MC, FC) gives fewer dead latents and better
reconstruction at equal sparsity.

    python analyses/sae_allocation.py [--organism default|tiny] [--site layers.0] [--steps 600]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without relying on the editable install

from workbench import load, organism, sae  # noqa: E402
from workbench.io import atomic_path, cache_dir, read_jsonl, write_json  # noqa: E402
from workbench.sae.activations import CollectConfig, collect, iter_texts  # noqa: E402

ARCHS = ("topk", "mutual_choice", "feature_choice")
AUXES = ("none", "aux_k", "aux_zipf")


def main() -> None:
    """Train the grid, evaluate, plot, print a table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--organism", default=None, help="default when cached, else tiny")
    p.add_argument("--site", default="layers.0")
    p.add_argument("--tokens", type=int, default=131_072)
    p.add_argument("--d-sae", type=int, default=1024)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-texts", type=int, default=64)
    p.add_argument("--out", default="runs/sae_allocation")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    preset = args.organism or (
        "default" if any((cache_dir() / "organism").glob("default-*/card.json")) else "tiny"
    )
    org_path = organism_folder(preset)
    lm = load(str(org_path))
    store = collect(
        lm,
        org_path,
        cache_dir() / "sae_allocation" / f"{preset}-{args.site}",
        CollectConfig(site=args.site, max_tokens=args.tokens),
    )
    texts = [t for _, t in zip(range(args.n_texts), iter_texts(org_path), strict=False)]
    out = Path(args.out)
    rows = []
    for arch in ARCHS:
        for aux in AUXES:
            rows.append(run_one(arch, aux, store, lm, texts, args, out / f"{arch}-{aux}"))
            r = rows[-1]
            print(
                f"{arch:15s} {aux:9s} dead {r['dead_frac']:.3f}  fvu {r['fvu']:.4f}  l0 {r['l0']:.1f}  "
                f"ce_rec {r['ce_recovered']:.4f}  train_fvu {r['train_fvu']:.4f}",
                flush=True,
            )
    write_json(
        out / "results.json", {"organism": preset, "site": args.site, "args": vars(args), "rows": rows}
    )
    plot(rows, out)
    print(
        f"organism {preset}  site {args.site}  d_in {store.d}  d_sae {args.d_sae}  k {args.k}  batch {args.batch}"
        f"  steps {args.steps}  -> {out}"
    )


def organism_folder(preset: str) -> Path:
    """The organism of ``preset`` under its current config: the cached build, else a fresh one."""
    return Path(organism.build(preset, seed=0, progress=False).path)


def run_one(arch: str, aux: str, store, lm, texts, args, out: Path) -> dict:
    """Train and evaluate one SAE."""
    cfg = sae.SAEConfig(
        arch=arch,
        d_in=store.d,
        d_sae=args.d_sae,
        k=args.k,
        aux=aux,
        site=store.site,
        dead_tokens=50 * args.batch,
    )
    m = sae.build(cfg, seed=0)
    res = sae.train(
        m,
        store.batches(args.batch, seed=0),
        sae.TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=20, log_every=20),
        out=out,
        progress=False,
    )
    rec = sae.reconstruction_metrics(m, store.batches(4096, seed=7, loop=False), max_tokens=32_768)
    spl = sae.splice_metrics(m, lm, None, texts)
    hist = read_jsonl(out / "metrics.jsonl")
    return {
        "arch": arch,
        "aux": aux,
        "dead_frac": rec.dead_frac,
        "train_dead_frac": hist[-1]["dead_frac"],
        "fvu": rec.fvu,
        "l0": rec.l0,
        "ce_recovered": spl.ce_recovered,
        "kl_score": spl.kl_score,
        "delta_lm_loss": spl.delta_lm_loss,
        "train_fvu": hist[-1]["fvu"],
        "tok_s": res.tokens_per_s,
        "density": rec.density.tolist(),
        "curve": [(h["step"], h["fvu"], h["dead_frac"]) for h in hist],
        "splice": dataclasses.asdict(spl),
    }


def plot(rows: list[dict], out: Path) -> None:
    """Bar charts of dead fraction / FVU / CE recovered, density histograms and training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"none": "#999", "aux_k": "#48c", "aux_zipf": "#e73"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(
        axes,
        ("dead_frac", "fvu", "ce_recovered"),
        ("dead-latent fraction", "FVU (lower is better)", "CE loss recovered"),
        strict=True,
    ):
        for j, aux in enumerate(AUXES):
            vals = [next(r[key] for r in rows if r["arch"] == a and r["aux"] == aux) for a in ARCHS]
            ax.bar(
                [i + 0.27 * (j - 1) for i in range(len(ARCHS))],
                vals,
                width=0.27,
                color=colors[aux],
                label=aux,
            )
        ax.set_xticks(range(len(ARCHS)), ARCHS)
        ax.set_title(title)
    axes[0].legend()
    _save(fig, out / "allocation_bars.png")
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for r in rows:
        d = torch.tensor(r["density"])
        style = {"none": ":", "aux_k": "-", "aux_zipf": "--"}[r["aux"]]
        color = {"topk": "C0", "mutual_choice": "C1", "feature_choice": "C2"}[r["arch"]]
        live = d[d > 0].log10()
        axes[0].hist(
            live.numpy(),
            bins=40,
            histtype="step",
            linestyle=style,
            color=color,
            label=f"{r['arch']}/{r['aux']}",
        )
        steps, fvus, _ = zip(*r["curve"], strict=True)
        axes[1].plot(steps, fvus, linestyle=style, color=color, label=f"{r['arch']}/{r['aux']}")
    axes[0].set_xlabel("log10 feature density (eval tokens)")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("batch FVU")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=7)
    _save(fig, out / "allocation_density_curves.png")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
