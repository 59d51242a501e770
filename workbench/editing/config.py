"""Typed hyperparameters of the knowledge editors: one dataclass per method over a shared base.

Every field has a docstring (the string literal under it, which ``workbench.config.field_docs`` reads
for CLI flags and help) and ``__post_init__`` validates with a one-line :class:`WorkbenchError`.

The defaults are the published hyperparameters, and each default names its file and commit:

- ROME: kmeng01/rome ``hparams/ROME/gpt2-xl.json`` at 0874014cd9837e4365f3e6f3c71400ef11509e04;
- MEMIT: kmeng01/memit ``hparams/MEMIT/EleutherAI_gpt-j-6B.json`` at 80426fd9316cf9a50c5ba15e0912f2c2c5bfe84b;
- AlphaEdit: jianghoucheng/AlphaEdit ``hparams/AlphaEdit/EleutherAI_gpt-j-6B.json`` at
  f5248d3d25f1b3863bff19c387293d635866079f.

The published layer numbers are not copied: layers come from a causal trace or are given explicitly.
Two published settings differ on purpose. ``mom2_n_samples`` is 100,000 Wikipedia texts in all three
files; here it is the number of texts drawn from the statistics source, and its default is what
``analyses/benchmarks/bench_edit.py`` measured to be enough on the organism. ``mom2_dtype`` is not a
field: the second moments are always accumulated and solved in float64.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ..errors import WorkbenchError

ROME_SOURCE = "kmeng01/rome hparams/ROME/gpt2-xl.json @ 0874014cd9837e4365f3e6f3c71400ef11509e04"
MEMIT_SOURCE = (
    "kmeng01/memit hparams/MEMIT/EleutherAI_gpt-j-6B.json @ 80426fd9316cf9a50c5ba15e0912f2c2c5bfe84b"
)
ALPHAEDIT_SOURCE = "jianghoucheng/AlphaEdit hparams/AlphaEdit/EleutherAI_gpt-j-6B.json @ f5248d3d25f1b3863bff19c387293d635866079f"
FACT_TOKENS = ("subject_last", "subject_first", "subject_first_after_last", "last")
MEMIT_STARTERS = ("The", "Therefore", "Because", "I", "You")
"""MEMIT's context-template starters (kmeng01/memit ``memit/memit_main.py``, ``get_context_templates``)."""


@dataclasses.dataclass
class EditConfig:
    """What every editor shares: the target-value optimisation, the context prefixes and the statistics."""

    v_num_grad_steps: int = 20
    """Adam steps of the target-value optimisation (δ at the subject's last token)."""
    v_lr: float = 0.5
    """Adam learning rate of δ."""
    v_weight_decay: float = 0.5
    """Norm penalty ``v_weight_decay * ||δ|| / ||v_init||²`` (as ROME's ``compute_v.py`` writes it)."""
    clamp_norm_factor: float = 4.0
    """After each step δ is projected into the ball ``||δ|| <= clamp_norm_factor * ||v_init||``."""
    kl_factor: float = 0.0625
    """Weight of the KL term that keeps the essence prompt's next-token distribution (ROME's drift loss)."""
    fact_token: Literal["subject_last", "subject_first", "subject_first_after_last", "last"] = "subject_last"
    """Token whose key is edited and where δ is added (ROME's ``fact_token``; published: subject_last)."""
    kl_prompt: str = "{} is a"
    """The essence prompt of the KL term; ``{}`` is the subject (ROME's ``compute_v.py``)."""
    early_stop_loss: float = 5e-2
    """A request stops optimising once its loss falls below this (hard-coded in ROME's ``compute_v.py``)."""
    context_lengths: tuple[int, ...] = (5, 10)
    """Lengths in tokens of the generated context prefixes, one group per length (ROME's
    ``context_template_length_params`` [[5, 10], [10, 10]]: lengths 5 and 10); the bare prompt is always
    the first context."""
    context_counts: tuple[int, ...] = (10, 10)
    """How many prefixes of each length (ROME: 10 and 10)."""
    context_starters: tuple[str, ...] = ("",)
    """Texts the generated prefixes start from (``""``: the BOS/EOS token, as ROME starts from
    ``<|endoftext|>``); each group's count is shared among them."""
    context_source: str | None = None
    """Sample the prefixes as word windows from this text source (a .txt, a .jsonl, a datasets folder or a
    model folder's corpus) instead of generating them with the model; ``"stats"``: the statistics source."""
    context_top_k: int = 5
    """Top-k of the prefix sampler (ROME's ``generate_fast``)."""
    mom2_n_samples: int = 2000
    """Texts of the statistics source that C = E[k kᵀ] is estimated from (ROME: 100,000 Wikipedia
    texts; here the count measured to suffice on the organism, see ``bench_edit.py``)."""
    mom2_max_tokens: int = 256
    """Each statistics text is cut to this many tokens (ROME: the model's context length)."""
    seed: int = 0
    """Seed of the prefix sampler and of the statistics sample."""
    batch_size: int = 16
    """Requests whose δ are optimised together in one batch (each δ only sees its own rows, so the result
    is that of optimising them one by one; memory grows with it)."""

    method = "base"

    def __post_init__(self) -> None:
        name = self.method
        _positive(name, v_num_grad_steps=self.v_num_grad_steps, batch_size=self.batch_size)
        _positive(name, mom2_n_samples=self.mom2_n_samples, mom2_max_tokens=self.mom2_max_tokens)
        _positive(name, context_top_k=self.context_top_k)
        _positive(name, v_lr=self.v_lr, clamp_norm_factor=self.clamp_norm_factor)
        for key in ("v_weight_decay", "kl_factor", "early_stop_loss"):
            if float(getattr(self, key)) < 0:
                raise WorkbenchError(f"{name}.{key}={getattr(self, key)} must be >= 0")
        if self.fact_token not in FACT_TOKENS:
            raise WorkbenchError(
                f"{name}.fact_token={self.fact_token!r}: use one of {', '.join(FACT_TOKENS)}"
            )
        if self.kl_prompt.count("{}") != 1:
            raise WorkbenchError(f"{name}.kl_prompt={self.kl_prompt!r} must hold one '{{}}' for the subject")
        self.context_lengths = tuple(int(n) for n in self.context_lengths)
        self.context_counts = tuple(int(c) for c in self.context_counts)
        if len(self.context_lengths) != len(self.context_counts):
            raise WorkbenchError(
                f"{name}.context_lengths {list(self.context_lengths)} and context_counts "
                f"{list(self.context_counts)} need one count per length"
            )
        if any(n < 1 for n in self.context_lengths) or any(c < 0 for c in self.context_counts):
            raise WorkbenchError(f"{name}: context lengths must be >= 1 and counts >= 0")
        self.context_starters = tuple(str(s) for s in self.context_starters)
        if not self.context_starters:
            raise WorkbenchError(f"{name}.context_starters is empty; use [''] to start from the BOS token")


def _positive(name: str, **values: Any) -> None:
    for key, value in values.items():
        if not value > 0:
            raise WorkbenchError(f"{name}.{key}={value} must be > 0")


@dataclasses.dataclass
class ROMEConfig(EditConfig):
    """ROME (Meng et al. 2022): one rank-one update per request and layer, applied one request after another.

    Defaults: kmeng01/rome ``hparams/ROME/gpt2-xl.json`` at 0874014cd9837e4365f3e6f3c71400ef11509e04
    (v_num_grad_steps 20, v_lr 0.5, v_weight_decay 0.5, clamp_norm_factor 4, kl_factor 0.0625,
    mom2_adjustment true, context_template_length_params [[5, 10], [10, 10]]).
    """

    mom2_adjustment: bool = True
    """Whiten the key direction with C⁻¹ (ROME's ``mom2_adjustment``); off: u = k*."""

    method = "rome"


@dataclasses.dataclass
class MEMITConfig(EditConfig):
    """MEMIT (Meng et al. 2023): a batch of edits spread over consecutive layers, λ·C solved in float64.

    Defaults: kmeng01/memit ``hparams/MEMIT/EleutherAI_gpt-j-6B.json`` at
    80426fd9316cf9a50c5ba15e0912f2c2c5bfe84b (v_num_grad_steps 25, v_lr 0.5, v_weight_decay 0.5,
    clamp_norm_factor 0.75, kl_factor 0.0625, mom2_update_weight 15000); context templates from
    ``memit/memit_main.py`` (five starters, one 10-token prefix each).
    """

    v_num_grad_steps: int = 25
    """Adam steps of the target-value optimisation (MEMIT GPT-J: 25)."""
    clamp_norm_factor: float = 0.75
    """δ is kept inside ``||δ|| <= clamp_norm_factor * ||z_init||`` (MEMIT GPT-J: 0.75)."""
    context_lengths: tuple[int, ...] = (10,)
    """Lengths of the context prefixes (MEMIT: one group of 10-token prefixes)."""
    context_counts: tuple[int, ...] = (5,)
    """How many prefixes of each length (MEMIT: 5, one per starter)."""
    context_starters: tuple[str, ...] = MEMIT_STARTERS
    """MEMIT's starters: "The", "Therefore", "Because", "I", "You"."""
    mom2_update_weight: float = 15000.0
    """λ of the update ``ΔW = R Kᵀ (λ C + K Kᵀ)⁻¹`` (MEMIT GPT-J: 15000)."""
    trace_width: int | None = None
    """With a trace: the width of the peak MLP block to edit (None: about a fifth of the layers)."""

    method = "memit"

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.method, mom2_update_weight=self.mom2_update_weight)
        if self.trace_width is not None:
            _positive(self.method, trace_width=self.trace_width)


@dataclasses.dataclass
class AlphaEditConfig(EditConfig):
    """AlphaEdit (Fang et al. 2025): MEMIT's spread with the update projected on the null space of C.

    Defaults: jianghoucheng/AlphaEdit ``hparams/AlphaEdit/EleutherAI_gpt-j-6B.json`` at
    f5248d3d25f1b3863bff19c387293d635866079f (MEMIT's GPT-J values plus nullspace_threshold 2e-2, L2 10).
    """

    v_num_grad_steps: int = 25
    """Adam steps of the target-value optimisation (AlphaEdit GPT-J: 25)."""
    clamp_norm_factor: float = 0.75
    """δ is kept inside ``||δ|| <= clamp_norm_factor * ||z_init||`` (AlphaEdit GPT-J: 0.75)."""
    context_lengths: tuple[int, ...] = (10,)
    """Lengths of the context prefixes (AlphaEdit reuses MEMIT's templates: 10 tokens)."""
    context_counts: tuple[int, ...] = (5,)
    """How many prefixes of each length (AlphaEdit, as MEMIT: 5)."""
    context_starters: tuple[str, ...] = MEMIT_STARTERS
    """MEMIT's starters: "The", "Therefore", "Because", "I", "You"."""
    nullspace_threshold: float = 2e-2
    """Eigenvalues of C below this span the null space that the update is projected on (AlphaEdit: 2e-2)."""
    nullspace_relative: bool = False
    """Read ``nullspace_threshold`` relative to C's largest eigenvalue instead of as an absolute value
    (the published threshold is absolute and so depends on the scale of the keys)."""
    l2: float = 10.0
    """Ridge term of AlphaEdit's solve ``(P (K Kᵀ + K_p K_pᵀ) + l2·I)⁻¹`` (the published ``L2``)."""
    trace_width: int | None = None
    """With a trace: the width of the peak MLP block to edit (None: about a fifth of the layers)."""

    method = "alphaedit"

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.method, nullspace_threshold=self.nullspace_threshold, l2=self.l2)
        if self.trace_width is not None:
            _positive(self.method, trace_width=self.trace_width)


def make_config(cls: type[EditConfig], config: Any = None, overrides: dict | None = None) -> EditConfig:
    """A ``cls`` instance from None, a mapping or an instance, with ``overrides`` applied (unknown keys fail)."""
    if config is None:
        base: dict = {}
    elif isinstance(config, cls):
        base = dataclasses.asdict(config)
    elif isinstance(config, EditConfig):
        raise WorkbenchError(
            f"config is a {type(config).__name__} but the method {cls.method!r} takes a {cls.__name__}"
        )
    elif isinstance(config, dict):
        base = dict(config)
    else:
        raise WorkbenchError(f"config must be a {cls.__name__} or a mapping, not {type(config).__name__}")
    merged = {**base, **(overrides or {})}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(merged) - names)
    if unknown:
        raise WorkbenchError(
            f"unknown {cls.method} setting(s) {unknown}; valid ones are {', '.join(sorted(names))}"
        )
    return cls(**merged)
