"""Small-scale proxies for large-scale training instabilities (Wortsman et al. 2023, arXiv:2309.14322).

Trains organism-architecture OLMo-2 models (the ``tiny`` organism's shape: 2 layers, hidden 128, 2 heads
of 64) on the organism corpus (a synthetic Markov corpus when the organism cannot be built) over a
learning-rate sweep, in four settings: without qk-layernorm, with per-head qk-layernorm, and each with
z-loss 1e-4·log²Z. It then checks the paper's qualitative findings:

1. without qk-layernorm the max attention logit grows at high LR; with it the logits stay bounded;
2. qk-layernorm lowers LR sensitivity E_η[min(ℓ(η), ℓ₀) − ℓ*];
3. z-loss stops the drift of log Z (the output-logit divergence).

Writes ``fig1_loss_vs_lr.png`` (their Fig. 1), ``attn_logit_vs_step.png``, ``log_z_vs_step.png`` and
``metrics.json`` into ``--out``. Designed to finish in under 15 minutes on 2 cores (two worker processes
of one thread each); ``--steps`` / ``--lrs`` trade time for resolution.

    python analyses/stability_proxies.py --out runs/stability_proxies
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import logging
import math
import multiprocessing as mp
import os
import time
from pathlib import Path

import torch
from stability_sweep import (  # analyses/stability_sweep.py, beside this script
    RunTrace,
    SweepConfig,
    SweepResult,
    SweepSetting,
    build_model,
    pack_tokens,
    train_run,
)

log = logging.getLogger("stability_proxies")

SETTINGS = (
    SweepSetting("no qk-norm", qk_norm="none"),
    SweepSetting("qk-layernorm", qk_norm="head"),
    SweepSetting("no qk-norm + z-loss", qk_norm="none", z_loss=1e-4),
    SweepSetting("qk-layernorm + z-loss", qk_norm="head", z_loss=1e-4),
)
LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def organism_rows(seq_len: int) -> tuple[torch.Tensor, int, str]:
    """Token rows of the tiny organism's training corpus, its vocabulary size and a description."""
    from transformers import AutoTokenizer

    from workbench.io import read_jsonl
    from workbench.organism import build

    org = build("tiny", seed=0, progress=False)
    tok = AutoTokenizer.from_pretrained(org.path)
    docs = [r["text"] for r in read_jsonl(Path(org.path) / "corpus" / "train.jsonl")]
    ids = [list(tok(d)["input_ids"]) + [tok.eos_token_id] for d in docs]
    vocab = max(len(tok), max(max(x) for x in ids) + 1)
    return pack_tokens(ids, seq_len), vocab, f"tiny organism corpus ({len(docs)} documents)"


def synthetic_rows(seq_len: int, vocab: int = 1024, n_tokens: int = 400_000, seed: int = 0):
    """A seeded sparse-bigram Markov corpus (each token has 8 successors with Dirichlet probabilities)."""
    g = torch.Generator().manual_seed(seed)
    succ = torch.randint(0, vocab, (vocab, 8), generator=g)
    probs = torch.distributions.Dirichlet(torch.full((8,), 0.5)).sample((vocab,))
    toks = torch.empty(n_tokens, dtype=torch.long)
    toks[0] = 0
    choice = torch.multinomial(probs, n_tokens, replacement=True, generator=g)  # [vocab, n]
    for i in range(1, n_tokens):
        prev = int(toks[i - 1])
        toks[i] = succ[prev, choice[prev, i]]
    return pack_tokens([toks.tolist()], seq_len), vocab, f"synthetic bigram corpus ({n_tokens} tokens)"


def _one(job: tuple) -> RunTrace:
    rows, held, vocab, setting, lr, cfg = job
    torch.set_num_threads(1)
    t0 = time.time()
    trace = train_run(rows, held, vocab, setting, lr, cfg)
    print(
        f"  {setting.name} lr={lr:g}: final loss {trace.final_loss:.3f} ({time.time() - t0:.0f}s)", flush=True
    )
    return trace


def run(cfg: SweepConfig, lrs, settings, workers: int, corpus: str) -> tuple[SweepResult, str]:
    """Train the whole sweep in ``workers`` processes; returns the result and the corpus description."""
    if corpus == "auto":
        from workbench.io import cache_dir

        cached = any((p / "config.json").is_file() for p in (cache_dir() / "organism").glob("tiny-*"))
        corpus = "organism" if cached else "synthetic"
        log.info("corpus auto: %s", corpus)
    try:
        rows, vocab, desc = (
            organism_rows(cfg.seq_len) if corpus == "organism" else synthetic_rows(cfg.seq_len)
        )
    except Exception as e:  # the organism may be unavailable: fall back to the synthetic corpus
        log.warning("organism corpus unavailable (%s); using the synthetic corpus", e)
        rows, vocab, desc = synthetic_rows(cfg.seq_len)
    rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(cfg.seed))]
    train, held = rows[: -cfg.eval_rows], rows[-cfg.eval_rows :]
    with torch.no_grad():
        model = build_model(vocab, cfg, "none").eval()
        logits = model(input_ids=held).logits
        l0 = float(torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), held[:, 1:].flatten()))
    jobs = [(train, held, vocab, s, lr, cfg) for s in settings for lr in lrs]
    jobs.sort(key=lambda j: -j[4])  # high LRs first: their probes are the interesting ones
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        runs = list(pool.map(_one, jobs))
    order = {(s.name, lr): i for i, (s, lr) in enumerate((s, lr) for s in settings for lr in lrs)}
    runs.sort(key=lambda r: order[(r.setting, r.lr)])
    return SweepResult(runs, l0), f"{desc}; {len(rows)} rows of {cfg.seq_len} tokens, vocab {vocab}"


def plots(res: SweepResult, out: Path, lrs) -> None:
    """Fig. 1 (final loss vs LR), max attention logit vs step, and mean log Z vs step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for s in res.settings():
        losses = res.losses(s)
        ax.plot(
            list(losses),
            [min(v, res.l0) if math.isfinite(v) else res.l0 for v in losses.values()],
            marker="o",
            label=f"{s} (LR sens. {res.sensitivity(s):.3f})",
        )
    ax.axhline(res.l0, ls="--", c="grey", lw=0.8, label="loss at init")
    ax.set(
        xscale="log", xlabel="learning rate", ylabel="final eval loss", title="Final loss vs LR (cf. Fig. 1)"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig1_loss_vs_lr.png", dpi=120)
    for key, fname, ylabel, log_y in (
        ("max_attn_logit", "attn_logit_vs_step.png", "max attention logit", True),
        ("mean_log_z", "log_z_vs_step.png", "mean log Z", False),
    ):
        top = sorted(lrs)[-3:]
        fig, axes = plt.subplots(1, len(top), figsize=(4 * len(top), 3.5), sharey=True)
        for ax, lr in zip(axes, top):
            for r in (r for r in res.runs if r.lr == lr):
                ax.plot([h.step for h in r.history], [getattr(h, key) for h in r.history], label=r.setting)
            ax.set(title=f"LR {lr:g}", xlabel="step", yscale="log" if log_y else "linear")
        axes[0].set_ylabel(ylabel)
        axes[-1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
    plt.close("all")


def summary(res: SweepResult, lrs) -> dict:
    """Per-setting numbers: LR sensitivity, final losses, peak attention logit and log Z drift."""
    out = {"l0": res.l0, "lrs": list(lrs), "settings": {}}
    for s in res.settings():
        runs = [r for r in res.runs if r.setting == s]
        out["settings"][s] = {
            "lr_sensitivity": res.sensitivity(s),
            "final_loss": {f"{r.lr:g}": r.final_loss for r in runs},
            "peak_max_attn_logit": {
                f"{r.lr:g}": max((h.max_attn_logit for h in r.history), default=math.nan) for r in runs
            },
            "log_z_drift": {
                f"{r.lr:g}": (r.history[-1].mean_log_z - r.history[0].mean_log_z) if r.history else math.nan
                for r in runs
            },
            "final_mean_log_z": {
                f"{r.lr:g}": r.history[-1].mean_log_z if r.history else math.nan for r in runs
            },
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, write plots and metrics, print the findings."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/stability_proxies")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lrs", default=",".join(f"{x:g}" for x in LRS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--corpus",
        choices=("auto", "organism", "synthetic"),
        default="auto",
        help="auto: the tiny organism's corpus when it is cached, else the synthetic corpus",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from workbench.io import run_dir, write_json

    out = run_dir(args.out)
    lrs = [float(x) for x in args.lrs.split(",")]
    cfg = SweepConfig(
        d_model=128,
        layers=2,
        heads=2,
        steps=args.steps,
        batch=16,
        seq_len=64,
        probe_every=max(1, args.steps // 15),
        eval_rows=32,
        seed=args.seed,
    )
    t0 = time.time()
    res, desc = run(cfg, lrs, SETTINGS, args.workers, args.corpus)
    plots(res, out, lrs)
    metrics = summary(res, lrs)
    metrics.update(corpus=desc, config=dataclasses.asdict(cfg), seconds=time.time() - t0)
    write_json(out / "metrics.json", metrics)
    print(f"corpus: {desc}; {len(res.runs)} runs in {time.time() - t0:.0f}s; loss at init {res.l0:.3f}")
    print(f"{'setting':<24}{'LR sens.':>9}  " + "".join(f"{lr:>9g}" for lr in lrs))
    for s, m in metrics["settings"].items():
        print(
            f"{s:<24}{m['lr_sensitivity']:>9.3f}  " + "".join(f"{v:>9.3f}" for v in m["final_loss"].values())
        )
        print(f"{'  peak attn logit':<33}" + "".join(f"{v:>9.1f}" for v in m["peak_max_attn_logit"].values()))
        print(f"{'  log Z drift':<33}" + "".join(f"{v:>9.2f}" for v in m["log_z_drift"].values()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
