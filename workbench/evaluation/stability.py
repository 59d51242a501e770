"""Training-stability proxies from Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer
training instabilities" (arXiv:2309.14322).

- **Attention logits** (their §3.1): ``max |q·k| / √d_h`` per layer and head, with q and k as the model
  computes them: the hook engine's ``layers.{i}.attn.q|k`` sites (after the projections and qk-norm,
  before RoPE), then the model's own rotary embedding (``model.model.rotary_emb`` and the family's
  ``apply_rotary_pos_emb``), grouped-query heads repeated, the causal (and sliding-window) mask and the
  padding mask respected, computed in chunks over keys so long inputs never build a full T×T matrix.
- **Output logits** (§3.2): mean and max of ``log Z = logsumexp(logits)`` over tokens and the mean logit;
  the drift of either across training is what z-loss (``1e-4·log²Z``, PaLM) prevents.
- **Optimizer diagnostics** (§3.4): per parameter group the gradient RMS, the AdamW update RMS
  ``m̂ / (√v̂ + ε)`` and the fraction of entries whose ``√v̂`` is below ε (when the gradient RMS reaches
  the scale of ε the update shrinks: the paper's "AdamW epsilon" instability).
- **LR sensitivity** (§2.2): ``E_η[min(ℓ(η), ℓ₀) − ℓ*]`` over a learning-rate sweep, ℓ₀ the loss at
  initialisation and ℓ* the best loss of the sweep; diverged runs (NaN/inf) count as ℓ₀.

The sweep runner that trains organism-architecture models lives beside its analysis, in
``analyses/stability_sweep.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
from collections.abc import Mapping, Sequence

import torch

from ..errors import WorkbenchError


@dataclasses.dataclass(frozen=True)
class LogitStats:
    """Output-logit statistics over the non-padding tokens of a batch."""

    mean_log_z: float
    max_log_z: float
    mean_logit: float


@dataclasses.dataclass
class StabilityResult:
    """Attention-logit maxima ``[n_layers, n_heads]`` and output-logit statistics of one model."""

    attn_logit_max: torch.Tensor
    logits: LogitStats

    def metrics(self) -> dict[str, float | list[float]]:
        """A flat dict for ``metrics.json``."""
        per_layer = self.attn_logit_max.amax(dim=1).tolist()
        return {
            "max_attn_logit": float(self.attn_logit_max.max()),
            "max_attn_logit_per_layer": per_layer,
            "mean_log_z": self.logits.mean_log_z,
            "max_log_z": self.logits.max_log_z,
            "mean_logit": self.logits.mean_logit,
        }


def _batch(lm, inputs) -> dict[str, torch.Tensor]:
    if isinstance(inputs, (str, list, tuple)):
        return lm.tokenize(list(inputs) if not isinstance(inputs, str) else [inputs], padding_side="right")
    batch = {k: v.to(lm.device) for k, v in dict(inputs).items()}
    batch.setdefault("attention_mask", torch.ones_like(batch["input_ids"]))
    return batch


def _rope(lm, layer: int, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
    """Apply the model's own rotary embedding (``q``/``k``: [B, H, T, dh])."""
    model = lm.model
    base = getattr(model, "model", None)
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None:
        raise WorkbenchError(
            f"the {lm.family} model has no model.rotary_emb; attention-logit probes need RoPE models"
        )
    kwargs = {}
    layer_types = getattr(model.config, "layer_types", None)
    if layer_types and "layer_type" in inspect.signature(rotary.forward).parameters:
        kwargs["layer_type"] = layer_types[layer]
    cos, sin = rotary(q, positions, **kwargs)
    apply = getattr(sys.modules[type(model).__module__], "apply_rotary_pos_emb", None)
    if apply is None:
        raise WorkbenchError(f"{type(model).__module__} has no apply_rotary_pos_emb; unsupported family")
    return apply(q, k, cos, sin)


def _window(lm, layer: int) -> int | None:
    cfg = lm.model.config
    types = getattr(cfg, "layer_types", None)
    if types and types[layer] == "sliding_attention":
        return getattr(cfg, "sliding_window", None)
    return None


def _heads(x: torch.Tensor, d_head: int) -> torch.Tensor:
    b, t, _ = x.shape
    return x.view(b, t, -1, d_head).transpose(1, 2)


def attention_logit_max_from_qk(
    q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, *, key_chunk: int = 256, window: int | None = None
) -> torch.Tensor:
    """``max |q·k|/√d_h`` per head over causal (query ≥ key), unpadded pairs; q: [B,H,T,dh], k: [B,Hkv,T,dh]."""
    n_heads, n_kv, t, dh = q.shape[1], k.shape[1], q.shape[2], q.shape[3]
    if n_heads % n_kv:
        raise WorkbenchError(f"{n_heads} query heads are not a multiple of {n_kv} key heads")
    k = k.repeat_interleave(n_heads // n_kv, dim=1)  # GQA: query head h reads key head h // group
    q, k = q.float(), k.float()
    valid = mask.bool()
    best = torch.zeros(n_heads, dtype=torch.float32, device=q.device)
    qpos = torch.arange(t, device=q.device)[:, None]
    for start in range(0, t, key_chunk):
        kc = k[:, :, start : start + key_chunk]
        kpos = torch.arange(start, start + kc.shape[2], device=q.device)[None, :]
        allowed = kpos <= qpos
        if window is not None:
            allowed &= (qpos - kpos) < window
        pair = allowed[None] & valid[:, :, None] & valid[:, None, start : start + kc.shape[2]]  # [B, T, C]
        scores = torch.einsum("bhqd,bhkd->bhqk", q, kc).abs() / math.sqrt(dh)
        scores = scores.masked_fill(~pair[:, None], 0.0)
        best = torch.maximum(best, scores.amax(dim=(0, 2, 3)))
    return best


@torch.no_grad()
def attention_logit_max(lm, inputs, *, key_chunk: int = 256) -> torch.Tensor:
    """``[n_layers, n_heads]`` maxima of ``|q·k|/√d_h`` on ``inputs`` (texts or a tokenized batch)."""
    batch = _batch(lm, inputs)
    n = lm.n_layers
    with lm.hooks() as h:
        caps = [(h.capture(f"layers.{i}.attn.q"), h.capture(f"layers.{i}.attn.k")) for i in range(n)]
        lm.model(**batch)
    mask = batch["attention_mask"]
    positions = torch.arange(mask.shape[1], device=mask.device)[None].expand(mask.shape[0], -1)
    clip = getattr(lm.model.config, "clip_qkv", None)  # OLMo-1 clamps q/k after the projection
    rows = []
    for i, (qc, kc) in enumerate(caps):
        q, k = _heads(qc.value, lm.d_head), _heads(kc.value, lm.d_head)
        if clip is not None:
            q, k = q.clamp(-clip, clip), k.clamp(-clip, clip)
        q, k = _rope(lm, i, q, k, positions)
        rows.append(attention_logit_max_from_qk(q, k, mask, key_chunk=key_chunk, window=_window(lm, i)))
    return torch.stack(rows).cpu()


def logit_stats_from(logits: torch.Tensor, mask: torch.Tensor | None = None) -> LogitStats:
    """Mean/max ``log Z`` and the mean logit over the positions where ``mask`` is 1."""
    logits = logits.float()
    log_z = torch.logsumexp(logits, dim=-1)
    keep = torch.ones_like(log_z, dtype=torch.bool) if mask is None else mask.bool()
    lz = log_z[keep]
    return LogitStats(float(lz.mean()), float(lz.max()), float(logits[keep].mean()))


@torch.no_grad()
def logit_stats(lm, inputs) -> LogitStats:
    """Output-logit statistics of ``lm`` on ``inputs`` (texts or a tokenized batch)."""
    batch = _batch(lm, inputs)
    return logit_stats_from(lm.model(**batch).logits, batch["attention_mask"])


def probe(lm, inputs, *, key_chunk: int = 256) -> StabilityResult:
    """Attention-logit maxima and output-logit statistics in one call."""
    return StabilityResult(attention_logit_max(lm, inputs, key_chunk=key_chunk), logit_stats(lm, inputs))


@dataclasses.dataclass(frozen=True)
class GroupDiagnostics:
    """AdamW diagnostics of one parameter group (Wortsman et al. §3.4)."""

    name: str
    grad_rms: float
    update_rms: float
    sqrt_v_rms: float
    frac_below_eps: float
    eps: float


def param_group_name(name: str) -> str:
    """The diagnostic group of a parameter: embed | attn | qk_norm | mlp | norm | lm_head | other."""
    if "embed" in name or "wte" in name:
        return "embed"
    if "q_norm" in name or "k_norm" in name:
        return "qk_norm"
    if "lm_head" in name or "embed_out" in name:
        return "lm_head"
    if "norm" in name or "ln_" in name:
        return "norm"
    if "attn" in name or "attention" in name:
        return "attn"
    if "mlp" in name:
        return "mlp"
    return "other"


@torch.no_grad()
def optimizer_diagnostics(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[GroupDiagnostics]:
    """Gradient RMS, AdamW update RMS and ``√v̂ < ε`` fraction per parameter group; call after ``step()``."""
    settings = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    sums: dict[str, list[float]] = {}
    for name, p in model.named_parameters():
        state = optimizer.state.get(p)
        if p.grad is None or not state or "exp_avg_sq" not in state:
            continue
        g = settings[id(p)]
        (b1, b2), eps, step = g["betas"], g["eps"], float(state["step"])
        m_hat = state["exp_avg"] / (1 - b1**step)
        sqrt_v = (state["exp_avg_sq"] / (1 - b2**step)).sqrt()
        upd = m_hat / (sqrt_v + eps)
        acc = sums.setdefault(param_group_name(name), [0.0] * 6)
        for j, val in enumerate(
            (
                p.grad.float().square().sum(),
                upd.square().sum(),
                sqrt_v.square().sum(),
                (sqrt_v < eps).sum(),
                p.numel(),
                eps,
            )
        ):
            acc[j] = float(val) if j == 5 else acc[j] + float(val)
    return [
        GroupDiagnostics(
            k, math.sqrt(a[0] / a[4]), math.sqrt(a[1] / a[4]), math.sqrt(a[2] / a[4]), a[3] / a[4], a[5]
        )
        for k, a in sorted(sums.items())
    ]


def lr_sensitivity(losses: Mapping[float, float], l0: float, l_star: float | None = None) -> float:
    """``E_η[min(ℓ(η), ℓ₀) − ℓ*]`` over the swept learning rates (Wortsman et al. 2023, §2.2).

    ``losses`` maps each LR to its final loss (NaN/inf = diverged, counted as ℓ₀); ``l_star`` defaults to
    the best finite loss of the sweep.
    """
    if not losses:
        raise WorkbenchError("lr_sensitivity needs at least one (learning rate, loss) pair")
    capped = [min(v, l0) if math.isfinite(v) else l0 for v in losses.values()]
    best = min(capped) if l_star is None else float(l_star)
    return sum(c - best for c in capped) / len(capped)


def z_loss(logits: torch.Tensor, coef: float = 1e-4, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The z-loss ``coef · log²Z`` averaged over tokens (PaLM; Wortsman et al. use ``coef = 1e-4``)."""
    lz = torch.logsumexp(logits.float(), dim=-1).square()
    if mask is None:
        return coef * lz.mean()
    m = mask.to(lz.dtype)
    return coef * (lz * m).sum() / m.sum().clamp(min=1)


def sample_texts(texts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """A seeded sample of at most ``n`` texts (the probe inputs of the eval suite)."""
    import random

    texts = list(texts)
    return texts if len(texts) <= n else random.Random(seed).sample(texts, n)
