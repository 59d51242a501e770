"""Attribution patching (AtP): a first-order estimate of the whole patching grid.

Nanda 2023 ("Attribution patching"), Kramár et al. 2024 ("AtP*"): the effect of writing the source
activation ``a_src`` into the target run at one cell is approximated by
``(a_src - a_tgt) · ∂metric/∂a |_tgt``, summed over the cell's vector (over ``d_head`` for one head).
Cost: one forward on the source prompt, one forward and one backward on the target prompt, whatever the
grid size. The estimate is returned in the same form as :func:`workbench.tracing.patch` (target metric
plus the estimated change) so the two compare cell by cell.

The backward is ``torch.autograd.grad`` to the captured activations (``h.capture(site, grad=True)``
keeps the live tensors), so parameter ``.grad`` fields are never touched; the embedding output is made a
leaf that requires grad so this also works on a frozen model.
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import make_config
from .config import PatchConfig
from .patching import metric_values, prepare, site_kinds, site_name
from .restore import last_logits
from .result import PatchResult


def attribution_patch(
    lm: Any, clean: Any, corrupted: Any, config: PatchConfig | None = None, **overrides: Any
) -> PatchResult:
    """AtP estimate of :func:`workbench.tracing.patch` over the same grid (same settings)."""
    from ..hooks import run_with_cache

    cfg = make_config(PatchConfig, config, overrides)
    sites, metric, answers, direction = cfg.sites, cfg.metric, cfg.answers, cfg.direction
    kinds = site_kinds(sites)
    inp = prepare(lm, clean, corrupted, metric, answers)
    src, tgt = (inp.clean, inp.corrupted) if direction == "denoise" else (inp.corrupted, inp.clean)
    L, H = lm.n_layers, lm.n_heads
    names = sorted({site_name(lm, k, l) for k in kinds for l in range(L)})
    _, cache = run_with_cache(lm, {"input_ids": src}, names)
    with lm.hooks() as h, torch.enable_grad():
        h.edit("embed", lambda x: x.detach().requires_grad_(True))
        caps = {n: h.capture(n, grad=True) for n in names}
        value = metric_values(last_logits(lm, tgt), metric, inp.answers).sum()
        acts = [caps[n].value for n in names]
        grads = torch.autograd.grad(value, acts, allow_unused=True)
    scores = {}
    base = inp.corrupted_metric if direction == "denoise" else inp.clean_metric
    for kind in kinds:
        rows = []
        for layer in range(L):
            name = site_name(lm, kind, layer)
            i = names.index(name)
            g = grads[i] if grads[i] is not None else torch.zeros_like(acts[i])
            delta = (cache[name].to(acts[i].dtype) - acts[i].detach()) * g
            delta = delta[0].float()  # [T, d]
            if kind == "heads":
                delta = delta.view(delta.shape[0], H, -1)
            rows.append(delta.sum(-1))
        scores[kind] = (base + torch.stack(rows)).detach().cpu()
    return PatchResult(
        scores=scores,
        clean=inp.clean_metric,
        corrupted=inp.corrupted_metric,
        metric=metric,
        direction=direction,
        tokens=inp.tokens,
        method="atp",
        answers=inp.answers,
    )
