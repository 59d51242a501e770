"""``alphaedit``: null-space constrained editing (Fang et al. 2025, "AlphaEdit", ICLR).

MEMIT's loop (:func:`workbench.editing.memit.spread`) with the update projected on the null space of the
preserved keys. P_l = U₀U₀ᵀ, where U₀ are the eigenvectors of C_l whose eigenvalues are below
``nullspace_threshold``; so ``ΔW K₀ ≈ 0`` for the keys the statistics saw. With K_p the keys of earlier
edits (the cache of sequential editing), as jianghoucheng/AlphaEdit ``AlphaEdit/AlphaEdit_main.py``::

    ΔW_lᵀ = (P (K Kᵀ + K_p K_pᵀ) + l2·I)⁻¹ P K Rᵀ

The solution lies in the range of P (``l2·X = P(…)``), hence the orthogonality. After a batch, its keys
(recomputed on the edited model) join K_p. The state (P and K_p K_pᵀ per layer) comes back in the result:
pass it as ``state=`` to the next call to edit sequentially.
"""

from __future__ import annotations

import dataclasses

import torch

from ..errors import WorkbenchError
from ._base import EditContext, Editor, EditOutcome, register
from .config import AlphaEditConfig
from .memit import layer_keys, spread
from .targets import subject_units


@dataclasses.dataclass
class AlphaEditState:
    """Null-space projections and the cache of earlier edits' keys, per layer."""

    layers: list[int]
    projection: dict[int, torch.Tensor]
    """P_l, ``[d_in, d_in]`` float64."""
    cache: dict[int, torch.Tensor]
    """Σ k kᵀ over the keys of every earlier edit, ``[d_in, d_in]`` float64."""
    edits: int = 0
    """Requests edited so far."""
    null_dims: dict[int, int] = dataclasses.field(default_factory=dict)
    """Dimension of each layer's null space."""


def null_projection(
    C: torch.Tensor, threshold: float, relative: bool, layer: int
) -> tuple[torch.Tensor, int]:
    """P = U₀U₀ᵀ over the eigenvectors of ``C`` with eigenvalue below the threshold, and its rank."""
    vals, vecs = torch.linalg.eigh(C.double())
    cut = threshold * float(vals.max()) if relative else threshold
    null = vecs[:, vals < cut]
    if null.shape[1] == 0:
        raise WorkbenchError(
            f"alphaedit: no eigenvalue of C at layer {layer} is below {cut:.3g} (smallest {float(vals.min()):.3g});"
            " the null space is empty, so no update is possible; raise nullspace_threshold or set "
            "nullspace_relative=True"
        )
    return null @ null.T, int(null.shape[1])


def initial_state(ctx: EditContext) -> AlphaEditState:
    """P from the statistics and an empty cache."""
    cfg = ctx.config
    C = ctx.stats(ctx.layers)
    proj, dims = {}, {}
    for layer in ctx.layers:
        proj[layer], dims[layer] = null_projection(
            C[layer], cfg.nullspace_threshold, cfg.nullspace_relative, layer
        )
    cache = {layer: torch.zeros_like(proj[layer]) for layer in ctx.layers}
    return AlphaEditState(list(ctx.layers), proj, cache, 0, dims)


@register("alphaedit")
class AlphaEdit(Editor):
    """MEMIT's spread with null-space projection; sequential through the returned state."""

    config_cls = AlphaEditConfig
    grouped_keys = True
    trace_layers = "block"

    def apply(self, ctx: EditContext) -> EditOutcome:
        state = ctx.state if ctx.state is not None else initial_state(ctx)
        if not isinstance(state, AlphaEditState):
            raise WorkbenchError(
                f"alphaedit: state= must come from an earlier alphaedit result, not {type(state).__name__}"
            )
        if list(state.layers) != list(ctx.layers):
            raise WorkbenchError(
                f"alphaedit: the state is for layers {state.layers}, this call edits {ctx.layers}; keep the layers"
            )
        l2 = ctx.config.l2

        def solve(layer: int, K: torch.Tensor, resid: torch.Tensor) -> torch.Tensor:
            P, Kc = state.projection[layer], K.double().T
            A = P @ (Kc @ Kc.T + state.cache[layer]) + l2 * torch.eye(P.shape[0], dtype=P.dtype)
            return torch.linalg.solve(A, P @ Kc @ resid.double()).T

        prob, keys, values = spread(ctx, solve)
        heads = [ctx.requests[u[0]] for u in subject_units(ctx.requests, ctx.config.fact_token)]
        for layer in ctx.layers:
            Kc = layer_keys(ctx, layer, heads).double().T
            state.cache[layer] = state.cache[layer] + Kc @ Kc.T
        state.edits += len(ctx.requests)
        info = {"null_dims": dict(state.null_dims), "edits_so_far": state.edits}
        return EditOutcome(target_prob=prob, state=state, info=info, keys=keys, values=values)
