"""``grad_ascent``: maximise the forget CE, L = -CE_forget (Jang et al. 2023; open-unlearning GradAscent).

No retain term and no guard, as published: the baseline that usually collapses utility.
"""

from __future__ import annotations

import dataclasses

from ._base import Context, LossOutput, Objective, Reference, logits_of, register, sequence_nll, token_mean_ce


@dataclasses.dataclass
class GradAscentParams:
    """No hyperparameters."""


@register("grad_ascent")
class GradAscent(Objective):
    """L = -CE_forget (token mean)."""

    params_cls = GradAscentParams

    def __call__(self, ctx: Context, batch, ref: Reference | None) -> LossOutput:
        nll, n = sequence_nll(logits_of(ctx, batch), batch.labels)
        ce_f = token_mean_ce(nll, n, batch.is_forget)
        ce_r = token_mean_ce(nll.detach(), n, ~batch.is_forget)
        return LossOutput(-ce_f, {"forget_ce": float(ce_f.detach()), "retain_ce": float(ce_r)})
