"""``simnpo``: Simple NPO (Fan et al. 2024, arXiv:2410.07163; open-unlearning SimNPO).

    L = gamma_f * -(2/beta) * E_f log sigmoid(-(beta/|y|) * log pi(y|x) - margin) + alpha * CE_retain

No reference model: the length-normalised NLL replaces NPO's log-ratio. Defaults beta = 4.5, margin
(the paper's gamma, open-unlearning's delta) = 0, forget weight 0.125 and retain weight 1 as in
open-unlearning's SimNPO config.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ._base import Context, LossOutput, Objective, Reference, logits_of, register, sequence_nll, token_mean_ce


@dataclasses.dataclass
class SimNPOParams:
    """SimNPO hyperparameters."""

    beta: float = 4.5
    margin: float = 0.0
    """The paper's gamma (reward margin)."""
    forget_weight: float = 0.125
    retain_weight: float = 1.0


def simnpo_forget_loss(
    nll_sum: torch.Tensor, n_tok: torch.Tensor, beta: float, margin: float
) -> torch.Tensor:
    """-(2/beta) * mean log sigmoid(beta * NLL/|y| - margin) over rows (NLL/|y| = -(1/|y|) log pi)."""
    return -(2.0 / beta) * F.logsigmoid(beta * nll_sum / n_tok.clamp_min(1) - margin).mean()


@register("simnpo")
class SimNPO(Objective):
    """SimNPO on the forget rows plus retain NLL."""

    params_cls = SimNPOParams

    def __call__(self, ctx: Context, batch, ref: Reference | None) -> LossOutput:
        p = self.params
        nll, n = sequence_nll(logits_of(ctx, batch), batch.labels)
        f = batch.is_forget
        forget = simnpo_forget_loss(nll[f], n[f], p.beta, p.margin) if bool(f.any()) else nll.sum() * 0.0
        ce_r = token_mean_ce(nll, n, ~f)
        loss = p.forget_weight * forget + p.retain_weight * ce_r
        parts = {
            "simnpo": float(forget.detach()),
            "forget_ce": float(token_mean_ce(nll.detach(), n, f)),
            "retain_ce": float(ce_r.detach()),
        }
        return LossOutput(loss, parts)
