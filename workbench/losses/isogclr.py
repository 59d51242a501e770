r"""iSogCLR: robust global contrastive losses with an individual temperature per training example.

Qiu, Hu, Yuan, Zhou, Zhang & Yang (ICML 2023, "Not All Semantics are Created Equal: Contrastive
Self-supervised Learning with Automatic Temperature Individualization"). The objective for anchor i
with temperature tau_i, negatives S_i^- and h_i(z) = s(x_i, z) - s(x_i, x_i^+) is

.. math:: F_i(w, \tau_i) = \tau_i \log \mathbb E_{z\in S_i^-} \exp\!\Big(\frac{h_i(z)}{\tau_i}\Big) + \tau_i \rho

optimised with a moving average of the inner expectation and a momentum step on each tau_i. Two
official forms exist and differ in which negatives they use and in their constants:

- :class:`ISogCLRLoss` — the bimodal (image-text) form of the TempNet repository (zhqiu/TempNet,
  ``Bimodal_CL/models/losses.py::iSogCLR_Loss``): cross-modal negatives only (N - 1 per row), a running
  maximum b_i subtracted inside the exponential, the moving average clamped at 1e-14, the temperature
  gradient clipped to [-5, 5]; tau_0 = 0.01 in [0.005, 0.05], gamma = 0.8, rho = 8, eta = 0.03,
  beta = 0.5.
- :class:`UnimodalISogCLRLoss` — the unimodal (two augmented views) form of LibAUC
  (``libauc.losses.GCLoss_v1(enable_isogclr=True)``): negatives from both views (2N - 2 per row);
  tau_0 = 0.1 in [0.05, 0.7], gamma = 0.9, rho = 0.3, eta = 0.01, beta = 0.9.

Both return the official *surrogate* value, whose gradient in the features is the stochastic gradient
of the objective; the temperatures are updated in place while the module is in training mode. All
exponentials are taken of masked, max-shifted arguments, so float32 stays finite for small temperatures.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_ndim, check_reduction, check_same_shape, reduce

__all__ = ["ISogCLRLoss", "UnimodalISogCLRLoss"]


def _check_ids(name: str, ids: torch.Tensor, n: int, size: int) -> None:
    check_ndim(name, ids, 1, "(N,)")
    if ids.shape[0] != n or int(ids.min()) < 0 or int(ids.max()) >= size:
        raise LossShapeError(f"{name} must hold one id in [0, {size}) per row (num_samples = {size})")


class ISogCLRLoss(nn.Module):
    r"""Bimodal iSogCLR as the TempNet repository computes it (``iSogCLR_Loss``).

    For image i (rows of the (N, N) image-text similarity s) and text j (columns), with
    h_ij = (s_ij - s_ii) / tau_i^I and b_i the running maximum of h_i (stored per example),
    g_i = sum_{j != i} exp(h_ij - b_i) and the moving average
    s_i <- (1 - gamma) s_i exp(b_i^old - b_i) + gamma g_i (s_i = g_i in the first epoch). The returned
    surrogate is mean_i sum_j w_ij (s_ij - s_ii) + mean_j sum_i w'_ij (s_ij - s_jj) with detached
    weights w_ij = exp(h_ij - b_i) / max(s_i, 1e-14) (and w' likewise for the texts). Temperature
    step: g = log(s_i / (N - 1)) + b_i + rho - sum_j w_ij h_ij, clipped to [-5, 5];
    u_i <- (1 - beta) u_i + beta g; tau_i <- clip(tau_i - eta u_i, tau_min, tau_max).

    ``epoch`` follows the official first-epoch rule (epoch 0: s_i = g_i). With ``epoch=None`` an example
    starts its moving average the first time it is seen, which is the same thing when every example is
    visited once per epoch. Features are L2-normalised unless ``normalize=False``.
    """

    def __init__(
        self,
        num_samples: int,
        tau_init: float = 0.01,
        gamma: float = 0.8,
        rho: float = 8.0,
        eta: float = 0.03,
        beta: float = 0.5,
        tau_min: float = 0.005,
        tau_max: float = 0.05,
        grad_clip: float = 5.0,
        eps: float = 1e-14,
        normalize: bool = True,
        reduction: str = "mean",
    ):
        super().__init__()
        self.gamma, self.rho, self.eta, self.beta = gamma, rho, eta, beta
        self.tau_min, self.tau_max, self.grad_clip, self.eps = tau_min, tau_max, grad_clip, eps
        self.normalize, self.reduction = normalize, check_reduction(reduction)
        for side in ("image", "text"):
            self.register_buffer(f"{side}_tau", torch.full((num_samples,), float(tau_init)))
            self.register_buffer(f"{side}_s", torch.zeros(num_samples))
            self.register_buffer(f"{side}_b", torch.zeros(num_samples))
            self.register_buffer(f"{side}_u", torch.zeros(num_samples))
            self.register_buffer(f"{side}_seen", torch.zeros(num_samples, dtype=torch.bool))

    def _side(self, diffs: torch.Tensor, side: str, ids: torch.Tensor, epoch: int | None) -> torch.Tensor:
        """Detached weights (rows = anchors) for one modality; updates that modality's state."""
        n, dt = diffs.shape[0], diffs.dtype
        eye = torch.eye(n, dtype=torch.bool, device=diffs.device)
        tau = getattr(self, f"{side}_tau")[ids].to(dt)
        h = diffs.detach() / tau.unsqueeze(1)
        b_old = getattr(self, f"{side}_b")[ids].to(dt)
        b = torch.maximum(b_old, h.max(dim=1).values)  # the diagonal (h = 0) takes part, so b >= 0
        e = torch.exp(h.masked_fill(eye, float("-inf")) - b.unsqueeze(1))
        g = e.sum(dim=1)
        fresh = torch.full_like(g, epoch == 0, dtype=torch.bool) if epoch is not None else None
        if fresh is None:
            fresh = ~getattr(self, f"{side}_seen")[ids]
        s_old = getattr(self, f"{side}_s")[ids].to(dt)
        s = torch.where(fresh, g, (1 - self.gamma) * s_old * torch.exp(b_old - b) + self.gamma * g)
        s_c = s.clamp_min(self.eps)
        w = e / s_c.unsqueeze(1)
        if self.training:
            grad = torch.log(s_c / (n - 1)) + b + self.rho - (w * h).sum(dim=1)
            u = (1 - self.beta) * getattr(self, f"{side}_u")[ids].to(dt) + self.beta * grad.clamp(
                -self.grad_clip, self.grad_clip
            )
            buf = getattr(self, f"{side}_tau")
            buf[ids] = (tau - self.eta * u).clamp(self.tau_min, self.tau_max).to(buf.dtype)
            for name, value in (("b", b), ("s", s), ("u", u)):
                target = getattr(self, f"{side}_{name}")
                target[ids] = value.to(target.dtype)
            getattr(self, f"{side}_seen")[ids] = True
        return w

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        image_ids: torch.Tensor,
        text_ids: torch.Tensor | None = None,
        epoch: int | None = None,
    ) -> torch.Tensor:
        """Surrogate loss of (N, D) image and text features; ``*_ids`` index the per-example state."""
        check_ndim("image", image, 2, "(N, D)")
        check_same_shape("image", image, "text", text)
        n, size = image.shape[0], self.image_tau.numel()
        if n < 2:
            raise LossShapeError("iSogCLR needs at least 2 pairs (the other pairs are the negatives)")
        text_ids = image_ids if text_ids is None else text_ids
        _check_ids("image_ids", image_ids, n, size)
        _check_ids("text_ids", text_ids, n, size)
        if self.normalize:
            image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
        sim = image @ text.t()
        diag = sim.diagonal()
        image_diffs = sim - diag.unsqueeze(1)  # row i: s_ij - s_ii
        text_diffs = (sim - diag.unsqueeze(0)).t()  # row j: s_ij - s_jj (text j as the anchor)
        with torch.no_grad():
            w_image = self._side(image_diffs, "image", image_ids, epoch)
            w_text = self._side(text_diffs, "text", text_ids, epoch)
        per = (w_image * image_diffs).sum(dim=1) + (w_text * text_diffs).sum(dim=1)
        return reduce(per, self.reduction)


class UnimodalISogCLRLoss(nn.Module):
    r"""Unimodal iSogCLR as LibAUC computes it (``GCLoss_v1(enable_isogclr=True)``).

    Two augmented views a_i, b_i of example i; anchor a_i has the 2N - 2 negatives {b_k, a_k : k != i}
    (and b_i symmetrically). With the moving average u_i <- (1 - gamma) u_i + gamma mean_z exp(s_iz / tau_i)
    (u_i = the fresh mean the first time example i is seen; LibAUC decides this per batch, we per
    example) the surrogate is, summed over both views,
    -s(a_i, b_i) + sum_z sg(exp(s_iz / tau_i) / max(u_i, 1e-8)) s_iz / (2N - 2);
    the stored u_i is the mean of the two views' averages, the temperature step is the momentum
    m_i <- (1 - beta) m_i + beta g_i, tau_i <- clip(tau_i - eta m_i) with
    g_i = log u_i + rho - sum_z w_iz s_iz / tau_i / (2N - 2) averaged over the views.

    The moving average is kept as log u (``log_u``), so no exponential of s / tau is formed: LibAUC's
    exp(s / tau) overflows float32 once tau < 0.0114; this form does not.
    """

    def __init__(
        self,
        num_samples: int,
        tau_init: float = 0.1,
        gamma: float = 0.9,
        rho: float = 0.3,
        eta: float = 0.01,
        beta: float = 0.9,
        tau_min: float = 0.05,
        tau_max: float = 0.7,
        eps: float = 1e-8,
        reduction: str = "mean",
    ):
        super().__init__()
        self.gamma, self.rho, self.eta, self.beta = gamma, rho, eta, beta
        self.tau_min, self.tau_max, self.eps = tau_min, tau_max, eps
        self.reduction = check_reduction(reduction)
        self.register_buffer("log_u", torch.zeros(num_samples))
        self.register_buffer("seen", torch.zeros(num_samples, dtype=torch.bool))
        self.register_buffer("tau", torch.full((num_samples,), float(tau_init)))
        self.register_buffer("grad_tau", torch.zeros(num_samples))

    def _one_side(self, logits: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, index: torch.Tensor):
        n_neg = logits.shape[1] - 2
        tau = self.tau[index].to(logits.dtype).unsqueeze(1)
        with torch.no_grad():
            h = (logits / tau).masked_fill(~neg, float("-inf"))
            fresh = torch.logsumexp(h, dim=1) - math.log(n_neg)
            old = self.log_u[index].to(logits.dtype)
            blend = torch.logaddexp(math.log1p(-self.gamma) + old, math.log(self.gamma) + fresh)
            log_u = torch.where(self.seen[index], blend, fresh) if self.gamma < 1 else fresh
            w = torch.exp(h - log_u.clamp_min(math.log(self.eps)).unsqueeze(1))
            h0 = h.masked_fill(~neg, 0.0)
            g_tau = log_u + self.rho - (w * h0).sum(dim=1) / n_neg
        loss = -pos + (w * logits.masked_fill(~neg, 0.0)).sum(dim=1) / n_neg
        return loss, log_u, g_tau

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Surrogate loss of two (N, D) views of the examples with dataset ``index`` (N,)."""
        check_ndim("z1", z1, 2, "(N, D)")
        check_same_shape("z1", z1, "z2", z2)
        n = z1.shape[0]
        if n < 2:
            raise LossShapeError("a contrastive loss needs at least 2 examples for negatives")
        _check_ids("index", index, n, self.tau.numel())
        a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        off = ~torch.eye(n, dtype=torch.bool, device=a.device)
        neg = torch.cat([off, off], dim=1)  # other view's others + own view's others
        pos = (a * b).sum(1)
        loss_a, lu_a, g_a = self._one_side(torch.cat([a @ b.t(), a @ a.t()], dim=1), pos, neg, index)
        loss_b, lu_b, g_b = self._one_side(torch.cat([b @ a.t(), b @ b.t()], dim=1), pos, neg, index)
        if self.training:
            with torch.no_grad():
                self.log_u[index] = (torch.logaddexp(lu_a, lu_b) - math.log(2.0)).to(self.log_u.dtype)
                self.seen[index] = True
                g = ((g_a + g_b) / 2).to(self.grad_tau.dtype)
                m = (1 - self.beta) * self.grad_tau[index] + self.beta * g
                self.grad_tau[index] = m
                self.tau[index] = (self.tau[index] - self.eta * m).clamp(self.tau_min, self.tau_max)
        return reduce(loss_a + loss_b, self.reduction)
