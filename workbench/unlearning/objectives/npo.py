"""``npo``: Negative Preference Optimization (Zhang et al. 2024, arXiv:2404.05868; open-unlearning NPO).

    L = -(2/beta) * E_f log sigmoid(-beta * log(pi(y|x) / pi_ref(y|x))) + alpha * CE_retain

log pi is the summed log-probability of the output tokens; pi_ref is the frozen model before unlearning.
Defaults beta = 0.1, gamma (forget weight) = alpha (retain weight) = 1, as in open-unlearning.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ._base import Context, LossOutput, Objective, Reference, logits_of, register, sequence_nll, token_mean_ce


@dataclasses.dataclass
class NPOParams:
    """NPO hyperparameters."""

    beta: float = 0.1
    gamma: float = 1.0
    """Forget-term weight."""
    alpha: float = 1.0
    """Retain NLL weight."""


def npo_forget_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/beta) * mean log sigmoid(-beta * (logp - ref_logp)) over rows."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


@register("npo")
class NPO(Objective):
    """NPO on the forget rows plus retain NLL."""

    params_cls = NPOParams
    needs_reference = True

    def reference(self, ref_lm, batch) -> Reference:
        nll, _ = sequence_nll(ref_lm.model(**batch.model_inputs()).logits, batch.labels)
        return Reference(seq_logp=-nll)

    def __call__(self, ctx: Context, batch, ref: Reference | None) -> LossOutput:
        nll, n = sequence_nll(logits_of(ctx, batch), batch.labels)
        f = batch.is_forget
        if bool(f.any()):
            forget = npo_forget_loss(-nll[f], ref.seq_logp[f].to(nll.device), self.params.beta)
        else:
            forget = nll.sum() * 0.0
        ce_r = token_mean_ce(nll, n, ~f)
        loss = self.params.gamma * forget + self.params.alpha * ce_r
        parts = {
            "npo": float(forget.detach()),
            "forget_ce": float(token_mean_ce(nll.detach(), n, f)),
            "retain_ce": float(ce_r.detach()),
        }
        return LossOutput(loss, parts)
