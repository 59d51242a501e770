"""Resumable checkpoints of an unlearning run, written atomically.

``<out>/checkpoints/step_<N>/`` holds the trainable parameters (``trainable.safetensors``), the optimizer
state (``optimizer.pt``, read back with ``torch.load(weights_only=True)``), the RNG states
(``rng.safetensors``) and ``state.json`` (step, sampler position, scheduler, objective state, best-so-far,
early-stopping counter). A step folder is written under a temporary name and renamed into place; the
``latest`` pointer is then replaced atomically, so a kill at any moment leaves the previous checkpoint
intact. ``best.safetensors`` keeps the trainable weights with the best validation joint loss.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..io import load_tensors, read_json, save_tensors, write_json, write_text


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


def _rng_tensors() -> dict[str, torch.Tensor]:
    out = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda{i}"] = s
    return out


def _set_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


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


def save_checkpoint(folder: Path, model, names, optimizer, state: TrainState, *, keep: int = 1) -> Path:
    """Write ``folder/step_<N>`` atomically and point ``folder/latest`` at it; keep the last ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{state.step:07d}"
    tmp = folder / f".tmp_step_{state.step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(tmp / "trainable.safetensors", trainable_state(model, names))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    save_tensors(tmp / "rng.safetensors", _rng_tensors())
    write_json(tmp / "state.json", dataclasses.asdict(state))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_text(folder / "latest", final.name + "\n")
    steps = sorted(p for p in folder.glob("step_*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The folder named by ``folder/latest``, or None."""
    pointer = folder / "latest"
    if not pointer.is_file():
        return None
    path = folder / pointer.read_text(encoding="utf-8").strip()
    return path if (path / "state.json").is_file() else None


def load_checkpoint(path: Path, model, optimizer) -> TrainState:
    """Restore weights, optimizer and RNG from ``path``; returns the loop state."""
    load_trainable(model, load_tensors(path / "trainable.safetensors"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
    _set_rng(load_tensors(path / "rng.safetensors"))
    data: dict[str, Any] = read_json(path / "state.json")
    return TrainState(**data)
