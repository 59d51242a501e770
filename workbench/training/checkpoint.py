"""The one checkpoint/resume format, written atomically and read without pickle.

``<folder>/step_<N>/`` holds

- ``tensors.safetensors``: the trained tensors (an unlearning run's trainable parameters, an SAE's state,
  the organism's whole model), by name;
- ``optimizer.safetensors``: every tensor of the optimizer's per-parameter state, keyed
  ``<parameter name>.<state key>`` (Adam's moments and step; bitsandbytes' 8-bit states too);
- ``rng.safetensors``: the torch RNG states (CPU and every CUDA device);
- ``state.json``: the loop's own state (step, sampler position, best-so-far ...), the optimizer's
  hyperparameters per group and the shapes of 0-d state tensors.

A step folder is written under a temporary name and renamed into place, then the ``latest`` pointer is
replaced atomically, so a kill at any moment leaves the previous checkpoint intact; only the last ``keep``
step folders are kept. Unlearning, SAE training and the organism's trainer all use it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..io import load_tensors, read_json, save_tensors, write_json, write_text


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


def _optimizer_tensors(
    optimizer: torch.optim.Optimizer, params: Iterable[tuple[str, torch.nn.Parameter]]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    names = {id(p): n for n, p in params}
    tensors: dict[str, torch.Tensor] = {}
    scalars, plain = [], {}
    for p, state in optimizer.state.items():
        name = names.get(id(p))
        if name is None:
            continue
        for key, value in state.items():
            if torch.is_tensor(value):
                if value.dim() == 0:
                    scalars.append(f"{name}.{key}")
                flat = value.detach().reshape(1) if value.dim() == 0 else value.detach()
                # a copy: some optimizers (bitsandbytes 8-bit) share one tensor between parameters
                tensors[f"{name}.{key}"] = flat.cpu().clone()
            else:
                plain[f"{name}.{key}"] = value
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return tensors, {"scalars": scalars, "plain": plain, "groups": groups}


def _restore_optimizer(
    optimizer: torch.optim.Optimizer,
    params: Iterable[tuple[str, torch.nn.Parameter]],
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    scalars = set(meta.get("scalars", []))
    plain = meta.get("plain", {})
    for name, p in params:
        state = {}
        for key in {k[len(name) + 1 :] for k in list(tensors) + list(plain) if k.startswith(name + ".")}:
            full = f"{name}.{key}"
            if full in tensors:
                t = tensors[full]
                state[key] = t.reshape(()) if full in scalars else t.to(p.device)
            elif "." not in key:
                state[key] = plain[full]
        if state:
            optimizer.state[p] = state
    for group, saved in zip(optimizer.param_groups, meta.get("groups", [])):
        group.update({k: v for k, v in saved.items() if k in group})


def save_checkpoint(
    folder: str | os.PathLike,
    step: int,
    tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    params: Iterable[tuple[str, torch.nn.Parameter]],
    state: dict[str, Any],
    *,
    keep: int = 1,
) -> Path:
    """Write ``folder/step_<step>`` atomically and point ``folder/latest`` at it; keep the last ``keep``.

    ``params`` names the optimizer's parameters (``model.named_parameters()``); ``state`` is JSON-able.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{step:07d}"
    tmp = folder / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(tmp / "tensors.safetensors", {k: v.detach().cpu() for k, v in tensors.items()})
    meta: dict[str, Any] = {}
    if optimizer is not None:
        opt_tensors, meta = _optimizer_tensors(optimizer, list(params))
        save_tensors(tmp / "optimizer.safetensors", opt_tensors or {"empty": torch.zeros(0)})
    save_tensors(tmp / "rng.safetensors", _rng_tensors())
    write_json(tmp / "state.json", {"step": step, "state": state, "optimizer": meta})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_text(folder / "latest", final.name + "\n")
    steps = sorted(p for p in folder.glob("step_*") if p.is_dir())
    for old in steps[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The step folder named by ``folder/latest``, or None when there is no complete checkpoint."""
    folder = Path(folder)
    pointer = folder / "latest"
    if not pointer.is_file():
        return None
    path = folder / pointer.read_text(encoding="utf-8").strip()
    return path if (path / "state.json").is_file() else None


def load_checkpoint(
    path: str | os.PathLike,
    optimizer: torch.optim.Optimizer | None = None,
    params: Iterable[tuple[str, torch.nn.Parameter]] = (),
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore the optimizer (if given) and the RNG from ``path``; returns ``(tensors, state)``.

    The caller copies the returned tensors into its model (they are the ones given to
    :func:`save_checkpoint`).
    """
    path = Path(path)
    saved = read_json(path / "state.json")
    if optimizer is not None and (path / "optimizer.safetensors").is_file():
        _restore_optimizer(
            optimizer, list(params), load_tensors(path / "optimizer.safetensors"), saved["optimizer"]
        )
    _set_rng(load_tensors(path / "rng.safetensors"))
    return load_tensors(path / "tensors.safetensors"), saved["state"]
