"""The SAE trainer: an iterator of activation batches in, a trained SAE out. It knows no language model.

Adam (Gao et al.'s eps 6.25e-10) with linear warm-up and a linear decay to zero over the last
``decay_frac`` of training; ``b_dec`` initialised from the geometric median of the first batch; decoder
rows kept at unit norm with the parallel gradient removed (Gao et al. A.2; not for relu); dead latents
tracked in tokens; the auxiliary loss of the config. Logs to ``metrics.jsonl``, checkpoints to
``checkpoint/`` (SAE state, Adam moments, step) and resumes from it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

import torch

from ..errors import WorkbenchError
from .aux import AUX_LOSSES
from .base import SAEConfig, SparseAutoencoder, auto_lr

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainConfig:
    """Optimisation settings (strict: unknown keys are errors)."""

    steps: int = 1000
    """Optimiser steps (one batch each)."""
    batch_size: int = 4096
    """Tokens per batch (used by whoever builds the batch iterator, e.g. the CLI)."""
    lr: float | None = None
    """Adam learning rate; default Gao et al.'s 2e-4 / sqrt(d_sae / 2**14)."""
    warmup_steps: int = 50
    """Linear learning-rate warm-up."""
    decay_frac: float = 0.2
    """Fraction of the steps, at the end, over which the learning rate decays linearly to 0."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    eps: float = 6.25e-10
    """Adam epsilon (Gao et al.)."""
    normalize_grad: bool = True
    """Divide the whole gradient by its global norm before every Adam step (then ``grad_clip`` is moot).

    Why (analyses/README.md, bench_sae): the loss is variance-normalised, its gradient norm falls ~15x
    over a short run as the reconstruction improves, and Adam (beta2 0.999, a second-moment memory of
    ~1000 steps) keeps dividing by the large early gradients, so its steps shrink with the gradient: an
    unintended learning-rate decay. Normalising removes it. SAELens does the same in effect: its loss is
    the raw MSE, whose gradient norm is far above 1, so its clip at 1.0 acts on every step. False: the
    old behaviour (clip at ``grad_clip`` only)."""
    grad_clip: float | None = 1.0
    """Max global grad norm when ``normalize_grad`` is off (None: no clipping)."""
    b_dec_init: Literal["geometric_median", "mean", "zero"] = "geometric_median"
    """How b_dec (b_pre) is initialised from the first batch."""
    init_tokens: int = 8192
    """At most this many tokens of the first batch feed the b_dec initialisation."""
    log_every: int = 25
    """Steps between metrics.jsonl lines."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end, when an output folder is given)."""
    seed: int = 0
    """Seed of the SAE initialisation and any training randomness."""
    device: str = "cpu"
    """Training device."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise WorkbenchError("train.steps must be >= 1")
        if not 0 <= self.decay_frac <= 1:
            raise WorkbenchError("train.decay_frac must be in [0, 1]")


@dataclasses.dataclass
class TrainResult:
    """What a training run did."""

    steps: int
    tokens: int
    seconds: float
    tokens_per_s: float
    last: dict
    out: Path | None = None


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Warm-up, constant, then linear decay to 0 over the last ``decay_frac`` of the steps (the training
    core's schedule, :func:`workbench.training.schedule.lr_multiplier`)."""
    from ..training.schedule import lr_multiplier

    return lr_multiplier(
        step,
        cfg.steps,
        warmup=cfg.warmup_steps,
        kind="linear" if cfg.decay_frac > 0 else "constant",
        decay_start=int(cfg.steps * (1 - cfg.decay_frac)),
    )


def _aux_fn(sae: SparseAutoencoder) -> Callable | None:
    if sae.cfg.aux == "none" or sae.arch_name == "relu":
        return None
    fn, coeff = AUX_LOSSES[sae.cfg.aux], sae.cfg.aux_coeff

    def aux(*a):
        return coeff * fn(*a)

    return aux


def train(
    sae: SparseAutoencoder,
    batches: Iterable[torch.Tensor] | Callable[[int], Iterable[torch.Tensor]],
    cfg: TrainConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``sae`` in place on ``batches`` (``[n, d_in]`` tensors).

    ``batches`` may be a callable taking the start step (so that a resumed run can skip the batches
    already seen, e.g. ``lambda s: store.batches(4096, seed=0, skip=s)``).
    """
    from tqdm.auto import tqdm

    from ..io import append_jsonl

    out = Path(out) if out is not None else None
    torch.manual_seed(cfg.seed)
    sae.to(cfg.device).train()
    opt = torch.optim.Adam(
        sae.parameters(), lr=cfg.lr or auto_lr(sae.cfg.d_sae), betas=cfg.betas, eps=cfg.eps
    )
    base_lr = opt.param_groups[0]["lr"]
    start, tokens = 0, 0
    if resume and out is not None and (out / "checkpoint" / "latest").is_file():
        start, tokens = load_checkpoint(sae, opt, out / "checkpoint")
        log.info("resumed from step %d", start)
    it: Iterator = iter(batches(start) if callable(batches) else batches)
    aux = _aux_fn(sae)
    last: dict = {}
    t0, t_tokens = time.perf_counter(), 0
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc=f"sae {sae.arch_name}", unit="step")
    for step in range(start, cfg.steps):
        try:
            x = next(it).to(cfg.device, torch.float32)
        except StopIteration:
            raise WorkbenchError(
                f"the activation batches ran out at step {step}; collect more tokens or lower train.steps"
            ) from None
        if step == 0:
            sae.init_b_dec(x[: cfg.init_tokens], cfg.b_dec_init)
        for g in opt.param_groups:
            g["lr"] = base_lr * lr_factor(step, cfg)
        res = train_step(sae, opt, x, aux, step, cfg)
        tokens += x.shape[0]
        t_tokens += x.shape[0]
        bar.update(1)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            last = _log_row(sae, res, step, tokens, opt.param_groups[0]["lr"])
            bar.set_postfix(fvu=f"{last['fvu']:.3f}", l0=f"{last['l0']:.1f}")
            if out is not None:
                append_jsonl(out / "metrics.jsonl", last)
        if out is not None and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
            save_checkpoint(sae, opt, out / "checkpoint", step + 1, tokens)
    bar.close()
    seconds = time.perf_counter() - t0
    if out is not None:
        save_checkpoint(sae, opt, out / "checkpoint", cfg.steps, tokens)
        sae.save(out)
    sae.eval()
    return TrainResult(cfg.steps, tokens, seconds, t_tokens / max(seconds, 1e-9), last, out)


def train_step(
    sae: SparseAutoencoder,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    aux: Callable | None,
    step: int,
    cfg: TrainConfig,
):
    """One optimiser step with the Gao et al. decoder constraint; updates dead-latent counts and thresholds."""
    res = sae(x, step_frac=step / cfg.steps, aux=aux)
    if not torch.isfinite(res.loss):
        raise WorkbenchError(f"SAE loss became {float(res.loss)} at step {step}; lower train.lr")
    opt.zero_grad(set_to_none=True)
    res.loss.backward()
    if sae.unit_norm_decoder:
        sae.remove_parallel_grad()
    if cfg.normalize_grad:
        grads = [p.grad for p in sae.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads).clamp_min(1e-30)
        for g in grads:
            g.div_(norm)
    elif cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
    opt.step()
    if sae.unit_norm_decoder:
        sae.normalize_decoder()
    with torch.no_grad():
        sae.track_dead(res.codes)
        sae.after_step(res.codes, res.pre)
    return res


def _log_row(sae: SparseAutoencoder, res, step: int, tokens: int, lr: float) -> dict:
    row = {"step": step + 1, "tokens": tokens, "lr": lr, "loss": float(res.loss.detach())}
    row.update({k: float(v.detach()) for k, v in res.losses.items()})
    row["fvu"] = float(
        res.losses["mse"].detach()
    )  # the batch FVU: the MSE is normalised by the batch variance
    row["l0"] = float(res.codes.l0().mean())
    row["dead_frac"] = float(sae.dead_mask().float().mean())
    return row


def save_checkpoint(
    sae: SparseAutoencoder, opt: torch.optim.Optimizer, folder: Path, step: int, tokens: int
) -> None:
    """SAE state, Adam moments, RNG and the step / token counters in the training core's checkpoint format
    (:mod:`workbench.training.checkpoint`: safetensors + JSON, atomic step folders)."""
    from ..training.checkpoint import save_checkpoint as save

    state = {"step": step, "tokens": tokens, "lr": opt.param_groups[0]["lr"]}
    save(folder, step, dict(sae.state_dict()), opt, sae.named_parameters(), state)


def load_checkpoint(sae: SparseAutoencoder, opt: torch.optim.Optimizer, folder: Path) -> tuple[int, int]:
    """Restore what :func:`save_checkpoint` wrote last; returns ``(step, tokens)``."""
    from ..training.checkpoint import latest_checkpoint
    from ..training.checkpoint import load_checkpoint as load

    path = latest_checkpoint(folder)
    if path is None:
        raise WorkbenchError(f"{folder}: no complete checkpoint to resume from; drop --resume")
    tensors, state = load(path, opt, sae.named_parameters())
    sae.load_state_dict(tensors)
    return int(state["step"]), int(state["tokens"])


@dataclasses.dataclass
class RunConfig:
    """A training run: the SAE and the optimisation (the YAML that ``workbench sae train`` reads)."""

    sae: SAEConfig = dataclasses.field(default_factory=SAEConfig)
    """Architecture settings (d_in is taken from the activation store)."""
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    """Optimisation settings."""
    eval_tokens: int = 16_384
    """Tokens of the store scored for the final reconstruction metrics."""
