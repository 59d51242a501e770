"""``rome``: Rank-One Model Editing (Meng et al. 2022, "Locating and Editing Factual Associations in GPT").

For one request and one layer, with k̄ the key averaged over the contexts, k_b the bare prompt's key and
δ the optimised change of the down projection's output (:mod:`workbench.editing.targets`)::

    u  = C⁻¹ k̄                     (k̄ without mom2_adjustment)
    ΔW = δ uᵀ / (uᵀ k_b)            so that  W' k_b = W k_b + δ = v*

This is kmeng01/rome's ``compute_u`` / ``compute_v`` (the right vector ``(v* - W k_b) / (k_b · u)``; the
paper's eq. 2 writes k* for both keys). Requests are applied one after another, each on the model that
the previous ones edited, and with several layers, one layer after another (``rome/rome_main.py``).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..errors import WorkbenchError
from ._base import EditContext, Editor, EditOutcome, register
from .config import ROMEConfig
from .keys import at_subject, average, context_rows
from .targets import optimise_targets
from .weights import add_delta, down_proj


def solve_psd(C: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``C⁻¹ b`` in float64, with a ridge of 1e-10·mean(diag C) so that a rank-deficient C still solves."""
    C = C.double()
    ridge = 1e-10 * float(C.diagonal().mean().clamp_min(1e-30))
    return torch.linalg.solve(C + ridge * torch.eye(C.shape[0], dtype=C.dtype), b.double())


def rank_one_update(u: torch.Tensor, k: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``ΔW = δ uᵀ / (uᵀ k)`` (``[out, in]``, float64): maps ``k`` to ``W k + δ`` and is rank one."""
    denom = float(u.double() @ k.double())
    if abs(denom) < 1e-12 * float(u.norm() * k.norm() + 1e-30):
        raise WorkbenchError(
            "ROME: the whitened key is orthogonal to the prompt's key (uᵀk ≈ 0); the statistics do not fit "
            "this model; recompute them or set mom2_adjustment=False"
        )
    return torch.outer(delta.double(), u.double()) / denom


@register("rome")
class ROME(Editor):
    """One rank-one update per request and layer, requests in sequence."""

    config_cls = ROMEConfig
    grouped_keys = False
    trace_layers = "top"

    def apply(self, ctx: EditContext) -> EditOutcome:
        lm, cfg = ctx.lm, ctx.config
        C = ctx.stats(ctx.layers) if cfg.mom2_adjustment else {}
        probs: list[float] = []
        keys: dict[int, list] = {layer: [] for layer in ctx.layers}
        values: dict[int, list] = {layer: [] for layer in ctx.layers}
        bar = tqdm(ctx.requests, desc="rome", disable=not ctx.progress or len(ctx.requests) < 2, leave=False)
        for req in bar:
            for layer in ctx.layers:
                dp = down_proj(lm, layer)
                rows = context_rows(lm.tokenizer, [req], ctx.prefixes, cfg.fact_token)
                site = f"layers.{layer}.mlp.hidden"
                acts = at_subject(lm, rows, [site])[site]
                k_bar = average(acts, rows, 1, grouped=False)[0]
                u = solve_psd(C[layer], k_bar) if cfg.mom2_adjustment else k_bar
                u = u / u.norm()
                t = optimise_targets(lm, [req], dp.output_site, ctx.prefixes, cfg)
                add_delta(lm, dp, rank_one_update(u, acts[0], t.delta[0]))
                keys[layer].append(acts[0])
                values[layer].append(t.value[0])
            probs.append(t.prob[0])
        stack = {layer: torch.stack(v) for layer, v in keys.items()}
        return EditOutcome(
            target_prob=probs, keys=stack, values={k: torch.stack(v) for k, v in values.items()}
        )
