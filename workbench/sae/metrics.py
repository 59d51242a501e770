"""SAE metrics: reconstruction quality and sparsity on stored activations, and downstream quality with
the SAE spliced into the model through the hook engine (``h.edit(site, fn)``).

Definitions (sums are over every evaluated token, not averages of per-batch ratios):

- ``l0``: mean number of active latents per token.
- ``fvu`` (fraction of variance unexplained) ``= E||x - x_hat||^2 / (E||x||^2 - ||E x||^2)``: the residual
  energy over the total variance of ``x`` (the "corrected" definition: the denominator is the trace of the
  covariance, not ``E||x||^2``). ``explained_variance = 1 - fvu``.
- ``mse``: ``E||x - x_hat||^2 / d_in`` (per element); ``cosine``: mean ``cos(x, x_hat)``; ``l2_ratio``:
  mean ``||x_hat|| / ||x||``.
- per-latent ``density``: fraction of tokens on which it fires; ``dead_frac``: density 0 on the eval set;
  ``dense_frac``: density above ``dense_threshold``; ``log10_density_hist``: histogram of log10 density of
  the live latents.
- spliced (``splice_metrics``), next-token CE averaged over real target tokens, the SAE reconstruction
  replacing the site's activation at every non-BOS, non-padding position:
  ``ce_recovered = (CE_zero_ablation - CE_SAE) / (CE_zero_ablation - CE_clean)``;
  ``kl_score = (KL_zero - KL_SAE) / KL_zero`` with ``KL = KL(p_clean || p_intervened)``;
  ``delta_lm_loss = CE_SAE - CE_clean``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .base import SparseAutoencoder


@dataclasses.dataclass
class ReconstructionMetrics:
    """Reconstruction and sparsity of an SAE on a set of activations."""

    n_tokens: int
    l0: float
    fvu: float
    explained_variance: float
    mse: float
    cosine: float
    l2_ratio: float
    dead_frac: float
    dense_frac: float
    density: torch.Tensor
    log10_density_hist: tuple[list[float], list[int]]

    def summary(self) -> dict:
        """The scalar metrics."""
        return {k: v for k, v in dataclasses.asdict(self).items() if isinstance(v, (int, float))}


@dataclasses.dataclass
class SpliceMetrics:
    """LM quality with the SAE spliced in at its site."""

    n_tokens: int
    ce_clean: float
    ce_sae: float
    ce_zero: float
    ce_recovered: float
    kl_sae: float
    kl_zero: float
    kl_score: float
    delta_lm_loss: float


@torch.no_grad()
def reconstruction_metrics(
    sae: SparseAutoencoder,
    batches: Iterable[torch.Tensor],
    *,
    max_tokens: int | None = None,
    dense_threshold: float = 0.1,
) -> ReconstructionMetrics:
    """Evaluate ``sae`` (inference rule, eval mode) over ``batches`` of ``[n, d_in]`` activations."""
    was_training = sae.training
    sae.eval()
    dev = sae.W_enc.device
    n = 0
    sq_err = sum_sq = cos = ratio = l0 = 0.0
    sum_vec = torch.zeros(sae.cfg.d_in, dtype=torch.float64, device=dev)
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.float64, device=dev)
    for x in batches:
        x = x.to(dev, torch.float32)
        if max_tokens is not None:
            x = x[: max_tokens - n]
        codes = sae.encode_codes(x)
        x_hat = sae.decode_codes(codes)
        sq_err += float((x - x_hat).double().pow(2).sum())
        sum_sq += float(x.double().pow(2).sum())
        sum_vec += x.double().sum(0)
        cos += float(F.cosine_similarity(x, x_hat, dim=-1).double().sum())
        ratio += float((x_hat.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12)).double().sum())
        l0 += float(codes.l0().double().sum())
        live = codes.val != 0
        fires.index_add_(
            0, codes.idx[live].reshape(-1), torch.ones(int(live.sum()), dtype=torch.float64, device=dev)
        )
        n += len(x)
        if max_tokens is not None and n >= max_tokens:
            break
    sae.train(was_training)
    n = max(n, 1)
    total_var = sum_sq / n - float((sum_vec / n).pow(2).sum())
    fvu = (sq_err / n) / max(total_var, 1e-12)
    density = (fires / n).float().cpu()
    return ReconstructionMetrics(
        n_tokens=n,
        l0=l0 / n,
        fvu=fvu,
        explained_variance=1 - fvu,
        mse=sq_err / n / sae.cfg.d_in,
        cosine=cos / n,
        l2_ratio=ratio / n,
        dead_frac=float((density == 0).float().mean()),
        dense_frac=float((density > dense_threshold).float().mean()),
        density=density,
        log10_density_hist=log10_hist(density),
    )


def log10_hist(density: torch.Tensor, bins: int = 40, lo: float = -8.0) -> tuple[list[float], list[int]]:
    """Histogram of log10 density of the live latents: (bin edges, counts)."""
    live = density[density > 0]
    edges = torch.linspace(lo, 0.0, bins + 1)
    counts = (
        torch.histc(live.log10().clamp(lo, 0.0), bins=bins, min=lo, max=0.0)
        if len(live)
        else torch.zeros(bins)
    )
    return edges.tolist(), [int(c) for c in counts]


@torch.no_grad()
def splice_metrics(
    sae: SparseAutoencoder,
    lm: Any,
    site: str | None,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    ctx_len: int = 128,
) -> SpliceMetrics:
    """CE recovered, KL score and delta LM loss with ``sae`` replacing ``site`` (default ``sae.cfg.site``)."""
    from ..errors import WorkbenchError
    from .activations import token_mask

    site = site or sae.cfg.site
    if site is None:
        raise WorkbenchError("the SAE has no site recorded; pass site=")
    was_training = sae.training
    sae.eval().to(lm.device)
    tot = {"n": 0, "ce_clean": 0.0, "ce_sae": 0.0, "ce_zero": 0.0, "kl_sae": 0.0, "kl_zero": 0.0}
    for i in range(0, len(texts), batch_size):
        enc = lm.tokenize(list(texts[i : i + batch_size]), truncation=True, max_length=ctx_len)
        mask = token_mask(lm, enc)
        clean = _logits(lm, enc)
        sae_logits = _logits(
            lm, enc, lambda h, m=mask: h.edit(site, lambda x: _reconstruct(sae, x), positions=m)
        )
        zero_logits = _logits(lm, enc, lambda h, m=mask: h.ablate(site, mode="zero", positions=m))
        valid = enc["attention_mask"][:, 1:].bool()
        labels = enc["input_ids"][:, 1:][valid]
        lp_clean = clean[:, :-1][valid].log_softmax(-1)
        tot["n"] += int(valid.sum())
        tot["ce_clean"] += float(F.nll_loss(lp_clean, labels, reduction="sum"))
        for name, logits in (("sae", sae_logits), ("zero", zero_logits)):
            lp = logits[:, :-1][valid].log_softmax(-1)
            tot[f"ce_{name}"] += float(F.nll_loss(lp, labels, reduction="sum"))
            tot[f"kl_{name}"] += float(F.kl_div(lp, lp_clean, log_target=True, reduction="sum"))
    sae.train(was_training)
    n = max(tot["n"], 1)
    m = {k: v / n for k, v in tot.items() if k != "n"}
    return SpliceMetrics(
        n_tokens=tot["n"],
        **m,
        ce_recovered=(m["ce_zero"] - m["ce_sae"]) / (m["ce_zero"] - m["ce_clean"] or 1e-12),
        kl_score=(m["kl_zero"] - m["kl_sae"]) / (m["kl_zero"] or 1e-12),
        delta_lm_loss=m["ce_sae"] - m["ce_clean"],
    )


def _reconstruct(sae: SparseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1]).to(sae.W_enc.dtype)
    return sae.decode_codes(sae.encode_codes(flat)).reshape(x.shape).to(x.dtype)


def _logits(lm: Any, enc: dict, install=None) -> torch.Tensor:
    with lm.hooks() as h:
        if install is not None:
            install(h)
        out = lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    return out.logits.float()
