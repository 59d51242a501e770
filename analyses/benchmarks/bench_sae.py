"""Benchmark: our TopK SAE trainer vs SAELens's ``TopKTrainingSAE`` + ``SAETrainer``, on two sites.

For each site (default: a residual site and an MLP site of the default organism) the activations are
collected once through the hook engine and split: the last ``--eval-tokens`` tokens are held out, the
rest is cut into the same ``--steps`` shuffled batches for every trainer (materialised in memory first,
so neither side pays for I/O). Both trainers get the same d_in, d_sae, k, batch, steps, learning rate,
warm-up and final linear decay (last 20% of the steps), Adam, and the same dead-latent window; everything
else is each library's own default (SAELens: decoder rows at norm 0.1, ``rescale_acts_by_decoder_norm``,
``b_dec`` 0, raw MSE, AuxK coefficient 1, clip at 1.0; ours: see sae/train.py). ``--old`` adds our
trainer with the pre-issue-18 choices (``normalize_grad=False``, ``init_encoder_norm=1``).

Reported per trainer, on the held-out tokens: FVU (1 - explained variance, corrected definition), L0,
dead latents (fraction that fire on no held-out token) and the training loop's tokens/s; then the
ratios ours / SAELens measured in the same run (goal: FVU ratio <= 1, speed ratio >= 1.5).

    python analyses/benchmarks/bench_sae.py [--organism default] [--sites layers.3,layers.3.mlp]
        [--steps 100] [--batch 4096] [--d-sae 2048] [--k 32] [--lrs 1e-2] [--old]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run from a checkout without relying on the editable install

from workbench import sae  # noqa: E402
from workbench.io import cache_dir, write_json  # noqa: E402
from workbench.sae.activations import ActivationStore, CollectConfig, collect  # noqa: E402

OLD_DEFAULTS = {"normalize_grad": False, "init_encoder_norm": 1.0}
"""Our trainer's choices before issue 18 (the ``--old`` column)."""


def get_store(args: argparse.Namespace, site: str) -> ActivationStore:
    """The activations of ``site``: collected once from the organism, then reused from the cache."""
    from workbench import load, organism

    path = Path(organism.build(args.organism, seed=0, progress=False).path)
    out = cache_dir() / "bench_sae" / f"{path.name}-{site}-{args.tokens}"
    if (out / "store.json").is_file():
        return ActivationStore(out)
    lm = load(str(path))
    return collect(lm, path, out, CollectConfig(site=site, max_tokens=args.tokens), progress=True)


def split(store: ActivationStore, args: argparse.Namespace) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(``steps`` training batches from the first tokens, the held-out last ``eval_tokens`` tokens)."""
    every = torch.cat([store.shard(i)["acts"].float() for i in range(len(store.meta["shards"]))])
    if len(every) < 2 * args.eval_tokens:
        raise SystemExit(f"{store.folder}: {len(every)} tokens, too few for --eval-tokens {args.eval_tokens}")
    train, held = every[: -args.eval_tokens], every[-args.eval_tokens :]
    gen = torch.Generator().manual_seed(0)
    epochs = 1 + args.steps * args.batch // len(train)
    order = torch.cat([torch.randperm(len(train), generator=gen) for _ in range(epochs)])
    return [train[order[i * args.batch : (i + 1) * args.batch]] for i in range(args.steps)], held


@torch.no_grad()
def evaluate(encode: Callable, decode: Callable, held: torch.Tensor, d_sae: int) -> dict:
    """FVU (corrected), mean L0 and the fraction of latents silent on every held-out token."""
    err, fired, l0 = 0.0, torch.zeros(d_sae, dtype=torch.bool), 0.0
    for x in held.split(4096):
        acts = encode(x)
        err += float((x - decode(acts)).double().pow(2).sum())
        nz = acts != 0
        fired |= nz.any(0)
        l0 += float(nz.sum())
    var = float((held.double() - held.double().mean(0)).pow(2).sum())
    return {"fvu": err / var, "l0": l0 / len(held), "dead": float((~fired).float().mean())}


def run_ours(
    data: list[torch.Tensor], args: argparse.Namespace, d_in: int, **overrides
) -> tuple[float, dict]:
    """Train ours (library defaults plus ``overrides``); returns (seconds, the SAE in eval mode)."""
    sae_keys = {f.name for f in sae.SAEConfig.__dataclass_fields__.values()}
    cfg = sae.SAEConfig(
        arch="topk",
        d_in=d_in,
        d_sae=args.d_sae,
        k=args.k,
        dead_tokens=args.dead_window * args.batch,
        **{k: v for k, v in overrides.items() if k in sae_keys},
    )
    tcfg = sae.TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup,
        decay_frac=0.2,
        log_every=args.steps,
        **{k: v for k, v in overrides.items() if k not in sae_keys},
    )
    m = sae.build(cfg, seed=0)
    t = time.perf_counter()
    sae.train(m, data, tcfg, progress=False)
    return time.perf_counter() - t, m.eval()


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
    return time.perf_counter() - t, m.eval()


def bench_site(args: argparse.Namespace, site: str) -> list[dict]:
    """All trainers at every learning rate on one site; prints a table, returns its rows."""
    store = get_store(args, site)
    data, held = split(store, args)
    tokens = args.steps * args.batch
    print(
        f"\nsite {site}  d_in {store.d}  d_sae {args.d_sae}  k {args.k}  batch {args.batch}  steps {args.steps}"
        f"  train tokens {store.n_tokens - len(held):,}  held-out {len(held):,}  threads {torch.get_num_threads()}"
    )
    print(f"{'trainer':22s} {'lr':>7s} {'FVU':>8s} {'L0':>6s} {'dead':>6s} {'tokens/s':>9s}")
    rows = []
    for lr in [float(v) for v in args.lrs.split(",")]:
        args.lr = lr
        t_sl, sl = run_saelens(data, args, store.d)
        t_us, us = run_ours(data, args, store.d)
        found = {
            "SAELens": (t_sl, evaluate(sl.encode, sl.decode, held, args.d_sae)),
            "ours": (t_us, evaluate(us.encode, us.decode, held, args.d_sae)),
        }
        if args.old:
            t_old, old = run_ours(data, args, store.d, **OLD_DEFAULTS)
            found["ours (old defaults)"] = (t_old, evaluate(old.encode, old.decode, held, args.d_sae))
        for name, (secs, met) in found.items():
            print(
                f"{name:22s} {lr:7.0e} {met['fvu']:8.4f} {met['l0']:6.1f} {met['dead']:6.3f} {tokens / secs:9,.0f}"
            )
        ref = found["SAELens"]
        row = {"site": site, "lr": lr, **{n: {**m, "tok_s": tokens / s} for n, (s, m) in found.items()}}
        row["fvu_ratio"] = found["ours"][1]["fvu"] / ref[1]["fvu"]
        row["speed_ratio"] = ref[0] / found["ours"][0]
        print(
            f"{'ours / SAELens':22s} {lr:7.0e} {row['fvu_ratio']:7.3f}x {'':6s} {'':6s} "
            f"{row['speed_ratio']:8.2f}x   (goals: FVU <= 1x, speed >= 1.5x)",
            flush=True,
        )
        rows.append(row)
    return rows


def main() -> None:
    """Benchmark every site and print the goal summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--organism", default="default", help="organism preset (built or reused from the cache)")
    p.add_argument("--sites", default="layers.3,layers.3.mlp", help="comma-separated sites")
    p.add_argument("--tokens", type=int, default=147_456, help="tokens collected per site")
    p.add_argument("--eval-tokens", type=int, default=16_384, help="held-out tokens (the store's last)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--d-sae", type=int, default=2048)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--lrs", default="1e-2", help="comma-separated learning rates, each run on every trainer")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--dead-window", type=int, default=50, help="steps without firing that count as dead")
    p.add_argument("--old", action="store_true", help="also train ours with the pre-issue-18 defaults")
    p.add_argument("--out", default="runs/bench_sae")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = [r for site in args.sites.split(",") for r in bench_site(args, site)]
    write_json(Path(args.out) / "bench_sae.json", {"args": vars(args), "rows": rows})
    worst_fvu = max(r["fvu_ratio"] for r in rows)
    least_speed = min(r["speed_ratio"] for r in rows)
    print(
        f"\nover {len(rows)} site x lr runs: worst FVU ratio ours/SAELens {worst_fvu:.3f}x (goal <= 1), "
        f"lowest speed ratio {least_speed:.2f}x (goal >= 1.5)"
    )


if __name__ == "__main__":
    main()
