"""``memit``: Mass-Editing Memory in a Transformer (Meng et al. 2023), a batch of edits over several layers.

The target is set once at the residual after the last edited layer: z = h_L + δ per request
(:mod:`workbench.editing.targets`). Then, for each layer l in order, on the model as edited so far
(kmeng01/memit ``memit/memit_main.py``)::

    K = keys at l (mean over context groups)           [d_in, R]
    R = (z - h_L now) / (layers left, l included)        the residual, spread over the remaining layers
    ΔW_l = R Kᵀ (λ C_l + K Kᵀ)⁻¹                         solved in float64, λ = mom2_update_weight

On post-norm families (OLMo-2/3) the MLP writes ``norm(x)`` into the residual; the wanted residual change
is mapped to a change of the down projection's output ``x`` first
(:func:`workbench.editing.weights.residual_to_output`). :func:`spread` is the loop, shared with AlphaEdit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ._base import EditContext, Editor, EditOutcome, register
from .config import MEMITConfig
from .keys import at_subject, average, bare_rows, context_rows
from .requests import EditRequest
from .targets import optimise_targets, subject_units
from .weights import add_delta, down_proj, post_norm_module, residual_to_output

Solve = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""``solve(layer, K [R, d_in], resid [R, d_out]) -> ΔW [d_out, d_in]`` (float64)."""


def layer_keys(ctx: EditContext, layer: int, requests: Sequence[EditRequest] | None = None) -> torch.Tensor:
    """``[R, d_in]`` keys of ``requests`` (default: all) at ``layer`` on the current model (group means)."""
    requests = ctx.requests if requests is None else requests
    rows = context_rows(ctx.lm.tokenizer, requests, ctx.prefixes, ctx.config.fact_token)
    site = f"layers.{layer}.mlp.hidden"
    return average(at_subject(ctx.lm, rows, [site])[site], rows, len(requests), grouped=True)


def spread(ctx: EditContext, solve: Solve) -> tuple[list[float], dict, dict]:
    """MEMIT's loop: optimise z at the last layer, then write each layer's share of the residual.

    Requests about one subject form one key-value pair (their keys are identical; one z serves all their
    targets, optimised jointly): two values for one key would otherwise be averaged by the least squares.
    Returns the target probability per request and, per layer, the keys and the down-projection outputs
    aimed at (one row per subject).
    """
    lm, layers, cfg = ctx.lm, ctx.layers, ctx.config
    units = subject_units(ctx.requests, cfg.fact_token)
    heads = [ctx.requests[u[0]] for u in units]
    z_site = f"layers.{layers[-1]}"
    targets = optimise_targets(
        lm, ctx.requests, z_site, ctx.prefixes, cfg, units=units, progress=ctx.progress
    )
    z = targets.value
    bare = bare_rows(lm.tokenizer, heads, cfg.fact_token)
    keys, values = {}, {}
    for i, layer in enumerate(tqdm(layers, desc="layers", disable=not ctx.progress, leave=False)):
        dp = down_proj(lm, layer)
        K = layer_keys(ctx, layer, heads)
        now = at_subject(lm, bare, [z_site, dp.output_site])
        resid = (z - now[z_site]) / (len(layers) - i)
        norm = post_norm_module(lm, layer)
        if norm is not None:
            resid = residual_to_output(norm, now[dp.output_site], resid)
        add_delta(lm, dp, solve(layer, K, resid))
        keys[layer], values[layer] = K, now[dp.output_site] + resid
    prob = [0.0] * len(ctx.requests)
    for u, p in zip(units, targets.prob):
        for i in u:
            prob[i] = p
    return prob, keys, values


@register("memit")
class MEMIT(Editor):
    """All requests in one batch, spread over the layers with λ·C."""

    config_cls = MEMITConfig
    grouped_keys = True
    trace_layers = "block"

    def apply(self, ctx: EditContext) -> EditOutcome:
        C = ctx.stats(ctx.layers)
        lam = ctx.config.mom2_update_weight

        def solve(layer: int, K: torch.Tensor, resid: torch.Tensor) -> torch.Tensor:
            Kc = K.double().T  # [d_in, R]
            adj = torch.linalg.solve(lam * C[layer].double() + Kc @ Kc.T, Kc)  # [d_in, R]
            return resid.double().T @ adj.T

        prob, keys, values = spread(ctx, solve)
        return EditOutcome(target_prob=prob, keys=keys, values=values)
