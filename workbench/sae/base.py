"""The shared SAE base: parameters, encode/decode, sparse codes, Gao et al. tricks, save/load, registry.

Every architecture is a small subclass in its own file that decides *which* (token, latent) pairs fire
(:meth:`SparseAutoencoder.select`) and registers itself with :func:`register`. Shared by all:

- parameters in SAELens's layout: ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``,
  ``b_dec [d_in]`` (``b_dec`` is Gao et al.'s ``b_pre``: subtracted before encoding, added after decoding);
- Gao et al. 2024 ("Scaling and evaluating sparse autoencoders", sec. A.1/A.2): decoder rows initialised
  as random unit vectors and the encoder as the decoder's transpose; decoder rows kept at unit norm, with
  the gradient component parallel to each row removed before the optimiser step; ``b_pre`` from the
  geometric median of a data sample; dead latents tracked in tokens since they last fired;
- a sparse code (:class:`Codes`): indices + values, decoded with ``F.embedding_bag`` so that the decode
  touches only the active decoder rows, never a dense ``[N, d_sae] @ [d_sae, d_in]`` matmul.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WorkbenchError
from .sparse_grad import decode_at, pre_at

ARCHITECTURES: dict[str, type[SparseAutoencoder]] = {}


def register(*names: str) -> Callable[[type[SparseAutoencoder]], type[SparseAutoencoder]]:
    """Class decorator: make an architecture available under ``names`` (config ``arch``, CLI choices)."""

    def deco(cls: type[SparseAutoencoder]) -> type[SparseAutoencoder]:
        for name in names:
            ARCHITECTURES[name] = cls
        return cls

    return deco


@dataclasses.dataclass
class SAEConfig:
    """Architecture and sparsity settings of one SAE (strict: unknown keys are errors)."""

    arch: str = "topk"
    """Architecture name: relu | topk | batchtopk | mutual_choice | feature_choice."""
    d_in: int = 64
    """Width of the activations (the site's width)."""
    d_sae: int = 512
    """Number of latents (features)."""
    k: float = 32
    """Target active latents per token: exact for topk, the batch average for batchtopk/feature_choice."""
    l1_coeff: float = 0.3
    """ReLU SAE only: weight of the L1 penalty on the activations (times unit-norm decoder rows)."""
    aux: Literal["none", "aux_k", "aux_zipf"] = "aux_k"
    """Auxiliary loss for dead / under-used latents (see sae/aux.py); ignored by relu."""
    aux_coeff: float = 1 / 32
    """Weight of the auxiliary loss (Gao et al. use 1/32)."""
    k_aux: int | None = None
    """Latents used by the auxiliary loss; default d_in // 2 (Gao et al. App. B.1)."""
    dead_tokens: int = 1_000_000
    """A latent that has not fired for this many training tokens counts as dead."""
    zipf_alpha: float = 1.0
    """Zipf exponent for aux_zipf's expected densities and feature_choice's zipf capacities."""
    capacities: Literal["uniform", "zipf"] = "uniform"
    """feature_choice only: per-feature token capacities m_i (uniform m = k*B/F, or Zipf-shaped)."""
    init_encoder_norm: float = 0.5
    """The encoder starts as this multiple of the decoder's transpose (Gao et al. A.1 use 1: exactly the
    transpose). Below 1 the first reconstructions do not overshoot: a k-sparse code read off random
    directions at full scale adds k large, mostly wrong components (EleutherAI sparsify's nn.Linear init
    gives ~0.58; the bench_sae ablation in analyses/README.md measured the effect)."""
    threshold_lr: float = 0.01
    """batchtopk / feature_choice: EMA rate of the inference threshold(s)."""
    site: str | None = None
    """The model site the SAE reads (metadata; used by splicing, dashboards, SAELens export)."""
    model: str | None = None
    """The model spec the activations came from (metadata)."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            _load_architectures()
        if self.arch not in ARCHITECTURES:
            raise WorkbenchError(
                f"unknown SAE arch {self.arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))}"
            )
        if self.d_in < 1 or self.d_sae < 1:
            raise WorkbenchError("d_in and d_sae must be positive")
        if not 0 < self.k <= self.d_sae:
            raise WorkbenchError(f"k={self.k} must be in (0, d_sae={self.d_sae}]")
        if not self.init_encoder_norm > 0:
            raise WorkbenchError(f"init_encoder_norm={self.init_encoder_norm} must be positive")


def _load_architectures() -> None:
    import importlib

    for mod in ("relu", "topk", "batchtopk", "feature_choice"):
        importlib.import_module(f"workbench.sae.{mod}")


@dataclasses.dataclass
class Codes:
    """Sparse latent activations of ``n`` tokens.

    Fixed-k form: ``idx``/``val`` are ``[n, k]``. Ragged form (``offsets`` set): ``idx``/``val`` are flat
    ``[nnz]`` sorted by token, token ``i`` owning ``idx[offsets[i]:offsets[i+1]]`` (``embedding_bag``
    offsets). ``val`` carries the gradient during training.
    """

    idx: torch.Tensor
    val: torch.Tensor
    n: int
    d_sae: int
    offsets: torch.Tensor | None = None

    def dense(self) -> torch.Tensor:
        """The ``[n, d_sae]`` dense activation matrix."""
        out = self.val.new_zeros(self.n, self.d_sae)
        if self.offsets is None:
            return out.scatter(1, self.idx, self.val)
        return out.index_put((self.rows(), self.idx), self.val, accumulate=True)

    def rows(self) -> torch.Tensor:
        """Token index of every stored entry (same shape as ``idx``)."""
        if self.offsets is None:
            return torch.arange(self.n, device=self.idx.device)[:, None].expand_as(self.idx)
        counts = torch.diff(self.offsets, append=self.offsets.new_tensor([self.idx.numel()]))
        return torch.repeat_interleave(torch.arange(self.n, device=self.idx.device), counts)

    def l0(self) -> torch.Tensor:
        """Active (non-zero) latents per token, ``[n]``."""
        nz = (self.val != 0).to(torch.float32)
        if self.offsets is None:
            return nz.sum(-1)
        return torch.zeros(self.n, device=nz.device).index_add_(0, self.rows(), nz)

    def fired(self) -> torch.Tensor:
        """Bool ``[d_sae]``: which latents are non-zero on at least one token."""
        out = torch.zeros(self.d_sae, dtype=torch.bool, device=self.idx.device)
        out[self.idx[self.val != 0]] = True
        return out

    @staticmethod
    def from_dense(acts: torch.Tensor) -> Codes:
        """Ragged codes holding the non-zero entries of a dense ``[n, d_sae]`` matrix."""
        rows, cols = acts.nonzero(as_tuple=True)
        counts = torch.bincount(rows, minlength=acts.shape[0])
        offsets = torch.cumsum(counts, 0) - counts
        return Codes(cols, acts[rows, cols], acts.shape[0], acts.shape[1], offsets)


@dataclasses.dataclass
class ForwardOutput:
    """One training/eval forward: reconstruction, codes, pre-activations, loss terms."""

    recon: torch.Tensor
    codes: Codes
    pre: torch.Tensor
    losses: dict[str, torch.Tensor]

    @property
    def loss(self) -> torch.Tensor:
        """The total loss to minimise."""
        return sum(self.losses.values())


class SparseAutoencoder(nn.Module):
    """Base SAE: a linear encoder, an architecture-specific sparsifier, a sparse linear decoder."""

    arch_name = "base"
    unit_norm_decoder = True  # Gao et al.; the ReLU SAE (Anthropic April 2024) opts out
    sparse_grad = True  # backward through the chosen entries only (sae/sparse_grad.py); dense for ReLU

    def __init__(self, cfg: SAEConfig, *, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        w_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=gen)
        w_dec /= w_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        # Gao et al. A.1: encoder = decoder^T (scaled by init_encoder_norm)
        self.W_enc = nn.Parameter(w_dec.T.clone().contiguous() * cfg.init_encoder_norm)
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("tokens_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))
        self.register_buffer("fire_ema", torch.zeros(cfg.d_sae))
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    # -- architecture hooks -----------------------------------------------------------------------------
    def select(self, pre: torch.Tensor) -> Codes:
        """Choose the active (token, latent) pairs from pre-activations ``[n, d_sae]``."""
        raise NotImplementedError

    def extra_losses(self, x: torch.Tensor, codes: Codes, pre: torch.Tensor, step_frac: float) -> dict:
        """Architecture losses beyond the reconstruction (e.g. L1); none by default."""
        return {}

    def after_step(self, codes: Codes, pre: torch.Tensor) -> None:
        """Update inference state (thresholds) after a training batch; nothing by default."""

    # -- encode / decode --------------------------------------------------------------------------------
    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations ``(x - b_dec) @ W_enc + b_enc``."""
        return torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)

    def encode_codes(self, x: torch.Tensor) -> Codes:
        """Sparse codes of ``x [n, d_in]`` (training rule in train mode, inference rule in eval mode)."""
        return self.select(self.pre_acts(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Dense latent activations of ``x [..., d_in]`` -> ``[..., d_sae]``."""
        flat = x.reshape(-1, x.shape[-1]).to(self.W_enc.dtype)
        return self.encode_codes(flat).dense().reshape(*x.shape[:-1], self.cfg.d_sae)

    def decode_codes(self, codes: Codes) -> torch.Tensor:
        """Sparse decode: sum of the active decoder rows weighted by their values, plus ``b_dec``."""
        return self.decode_latents(codes) + self.b_dec

    def decode_latents(self, codes: Codes) -> torch.Tensor:
        """``codes @ W_dec`` without ``b_dec``, touching only the active decoder rows (``embedding_bag``)."""
        if codes.idx.numel() == 0:
            return self.W_dec.new_zeros(codes.n, self.cfg.d_in)
        val = codes.val.to(self.W_dec.dtype)
        if self.sparse_grad and torch.is_grad_enabled() and self.W_dec.requires_grad:
            return decode_at(codes.idx, codes.offsets, codes.rows(), val, self.W_dec)
        return F.embedding_bag(codes.idx, self.W_dec, codes.offsets, mode="sum", per_sample_weights=val)

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        """Dense decode of ``acts [..., d_sae]`` (reference path; training uses :meth:`decode_codes`)."""
        return acts.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def entries(
        self, x: torch.Tensor, pre: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor | None = None
    ):
        """``pre[rows, idx]`` with a gradient into the encoder (``rows`` default: token ``i`` for row ``i``).

        When ``pre`` was computed without gradient (``sparse_grad``), the backward runs through the chosen
        entries only (sae/sparse_grad.py); otherwise this is a plain gather from ``pre``.
        """
        if rows is None:
            rows = torch.arange(idx.shape[0], device=idx.device)[:, None].expand_as(idx)
        if pre.requires_grad or not torch.is_grad_enabled():
            return pre[rows, idx]
        return pre_at(pre, x, self.b_dec, self.W_enc, self.b_enc, rows, idx)

    def forward(
        self, x: torch.Tensor, *, step_frac: float = 1.0, aux: Callable | None = None
    ) -> ForwardOutput:
        """Encode, decode and compute the loss terms for a batch ``x [n, d_in]``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.sparse_grad):
            pre = self.pre_acts(x)
        codes = self.select(pre)
        if self.sparse_grad and torch.is_grad_enabled():
            codes.val = self.entries(x, pre, codes.idx, codes.rows()).relu()
        recon = self.decode_codes(codes)
        # normalised MSE (Gao et al. sec. 2.1): comparable across sites of different scale
        var = (x - x.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        losses = {"mse": (recon - x).pow(2).sum(-1).mean() / var}
        losses.update(self.extra_losses(x, codes, pre, step_frac))
        if aux is not None:
            losses["aux"] = aux(self, x, recon, pre, codes, var)
        return ForwardOutput(recon, codes, pre, losses)

    # -- Gao et al. training tricks ---------------------------------------------------------------------
    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Project out the gradient component parallel to each decoder row (Gao et al. A.2)."""
        if self.W_dec.grad is None:
            return
        w = self.W_dec
        coeff = (self.W_dec.grad * w).sum(-1, keepdim=True) / w.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
        self.W_dec.grad -= coeff * w

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every decoder row to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def init_b_dec(self, sample: torch.Tensor, method: str = "geometric_median") -> None:
        """Set ``b_dec`` (b_pre) from a data sample: geometric median (Weiszfeld), mean, or zero."""
        if method == "zero":
            self.b_dec.zero_()
        elif method == "mean":
            self.b_dec.copy_(sample.float().mean(0))
        elif method == "geometric_median":
            self.b_dec.copy_(geometric_median(sample.float()))
        else:
            raise WorkbenchError(f"unknown b_dec init {method!r}; use geometric_median, mean or zero")

    @torch.no_grad()
    def track_dead(self, codes: Codes) -> None:
        """Count tokens since each latent last fired; keep an EMA of firing frequency."""
        fired = codes.fired()
        self.tokens_since_fired += codes.n
        self.tokens_since_fired[fired] = 0
        counts = torch.zeros(self.cfg.d_sae, device=fired.device).index_add_(
            0, codes.idx.reshape(-1), (codes.val.reshape(-1) != 0).float()
        )
        self.fire_ema.mul_(0.99).add_(0.01 * counts / max(codes.n, 1))
        self.ema_steps += 1

    def firing_rate(self) -> torch.Tensor:
        """Bias-corrected EMA (decay 0.99 per batch) of each latent's fraction of tokens fired, ``[d_sae]``."""
        steps = int(self.ema_steps)
        return self.fire_ema / (1 - 0.99**steps) if steps else self.fire_ema

    def dead_mask(self) -> torch.Tensor:
        """Bool ``[d_sae]``: latents that have not fired in ``cfg.dead_tokens`` tokens."""
        return self.tokens_since_fired >= self.cfg.dead_tokens

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``cfg.json`` + ``sae.safetensors`` (workbench format; load with :func:`workbench.sae.load`; SAELens format: sae/export.py)."""
        from ..io import save_tensors, write_json

        folder = Path(folder)
        write_json(folder / "cfg.json", dataclasses.asdict(self.cfg))
        save_tensors(folder / "sae.safetensors", dict(self.state_dict()))
        return folder


def build(cfg: SAEConfig, *, seed: int = 0) -> SparseAutoencoder:
    """Instantiate the architecture named by ``cfg.arch``."""
    _load_architectures()
    return ARCHITECTURES[cfg.arch](cfg, seed=seed)


def geometric_median(points: torch.Tensor, iters: int = 100, eps: float = 1e-6) -> torch.Tensor:
    """Geometric median of ``points [n, d]`` by Weiszfeld's algorithm (as Gao et al. use for b_pre)."""
    median = points.mean(0)
    for _ in range(iters):
        dist = (points - median).norm(dim=-1).clamp_min(eps)
        w = 1.0 / dist
        new = (w[:, None] * points).sum(0) / w.sum()
        if (new - median).norm() <= eps * max(1.0, float(median.norm())):
            return new
        median = new
    return median


def auto_lr(d_sae: int) -> float:
    """Gao et al.'s learning-rate scaling, 2e-4 / sqrt(d_sae / 2**14)."""
    return 2e-4 / math.sqrt(d_sae / 2**14)
