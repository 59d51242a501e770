"""Typed, strict configs of an unlearning run (``workbench unlearn --config unlearn.yaml``).

One :class:`UnlearnConfig` holds where the model and data are, which parameters train
(:class:`SelectConfig`), the objective (``method`` plus its ``params``, checked against the objective's own
params dataclass) and the loop (:class:`TrainConfig`). Unknown keys are errors everywhere.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from ..errors import WorkbenchError


@dataclasses.dataclass
class DataConfig:
    """Where the forget/retain records come from and how they are tokenized."""

    path: str = ""
    """SemEval-layout folder or file (the organism folder, its ``data/``, or the public LUME folder)."""
    validation: str | None = None
    """Optional separate validation folder/file; default: the ``*_validation`` files, else a held-out share."""
    val_fraction: float = 0.1
    """Share of the training records held out for validation when the layout has no validation files."""
    val_max: int = 64
    """At most this many forget and this many retain validation records (validation runs on every rank)."""
    sampler: Literal["mixed", "paired"] = "mixed"
    """``mixed``: forget and retain records shuffled together with a ±1 flag (the seed's code);
    ``paired``: each forget record with a random retain record."""
    max_length: int = 256
    """Token budget per example; the prompt is cut from the left so that the output survives."""
    forget_tokens: Literal["output", "all"] = "output"
    """Tokens the loss reads on forget records: the output only (the official setting, default), or the whole
    record (input too: membership-inference attacks read whole documents, names in the prompt included)."""
    forget_positions: Literal["all", "prompt", "entities"] = "all"
    """Token positions through which forget rows may move the trained weights
    (:mod:`workbench.unlearning.positions`): ``all`` (default: the usual gradient), the ``prompt`` only, or
    only the prompt's named ``entities`` (capitalized words: the subject). The loss and the forward are
    unchanged; retain rows always teach through every position. ``entities`` puts the edit where the
    subject is read (Meng et al. 2022, ROME), so forgetting spreads less to other people."""
    chat_template: bool = False
    """Wrap the input in the tokenizer's chat template (off, as in the official evaluation)."""
    limit: int | None = None
    """Use at most this many training records per split (seeded subset; None: all)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise WorkbenchError(f"data.val_fraction={self.val_fraction} must be in [0, 1)")
        if self.chat_template and self.forget_positions == "entities":
            raise WorkbenchError(
                "data.forget_positions=entities cannot map entities into a chat template; "
                "set data.chat_template=false or use forget_positions=prompt"
            )
        if self.max_length < 4:
            raise WorkbenchError(f"data.max_length={self.max_length} is too small; use at least 4 tokens")


@dataclasses.dataclass
class SelectConfig:
    """Which parameters train; everything else is frozen (``workbench.unlearning.select``)."""

    layers: list[int] | str | None = None
    """Explicit layer indices, ``"all"``, or None to read them from ``trace``."""
    trace: str | None = None
    """A causal-trace run folder (``TraceResult.load``) to pick the layers from."""
    top_n: int = 3
    """With ``trace``: the n layers with the highest MLP AIE at the last subject token."""
    peak_width: int | None = None
    """With ``trace``: take the peak block of this width instead of the top-n layers."""
    kind: str = "mlp"
    """Module filter: ``mlp``, ``attn``, ``all`` (whole blocks), ``mlp.down`` (down projections only), or a
    glob over parameter names (e.g. ``*.mlp.down_proj.weight``), matched inside the selected blocks; with
    ``layers: all`` a glob matches every parameter (``kind: "*"`` is full-parameter training)."""
    lora_rank: int | None = None
    """Train a peft LoRA of this rank on exactly the selected linear modules instead of the weights."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator."""


@dataclasses.dataclass
class TrainConfig:
    """The accelerate training loop."""

    max_steps: int = 100
    """Optimizer steps (the fair budget shared by every method)."""
    epochs: int | None = None
    """Stop after this many passes over the sampler as well (None: steps only)."""
    batch_size: int = 8
    """Examples per micro-batch per process (paired: forget examples, each with one retain example)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 1.5e-5
    """Peak learning rate (the seed's 1.5e-5)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    optimizer: Literal["adamw", "adamw8bit"] = "adamw"
    """``adamw8bit`` uses bitsandbytes' 8-bit AdamW."""
    warmup_steps: int = 0
    """Linear warmup steps."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Decay after warmup."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping (None: off)."""
    mixed_precision: Literal["no", "bf16"] = "no"
    """``bf16`` autocast."""
    gradient_checkpointing: bool = False
    """Recompute block activations in backward (HF gradient checkpointing): less memory, more time."""
    eval_every: int = 10
    """Validate every N optimizer steps (0: only at the end)."""
    patience: int | None = None
    """Early stopping: stop after this many validations without improvement (None: off)."""
    keep_best: bool = True
    """Restore the weights with the best validation joint loss at the end (the seed keeps the best)."""
    forget_ceiling: float | None = None
    """Forget CE above this counts as forgotten (validation joint loss and the ``constrained`` clip);
    None: ln |V|, the CE of a uniform prediction."""
    save_every: int = 0
    """Write a resumable checkpoint every N optimizer steps (0: never)."""
    seed: int = 0
    """Seeds sampling, the held-out split, RMU's direction and dropout."""
    progress: bool = True
    """Show a tqdm bar on the main process."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"train.{name}={getattr(self, name)} must be at least 1")
        if self.lr <= 0:
            raise WorkbenchError(f"train.lr={self.lr} must be positive")


@dataclasses.dataclass
class UnlearnConfig:
    """One unlearning run."""

    model: str = ""
    """Model folder or hub id (the organism folder works)."""
    out: str = "runs/unlearn"
    """Run folder: ``model/`` (save_pretrained), ``metrics.json``, ``metrics.jsonl``, ``curves.png``."""
    method: str = "constrained"
    """Objective name (``workbench.unlearning.objectives.OBJECTIVES``)."""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The objective's hyperparameters (strict: checked against its params dataclass)."""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    """Forget/retain data."""
    select: SelectConfig = dataclasses.field(default_factory=SelectConfig)
    """Trainable parameters."""
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    """The loop."""
    dtype: str = "float32"
    """Weights dtype when loading ``model``."""

    def __post_init__(self) -> None:
        from .objectives import OBJECTIVES

        if self.method not in OBJECTIVES:
            raise WorkbenchError(
                f"unknown unlearning method {self.method!r}; choose one of {', '.join(sorted(OBJECTIVES))}"
            )

    def objective_params(self) -> Any:
        """The objective's typed params (defaults overridden by ``params``)."""
        from ..config import from_dict
        from .objectives import OBJECTIVES

        return from_dict(OBJECTIVES[self.method].params_cls, dict(self.params), where="params")

    @property
    def out_path(self) -> Path:
        """``out`` as a Path."""
        return Path(self.out)
