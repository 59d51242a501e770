"""The editor registry and what every editor is handed.

An editor is a class registered with :func:`register` in its own file (``rome.py``, ``memit.py``,
``alphaedit.py``); it names its typed config (``config_cls``), says whether it needs the key statistics
(``needs_stats``) and implements :meth:`Editor.apply`, which writes its updates into the model in place
(MEMIT needs each layer's update in place before it measures the next). :func:`workbench.editing.edit`
records the weights before and after, so every editor gets ``revert()`` and the deltas for free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from .config import EditConfig
from .requests import EditRequest

EDITORS: dict[str, type[Editor]] = {}


def register(name: str) -> Callable[[type[Editor]], type[Editor]]:
    """Class decorator: add an editor to :data:`EDITORS` under ``name``."""

    def deco(cls: type[Editor]) -> type[Editor]:
        cls.name = name
        EDITORS[name] = cls
        return cls

    return deco


@dataclasses.dataclass
class EditContext:
    """Everything an editor reads: the model, the requests, the layers, the config and the statistics."""

    lm: Any
    requests: list[EditRequest]
    layers: list[int]
    """Sorted ascending."""
    config: EditConfig
    prefixes: list[list[str]]
    """Context prefix groups (the bare prompt is added by the key code)."""
    stats: Callable[[list[int]], dict[int, torch.Tensor]]
    """``stats(layers) -> {layer: C}``, computed or read from the cache on first use."""
    state: Any = None
    """What an earlier call of the same editor left (AlphaEdit: null-space projections, earlier keys)."""
    progress: bool = True


@dataclasses.dataclass
class EditOutcome:
    """What an editor reports besides the weights it changed."""

    target_prob: list[float]
    """Per request, the probability of the new target reached by the δ optimisation."""
    state: Any = None
    """State for a later call (sequential editing)."""
    info: dict = dataclasses.field(default_factory=dict)
    """Method-specific numbers (e.g. the null-space dimension per layer)."""
    keys: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    """Per layer, ``[R, d_in]`` the keys written (ROME: each bare prompt's key k*; MEMIT: context means)."""
    values: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    """Per layer, ``[R, d_out]`` the down-projection outputs aimed at (ROME: v*; MEMIT: now + its share)."""


class Editor:
    """Base of the editors: subclasses set ``config_cls`` and implement :meth:`apply`."""

    name: ClassVar[str] = "base"
    config_cls: ClassVar[type[EditConfig]] = EditConfig
    grouped_keys: ClassVar[bool] = False
    """Average keys per context group first (MEMIT's ``compute_ks``) rather than over all contexts (ROME)."""
    trace_layers: ClassVar[str] = "top"
    """How layers come from a trace: ``top`` (the strongest MLP layer) or ``block`` (the peak block)."""

    def apply(self, ctx: EditContext) -> EditOutcome:
        """Write the edits of ``ctx.requests`` into ``ctx.lm`` in place."""
        raise NotImplementedError
