"""Shared helpers of the losses package: the shape error, reductions and input checks.

``workbench.losses`` is a companion module that imports nothing else of workbench, so it carries its
own small error type for malformed inputs.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


class LossShapeError(ValueError):
    """A loss was given tensors of the wrong shape, dtype or value range (one-line message)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is one of 'mean', 'sum', 'none'; raise ValueError otherwise."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-element losses with 'mean', 'sum' or 'none' (an empty tensor means 0)."""
    check_reduction(reduction)
    if reduction == "none":
        return values
    if values.numel() == 0:
        return values.sum()
    return values.mean() if reduction == "mean" else values.sum()


def check_ndim(name: str, tensor: torch.Tensor, ndim: int, layout: str) -> None:
    """Raise LossShapeError unless ``tensor`` has ``ndim`` dimensions (``layout`` names them)."""
    if not isinstance(tensor, torch.Tensor):
        raise LossShapeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(tensor).__name__}")
    if tensor.dim() != ndim:
        raise LossShapeError(f"{name} must have shape {layout}, got {tuple(tensor.shape)}")


def check_logits_targets(logits: torch.Tensor, targets: torch.Tensor) -> None:
    """Check a (N, C) float logits matrix against (N,) integer class targets in [0, C)."""
    check_ndim("logits", logits, 2, "(N, C)")
    check_ndim("targets", targets, 1, "(N,)")
    if not logits.is_floating_point():
        raise LossShapeError(f"logits must be floating point, got {logits.dtype}")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise LossShapeError(f"targets must be integer class indices, got {targets.dtype}")
    if targets.shape[0] != logits.shape[0]:
        raise LossShapeError(
            f"logits has {logits.shape[0]} rows but targets has {targets.shape[0]}; give one target per row"
        )
    if logits.shape[1] < 2:
        raise LossShapeError(f"logits needs at least 2 classes, got {logits.shape[1]}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        raise LossShapeError(
            f"targets must lie in [0, {logits.shape[1]}), got range "
            f"[{int(targets.min())}, {int(targets.max())}]"
        )


def check_embeddings_labels(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Check (N, D) float embeddings against (N,) integer labels."""
    check_ndim("embeddings", embeddings, 2, "(N, D)")
    check_ndim("labels", labels, 1, "(N,)")
    if not embeddings.is_floating_point():
        raise LossShapeError(f"embeddings must be floating point, got {embeddings.dtype}")
    if labels.is_floating_point():
        raise LossShapeError(f"labels must be integer class ids, got {labels.dtype}")
    if labels.shape[0] != embeddings.shape[0]:
        raise LossShapeError(
            f"embeddings has {embeddings.shape[0]} rows but labels has {labels.shape[0]}; give one label per row"
        )


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise LossShapeError unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise LossShapeError(
            f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have the same shape"
        )


def one_hot(targets: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """One-hot matrix of ``targets`` with the dtype and device of ``like``."""
    return torch.nn.functional.one_hot(targets.long(), num_classes).to(dtype=like.dtype, device=like.device)
