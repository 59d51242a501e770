"""Resumable checkpoints of an unlearning run, in the workbench's one format (:mod:`workbench.training.checkpoint`).

``<out>/checkpoints/step_<N>/`` holds the trainable parameters, the optimizer state, the RNG states and
the loop's :class:`TrainState` (step, sampler position, scheduler, objective state, best-so-far,
early-stopping counter), written atomically; ``best.safetensors`` keeps the trainable weights with the
best validation joint loss.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..training import checkpoint as core
from ..training.checkpoint import latest_checkpoint

__all__ = [
    "TrainState",
    "latest_checkpoint",
    "load_checkpoint",
    "load_trainable",
    "save_checkpoint",
    "trainable_state",
]


@dataclasses.dataclass
class TrainState:
    """Where the loop stands; everything here is JSON-able."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    """Index of the next global batch within ``epoch``."""
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    scheduler: dict = dataclasses.field(default_factory=dict)
    objective: dict = dataclasses.field(default_factory=dict)


def trainable_state(model: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """The named trainable parameters, detached on CPU."""
    params = dict(model.named_parameters())
    return {n: params[n].detach().to("cpu").clone() for n in names}


def load_trainable(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved trainable tensors into the model's parameters in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in tensors.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))


def _named(model: torch.nn.Module, names: list[str]) -> list[tuple[str, torch.nn.Parameter]]:
    params = dict(model.named_parameters())
    return [(n, params[n]) for n in names]


def save_checkpoint(folder: Path, model, names, optimizer, state: TrainState, *, keep: int = 1) -> Path:
    """Write ``folder/step_<N>`` atomically and point ``folder/latest`` at it; keep the last ``keep``."""
    return core.save_checkpoint(
        folder,
        state.step,
        trainable_state(model, names),
        optimizer,
        _named(model, names),
        dataclasses.asdict(state),
        keep=keep,
    )


def load_checkpoint(path: Path, model, optimizer) -> TrainState:
    """Restore weights, optimizer and RNG from ``path``; returns the loop state."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    tensors, state = core.load_checkpoint(path, optimizer, _named(model, names))
    load_trainable(model, tensors)
    return TrainState(**state)
