"""The settings of causal tracing and activation patching, and the jobs that run them from the CLI.

Torch-free on purpose: ``workbench trace --help`` builds its flags from these dataclasses (field
docstrings are the help) without importing a model library. Library functions take one of these configs
or keyword overrides of its fields (:func:`workbench.config.make_config`).
"""

from __future__ import annotations

import dataclasses

from ..errors import WorkbenchError

KINDS = ("hidden", "mlp", "attn")
"""What a causal trace restores: the residual stream, the MLP output or the attention output."""
SITE_KINDS = ("resid_pre", "resid_post", "attn", "mlp", "heads")
"""What activation patching patches, per (layer, position[, head])."""


@dataclasses.dataclass
class TraceConfig:
    """Settings of a causal trace (Meng et al. 2022), ROME's by default."""

    kinds: list[str] = dataclasses.field(default_factory=lambda: list(KINDS))
    """which grids to compute: hidden, mlp, attn"""
    samples: int = 10
    """noise samples per fact (ROME: 10)"""
    noise: float = 3.0
    """noise scale as a multiple of σ (ROME: 3)"""
    sigma: float | None = None
    """σ given directly; default: the std of the subject-token embeddings of the fact set"""
    window: int | None = None
    """consecutive mlp/attn layers restored around the centre layer; None: about a fifth of the model's
    depth, ROME's 10 of 48 layers (``default_window``)"""
    seed: int = 0
    """seed of the noise draws"""
    keep_unknown: bool = False
    """trace facts whose clean prediction is not the expected answer (normally skipped)"""
    max_batch_tokens: int = 16384
    """memory budget: rows × prompt tokens per forward (with reuse_prefix the KV cache adds about
    2 × layers × d_model values per token, and resume_layers keeps 2 × layers × (samples + 1) × tokens ×
    d_model activations per fact; lower this for large models on small GPUs)"""
    reuse_prefix: bool = True
    """share the corrupted run of the tokens before the restored one through the KV cache"""
    resume_layers: bool = True
    """start each cell's forward at its first changed block from the fact's cached corrupted run (exact;
    off: every cell runs all blocks)"""

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise WorkbenchError(f"unknown trace kind(s) {bad}; use a subset of {', '.join(KINDS)}")
        if self.samples < 1 or (self.window is not None and self.window < 1) or self.max_batch_tokens < 1:
            raise WorkbenchError("samples, window and max_batch_tokens must be >= 1")
        if self.noise < 0 or (self.sigma is not None and self.sigma < 0):
            raise WorkbenchError("noise and sigma must be >= 0")


@dataclasses.dataclass
class PatchConfig:
    """Settings of token-replacement activation patching (exact, or its attribution-patching estimate)."""

    sites: list[str] = dataclasses.field(default_factory=lambda: ["resid_pre", "attn", "mlp", "heads"])
    """site kinds among resid_pre, resid_post, attn, mlp, heads (resid = resid_pre)"""
    metric: str = "logit_diff"
    """logit_diff (answers[0] minus answers[1]) or prob (probability of answers[0]), at the last position"""
    answers: list[str] | None = None
    """answer tokens: correct [wrong] (default: the clean and the corrupted top tokens)"""
    direction: str = "denoise"
    """denoise: patch clean activations into the corrupted run; noise: the reverse"""
    max_batch_tokens: int = 16384
    """memory budget: rows × prompt tokens per forward"""

    def __post_init__(self) -> None:
        if self.metric not in ("logit_diff", "prob"):
            raise WorkbenchError(f"unknown metric {self.metric!r}; use logit_diff or prob")
        if self.direction not in ("denoise", "noise"):
            raise WorkbenchError(f"unknown direction {self.direction!r}; use 'denoise' or 'noise'")
        if self.max_batch_tokens < 1:
            raise WorkbenchError("max_batch_tokens must be >= 1")
