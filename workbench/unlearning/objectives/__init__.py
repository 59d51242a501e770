"""Unlearning objectives: one file per method, all in one registry.

An objective is a function of (model, batch, reference outputs where needed) that returns a
:class:`LossOutput` (the loss to minimise plus its named parts). Methods are classes registered with
:func:`register`; each declares its typed ``params_cls`` (strict config), whether it needs a frozen
reference model (``needs_reference``), and, if it keeps state across steps (``constrained``'s adaptive
weight), ``state_dict``/``load_state_dict`` so that checkpoints resume it exactly.

Adding a method touches one file here plus its test: write ``objectives/<name>.py`` with a
``@register("<name>")`` class and import it at the bottom of this file.
"""

from __future__ import annotations

from ._base import (
    OBJECTIVES,
    Context,
    LossOutput,
    Objective,
    Reference,
    register,
    sequence_nll,
    token_mean_ce,
)

# the methods register themselves on import
from . import constrained, grad_ascent, grad_diff, npo, rmu, simnpo, sure  # noqa: E402,F401  isort: skip

__all__ = [
    "OBJECTIVES",
    "Context",
    "LossOutput",
    "Objective",
    "Reference",
    "register",
    "sequence_nll",
    "token_mean_ce",
]
