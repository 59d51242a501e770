"""Benchmark: our TopK SAE trainer vs SAELens's ``TopKTrainingSAE`` + ``SAETrainer``.

Same stored activations (an organism site, collected once through the hook engine), same d_in, d_sae, k,
batch size, steps, learning rate, warm-up and final linear decay, Adam, grad clipping at 1.0. Batches are
materialised in memory first so neither side pays for I/O. Each library keeps its own AuxK defaults
(ours: 1/32 of the variance-normalised AuxK; SAELens: coefficient 1.0 on the raw AuxK).
Reports tokens/s of the training loop and FVU (1 - explained variance, corrected definition) at equal L0
(both are TopK: L0 = k exactly) on a held-out pass of the store.

    python analyses/benchmarks/bench_sae.py [--store DIR] [--steps 100] [--batch 4096] [--d-sae 2048] [--k 32]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run from a checkout without relying on the editable install

from workbench import sae  # noqa: E402
from workbench.io import cache_dir, write_json  # noqa: E402
from workbench.sae.activations import ActivationStore, CollectConfig, collect  # noqa: E402


def get_store(args: argparse.Namespace) -> ActivationStore:
    """The given store, or one collected from the organism (default preset if cached, else tiny)."""
    if args.store:
        return ActivationStore(args.store)
    from workbench import load

    path = organism_folder(args.organism)
    lm = load(str(path))
    out = cache_dir() / "bench_sae" / f"{path.name}-{args.site}"
    return collect(lm, path, out, CollectConfig(site=args.site, max_tokens=args.tokens), progress=True)


def organism_folder(preset: str) -> Path:
    """The organism of ``preset`` under its current config: the cached build, else a fresh one."""
    from workbench import organism

    return Path(organism.build(preset, seed=0, progress=False).path)


def fvu(encode_decode, batches: list[torch.Tensor]) -> float:
    """1 - explained variance over all batches: E||x - x_hat||^2 / (E||x||^2 - ||E x||^2)."""
    err = sq = 0.0
    s = None
    n = 0
    with torch.no_grad():
        for x in batches:
            xh = encode_decode(x)
            err += float((x - xh).double().pow(2).sum())
            sq += float(x.double().pow(2).sum())
            s = x.double().sum(0) if s is None else s + x.double().sum(0)
            n += len(x)
    return (err / n) / (sq / n - float((s / n).pow(2).sum()))


def run_ours(
    data: list[torch.Tensor], args: argparse.Namespace, d_in: int
) -> tuple[float, sae.SparseAutoencoder]:
    """Train ours; returns (seconds, sae)."""
    m = sae.build(
        sae.SAEConfig(
            arch="topk", d_in=d_in, d_sae=args.d_sae, k=args.k, dead_tokens=args.dead_window * args.batch
        ),
        seed=0,
    )
    cfg = sae.TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup,
        decay_frac=0.2,
        log_every=max(1, args.steps // 4),
        b_dec_init="geometric_median",
    )
    t = time.perf_counter()
    sae.train(m, data, cfg, progress=False)
    return time.perf_counter() - t, m


def run_saelens(data: list[torch.Tensor], args: argparse.Namespace, d_in: int):
    """Train SAELens's TopKTrainingSAE with its SAETrainer (no LM: the trainer takes an iterator)."""
    from sae_lens.config import LoggingConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    torch.manual_seed(0)
    m = TopKTrainingSAE(
        TopKTrainingSAEConfig(d_in=d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device="cpu")
    )
    tcfg = SAETrainerConfig(
        total_training_samples=args.steps * args.batch,
        train_batch_size_samples=args.batch,
        lr=args.lr,
        lr_end=0.0,
        lr_warm_up_steps=args.warmup,
        lr_decay_steps=int(0.2 * args.steps),
        device="cpu",
        dead_feature_window=args.dead_window,
        feature_sampling_window=10**9,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=tcfg, sae=m, data_provider=iter(data))
    t = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - t, m


def main() -> None:
    """Run both trainers at each learning rate and print the comparison (best FVU of each side too)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=None)
    p.add_argument("--organism", default="tiny")
    p.add_argument("--site", default="layers.0")
    p.add_argument("--tokens", type=int, default=131_072)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--d-sae", type=int, default=2048)
    p.add_argument("--k", type=int, default=32)
    p.add_argument(
        "--lrs", default="1e-3,1e-2", help="comma-separated learning rates, each run on both sides"
    )
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--dead-window", type=int, default=50, help="steps without firing that count as dead")
    p.add_argument("--eval-tokens", type=int, default=16_384)
    p.add_argument("--out", default="runs/bench_sae")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    store = get_store(args)
    it = store.batches(args.batch, seed=0)
    data = [next(it).float() for _ in range(args.steps)]
    held = torch.cat(list(store.batches(4096, seed=123, loop=False)))[: args.eval_tokens].split(4096)
    tokens = args.steps * args.batch
    rows = []
    print(
        f"store {store.folder}  d_in {store.d}  d_sae {args.d_sae}  k {args.k}  batch {args.batch}  "
        f"steps {args.steps}  threads {torch.get_num_threads()}"
    )
    for lr in [float(v) for v in args.lrs.split(",")]:
        args.lr = lr
        t_theirs, theirs = run_saelens(data, args, store.d)
        t_ours, ours = run_ours(data, args, store.d)
        ours.eval()
        row = {
            "lr": lr,
            "ours_tok_s": tokens / t_ours,
            "saelens_tok_s": tokens / t_theirs,
            "speedup": t_theirs / t_ours,
            "ours_fvu": fvu(lambda x, m=ours: m.decode_codes(m.encode_codes(x)), held),
            "saelens_fvu": fvu(lambda x, m=theirs: m.decode(m.encode(x)), held),
            "ours_l0": float((ours.encode(held[0]) != 0).sum(-1).float().mean()),
            "saelens_l0": float((theirs.encode(held[0]) != 0).sum(-1).float().mean()),
        }
        rows.append(row)
        print(
            f"lr {lr:g}: tokens/s ours {row['ours_tok_s']:,.0f}  SAELens {row['saelens_tok_s']:,.0f}  "
            f"ratio {row['speedup']:.2f}x (goal >= 1.5x) | FVU at L0 {row['ours_l0']:.0f}/{row['saelens_l0']:.0f}"
            f"  ours {row['ours_fvu']:.4f}  SAELens {row['saelens_fvu']:.4f}",
            flush=True,
        )
    best_o, best_t = min(r["ours_fvu"] for r in rows), min(r["saelens_fvu"] for r in rows)
    write_json(
        Path(args.out) / "bench_sae.json", {"store": str(store.folder), "args": vars(args), "rows": rows}
    )
    print(
        f"best FVU over the learning rates: ours {best_o:.4f}  SAELens {best_t:.4f} (goal: ours <= SAELens); "
        f"mean speed ratio {sum(r['speedup'] for r in rows) / len(rows):.2f}x"
    )


if __name__ == "__main__":
    main()
