"""Learning-rate sweeps of small OLMo-2 models, with and without qk-layernorm and z-loss.

Lives beside its analysis (``analyses/stability_proxies.py``): it trains models, which the evaluation
package does not; the probes it records are the library's (:mod:`workbench.evaluation.stability`).

The runner behind the LR-sensitivity experiments of Wortsman et al. 2023 (arXiv:2309.14322, §3.1-3.2,
Fig. 1): train the same architecture for a fixed number of steps at each learning rate (AdamW, linear
warmup then cosine decay to zero), record the final held-out loss, and probe the max attention logit,
``log Z`` and the mean logit along the way.

qk-layernorm is switchable on the OLMo-2 architecture the organism uses: ``"full"`` is OLMo-2's own
RMSNorm over the whole q/k projection, ``"head"`` the paper's per-head norm (RMSNorm over each head's
d_h features), ``"none"`` removes it (identity modules, so the hook sites stay where they are).
z-loss adds ``coef · log²Z`` to the loss (the paper uses 1e-4).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.evaluation.stability import (
    attention_logit_max,
    logit_stats_from,
    lr_sensitivity,
    optimizer_diagnostics,
    z_loss,
)
from workbench.training.olmo2 import olmo2_config
from workbench.training.schedule import lr_multiplier

log = logging.getLogger(__name__)
QK_NORMS = ("none", "full", "head")


@dataclasses.dataclass(frozen=True)
class SweepSetting:
    """One architecture/loss variant of the sweep."""

    name: str
    qk_norm: str = "full"
    z_loss: float = 0.0

    def __post_init__(self) -> None:
        if self.qk_norm not in QK_NORMS:
            raise WorkbenchError(f"qk_norm={self.qk_norm!r}; use one of {', '.join(QK_NORMS)}")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Model size and training schedule of every run in a sweep."""

    d_model: int = 64
    layers: int = 2
    heads: int = 2
    steps: int = 200
    batch: int = 16
    seq_len: int = 64
    warmup_frac: float = 0.1
    weight_decay: float = 0.0
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.95)
    probe_every: int = 20
    eval_rows: int = 16
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """Probes at one training step."""

    step: int
    loss: float
    max_attn_logit: float
    mean_log_z: float
    mean_logit: float
    grad_rms: float
    update_rms: float


@dataclasses.dataclass
class RunTrace:
    """One training run: its setting, LR, final held-out loss and probe history."""

    setting: str
    lr: float
    final_loss: float
    history: list[StepRecord]

    @property
    def diverged(self) -> bool:
        """True when the final loss is not finite."""
        return not math.isfinite(self.final_loss)


@dataclasses.dataclass
class SweepResult:
    """Every run of a sweep and the loss at initialisation (ℓ₀)."""

    runs: list[RunTrace]
    l0: float

    def losses(self, setting: str) -> dict[float, float]:
        """{lr: final loss} of one setting."""
        return {r.lr: r.final_loss for r in self.runs if r.setting == setting}

    def sensitivity(self, setting: str) -> float:
        """LR sensitivity ``E_η[min(ℓ(η), ℓ₀) − ℓ*]`` of one setting (ℓ* its own best loss)."""
        return lr_sensitivity(self.losses(setting), self.l0)

    def settings(self) -> list[str]:
        """Setting names in run order."""
        return list(dict.fromkeys(r.setting for r in self.runs))


class PerHeadRMSNorm(nn.Module):
    """RMSNorm over each head's features of a ``[..., H*d_h]`` projection (Wortsman et al.'s qk-layernorm)."""

    def __init__(self, d_head: int, eps: float = 1e-6):
        super().__init__()
        self.d_head, self.eps = d_head, eps
        self.weight = nn.Parameter(torch.ones(d_head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise every head separately, keeping the flat layout."""
        h = x.view(*x.shape[:-1], -1, self.d_head).float()
        h = h * torch.rsqrt(h.square().mean(-1, keepdim=True) + self.eps)
        return (h * self.weight).to(x.dtype).view_as(x)


def build_model(vocab_size: int, cfg: SweepConfig, qk_norm: str = "full", *, seed: int | None = None):
    """A randomly initialised OLMo-2 (the organism's architecture) with the chosen qk-norm."""
    from transformers import Olmo2ForCausalLM

    torch.manual_seed(cfg.seed if seed is None else seed)
    config = olmo2_config(
        vocab_size=vocab_size,
        hidden=cfg.d_model,
        layers=cfg.layers,
        heads=cfg.heads,
        intermediate=4 * cfg.d_model,
        max_positions=max(cfg.seq_len, 64),
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
    )
    model = Olmo2ForCausalLM(config)
    d_head = cfg.d_model // cfg.heads
    for layer in model.model.layers:
        attn = layer.self_attn
        if qk_norm == "none":
            attn.q_norm, attn.k_norm = nn.Identity(), nn.Identity()
        elif qk_norm == "head":
            attn.q_norm, attn.k_norm = PerHeadRMSNorm(d_head), PerHeadRMSNorm(d_head)
    return model


def pack_tokens(token_lists: Sequence[Sequence[int]], seq_len: int) -> torch.Tensor:
    """Concatenate token lists and cut them into ``[n_rows, seq_len]`` rows (the tail is dropped)."""
    flat = [t for ids in token_lists for t in ids]
    n = len(flat) // seq_len
    if n < 2:
        raise WorkbenchError(
            f"the corpus has {len(flat)} tokens, too few for rows of {seq_len}; use a bigger corpus"
        )
    return torch.tensor(flat[: n * seq_len], dtype=torch.long).view(n, seq_len)


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    return lr_multiplier(step, steps, warmup=warmup, kind="cosine")


def _loss(model, ids: torch.Tensor, z_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(input_ids=ids).logits
    ce = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
    total = ce + (z_loss(logits[:, :-1], z_coef) if z_coef else 0.0)
    return total, logits


@torch.no_grad()
def _eval_loss(model, rows: torch.Tensor) -> float:
    return float(_loss(model, rows, 0.0)[0])


def _probe(model, probe_ids: torch.Tensor, step: int, loss: float, diag) -> StepRecord:
    from workbench.models import wrap

    lm = wrap(model)
    with torch.no_grad():
        attn = float(attention_logit_max(lm, {"input_ids": probe_ids}).max())
        stats = logit_stats_from(model(input_ids=probe_ids).logits)
    n = sum(1 for _ in diag) or 1
    grad = math.sqrt(sum(d.grad_rms**2 for d in diag) / n)
    upd = math.sqrt(sum(d.update_rms**2 for d in diag) / n)
    return StepRecord(step, loss, attn, stats.mean_log_z, stats.mean_logit, grad, upd)


def train_run(
    rows: torch.Tensor,
    eval_rows: torch.Tensor,
    vocab_size: int,
    setting: SweepSetting,
    lr: float,
    cfg: SweepConfig,
) -> RunTrace:
    """Train one model at learning rate ``lr``; returns its final held-out loss and probe history."""
    model = build_model(vocab_size, cfg, setting.qk_norm)
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    warmup = max(1, int(cfg.warmup_frac * cfg.steps))
    probe_ids = eval_rows[:4]
    history: list[StepRecord] = []
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr * _lr_factor(step, cfg.steps, warmup)
        batch = rows[torch.randint(len(rows), (cfg.batch,), generator=gen)]
        loss, _ = _loss(model, batch, setting.z_loss)
        if not torch.isfinite(loss):
            log.info("%s lr=%g diverged at step %d", setting.name, lr, step)
            return RunTrace(setting.name, lr, math.nan, history)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.probe_every == 0 or step == cfg.steps - 1:
            model.eval()
            history.append(_probe(model, probe_ids, step, loss.item(), optimizer_diagnostics(model, opt)))
            model.train()
    model.eval()
    return RunTrace(setting.name, lr, _eval_loss(model, eval_rows), history)


def lr_sweep(
    rows: torch.Tensor,
    vocab_size: int,
    settings: Sequence[SweepSetting],
    lrs: Sequence[float],
    cfg: SweepConfig = SweepConfig(),
    *,
    progress: bool = False,
) -> SweepResult:
    """Train every (setting, lr) pair on ``rows`` ([n, seq_len] token ids; the last ``eval_rows`` held out)."""
    from tqdm.auto import tqdm

    if len(rows) <= cfg.eval_rows:
        raise WorkbenchError(f"{len(rows)} token rows; need more than eval_rows={cfg.eval_rows} for training")
    train, held = rows[: -cfg.eval_rows], rows[-cfg.eval_rows :]
    l0 = _eval_loss(build_model(vocab_size, cfg, "full").eval(), held)
    runs = []
    pairs = [(s, lr) for s in settings for lr in lrs]
    for setting, lr in tqdm(pairs, desc="lr sweep", disable=not progress):
        runs.append(train_run(train, held, vocab_size, setting, lr, cfg))
        log.info("%s lr=%g final loss %.4f", setting.name, lr, runs[-1].final_loss)
    return SweepResult(runs, l0)
