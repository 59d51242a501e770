"""The objective registry, the typed loss output and the shared NLL helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..data import IGNORE, UnlearnBatch

OBJECTIVES: dict[str, type[Objective]] = {}


def register(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: add an objective to :data:`OBJECTIVES` under ``name``."""

    def deco(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return deco


@dataclasses.dataclass
class LossOutput:
    """The loss to minimise and its named parts (plain floats, for logging)."""

    loss: torch.Tensor
    parts: dict[str, float]


@dataclasses.dataclass
class Reference:
    """Outputs of the frozen reference model on the same batch (each None unless the method needs it)."""

    seq_logp: torch.Tensor | None = None
    """[B] summed log-probability of the output tokens."""
    hidden: torch.Tensor | None = None
    """[B, T, d] activation at the method's site (RMU)."""


@dataclasses.dataclass
class Context:
    """What an objective may read besides the batch: the model to run and where training stands."""

    model: Any
    """The callable model (possibly wrapped by accelerate/DDP)."""
    lm: Any
    """The :class:`~workbench.models.LoadedModel` of the unwrapped model (sites for the hook engine)."""
    epoch: int = 0
    step: int = 0
    ceiling: float = float("inf")
    """Forget-CE ceiling (``train.forget_ceiling``; ln |V| by default)."""
    training: bool = True
    """False during validation: stateful objectives must not update their state."""


class Objective:
    """Base of every method: ``__call__(ctx, batch, ref) -> LossOutput``."""

    name: ClassVar[str] = "?"
    params_cls: ClassVar[type]
    needs_reference: ClassVar[bool] = False
    keep_best: ClassVar[bool] = False
    """Whether a job that runs several methods on one budget (the pipeline) keeps this method's best
    checkpoint by validation joint loss (``train.keep_best``) rather than its last weights."""

    @classmethod
    def default_select(cls, traced_layers: list[int], kind: str) -> dict[str, Any]:
        """The ``select`` section this method trains when a job picks for it from a causal trace.

        ``traced_layers`` are the layers the trace chose and ``kind`` the module filter asked for. The
        default is every parameter, as the baselines are published.
        """
        return {"layers": "all", "kind": "*"}

    @classmethod
    def default_params(cls, traced_layers: list[int]) -> dict[str, Any]:
        """Parameters derived from the traced layers, under the user's own ``params`` (default: none)."""
        return {}

    def __init__(self, params: Any, lm: Any, *, seed: int = 0):
        self.params = params

    def reference(self, ref_lm: Any, batch: UnlearnBatch) -> Reference:
        """Reference outputs for ``batch`` (called under ``torch.no_grad``); default: none."""
        return Reference()

    def __call__(self, ctx: Context, batch: UnlearnBatch, ref: Reference | None) -> LossOutput:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """JSON-able state to checkpoint (stateless methods: empty)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""


def logits_of(ctx: Context, batch: UnlearnBatch) -> torch.Tensor:
    """One forward of the (possibly wrapped) model over the whole batch."""
    return ctx.model(**batch.model_inputs()).logits


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed NLL of the labelled tokens and their count: ([B], [B]), in float32."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(shift_labels.shape)
    mask = shift_labels != IGNORE
    return (nll * mask).sum(-1), mask.sum(-1)


def token_mean_ce(nll_sum: torch.Tensor, n_tok: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Token-weighted mean CE over the selected rows (0 with grad when none are selected)."""
    if not bool(rows.any()):
        return nll_sum.sum() * 0.0
    return nll_sum[rows].sum() / n_tok[rows].sum().clamp_min(1)


def clipped_forget_ce(
    nll_sum: torch.Tensor, n_tok: torch.Tensor, rows: torch.Tensor, ceiling: float
) -> torch.Tensor:
    """Token-weighted forget CE with each row's mean CE clipped at ``ceiling`` (no gradient past it)."""
    if not bool(rows.any()):
        return nll_sum.sum() * 0.0
    n = n_tok[rows].clamp_min(1)
    per_row = (nll_sum[rows] / n).clamp(max=ceiling)
    return (per_row * n).sum() / n.sum()
