"""``grad_diff``: L = -gamma * CE_forget + alpha * CE_retain (Liu et al. 2022; open-unlearning GradDiff,
gamma = alpha = 1, retain loss NLL)."""

from __future__ import annotations

import dataclasses

from ._base import Context, LossOutput, Objective, Reference, logits_of, register, sequence_nll, token_mean_ce


@dataclasses.dataclass
class GradDiffParams:
    """Weights of the two terms (open-unlearning defaults)."""

    gamma: float = 1.0
    """Forget-ascent weight."""
    alpha: float = 1.0
    """Retain NLL weight."""


@register("grad_diff")
class GradDiff(Objective):
    """Forget ascent plus retain descent, fixed weights."""

    params_cls = GradDiffParams

    def __call__(self, ctx: Context, batch, ref: Reference | None) -> LossOutput:
        nll, n = sequence_nll(logits_of(ctx, batch), batch.labels)
        ce_f = token_mean_ce(nll, n, batch.is_forget)
        ce_r = token_mean_ce(nll, n, ~batch.is_forget)
        loss = -self.params.gamma * ce_f + self.params.alpha * ce_r
        return LossOutput(loss, {"forget_ce": float(ce_f.detach()), "retain_ce": float(ce_r.detach())})
