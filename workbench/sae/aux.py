"""Auxiliary losses that revive dead and under-used latents (registry ``AUX_LOSSES``).

Both reconstruct the detached residual ``e = x - x_hat`` of the main reconstruction from latents that
the main sparsifier under-uses, with a sparse decode without bias (``e_hat = z_aux W_dec``, ``decode_latents``), and are
normalised by the batch variance like the main loss: ``scale * E||e - e_hat||^2 / E||x - E x||^2``.

- ``aux_k`` (Gao et al. 2024, sec. A.2 / App. B.1): the top ``k_aux`` (default ``d_in // 2``) dead latents
  of each token by pre-activation; dead = not fired for ``dead_tokens`` training tokens. ``scale =
  min(n_dead / k_aux, 1)`` (as EleutherAI sparsify and SAELens do) so a few dead latents do not dominate.
  Exactly zero when no latent is dead.

- ``aux_zipf`` (Ayonrinde 2024, "Adaptive Sparse Allocation with Mutual Choice & Feature Choice Sparse
  Autoencoders": a generalisation of aux_k to dead *and under-used* latents, motivated by feature
  densities following a Zipf law). The paper gives no public code; what we assumed, exactly:

  1. Observed density ``f_i``: the bias-corrected EMA (decay 0.99 per batch) of the fraction of tokens on
     which latent ``i`` fires.
  2. Expected density: rank latents by ``f_i`` (descending, rank ``r = 1..F``) and match rank to rank with
     a Zipf law holding the same total, ``p_r = L0_target * r**-alpha / sum_j j**-alpha`` with
     ``L0_target = k`` and ``alpha = zipf_alpha`` (default 1).
  3. Under-use weight ``w_i = clamp(1 - f_i / p_{r(i)}, 0, 1)``; latents dead in the aux_k sense get
     ``w_i = 1``, so aux_zipf reduces to aux_k when every latent is either dead or at/above its Zipf
     expectation.
  4. Per token, the top ``k_aux`` latents with ``w_i > 0`` by pre-activation contribute
     ``z_i = w_i * ReLU(pre_i)`` to ``e_hat`` (the deficit weights the gradient each latent receives);
     ``scale = min(sum_i w_i / k_aux, 1)``.
  Exactly zero when no latent is below its Zipf-expected density (in particular when none is dead and
  usage already follows the Zipf law or is more even at the tail).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import Codes

AUX_LOSSES: dict[str, Callable] = {}


def register_aux(name: str) -> Callable[[Callable], Callable]:
    """Decorator: make an auxiliary loss available under ``name`` (config ``aux``)."""

    def deco(fn: Callable) -> Callable:
        AUX_LOSSES[name] = fn
        return fn

    return deco


def _residual_loss(sae, x, recon, pre, weights: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Reconstruct ``x - recon`` from the top-k_aux latents with ``weights > 0`` (values scaled by weight)."""
    cand = weights > 0
    n_cand = int(cand.sum())
    if n_cand == 0:
        return pre.new_zeros(())
    k_aux = min(sae.cfg.k_aux or max(1, sae.cfg.d_in // 2), n_cand)
    scale = min(float(weights.sum()) / k_aux, 1.0)
    masked = pre.masked_fill(~cand[None, :], float("-inf"))
    _, idx = masked.topk(k_aux, dim=-1, sorted=False)
    z = sae.entries(x, pre, idx).relu() * weights[idx]
    e_hat = sae.decode_latents(Codes(idx, z, x.shape[0], sae.cfg.d_sae))
    e = (x - recon).detach()
    return scale * (e_hat - e).pow(2).sum(-1).mean() / var


@register_aux("aux_k")
def aux_k(sae, x, recon, pre, codes, var) -> torch.Tensor:
    """Gao et al.'s AuxK: dead latents reconstruct the residual."""
    return _residual_loss(sae, x, recon, pre, sae.dead_mask().to(pre.dtype), var)


def zipf_weights(firing: torch.Tensor, dead: torch.Tensor, k: float, alpha: float) -> torch.Tensor:
    """Under-use weights ``w_i`` in [0, 1] against a rank-matched Zipf law holding ``k`` firings per token."""
    n = firing.numel()
    ranks = torch.arange(1, n + 1, dtype=torch.float64, device=firing.device)
    zipf = ranks**-alpha
    expected_sorted = (k * zipf / zipf.sum()).to(firing.dtype)
    order = firing.argsort(descending=True, stable=True)
    expected = torch.empty_like(firing)
    expected[order] = expected_sorted
    w = (1 - firing / expected).clamp(0, 1)
    return torch.where(dead, torch.ones_like(w), w)


@register_aux("aux_zipf")
def aux_zipf(sae, x, recon, pre, codes, var) -> torch.Tensor:
    """Ayonrinde's aux_zipf (our reading, see the module docstring): dead and under-used latents."""
    w = zipf_weights(sae.firing_rate(), sae.dead_mask(), sae.cfg.k, sae.cfg.zipf_alpha)
    return _residual_loss(sae, x, recon, pre, w.to(pre.dtype), var)
