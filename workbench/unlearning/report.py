"""Typed results of an unlearning run and its training curves."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass
class ValMetrics:
    """Validation metrics: token-mean CE on the forget and retain sets and the joint loss."""

    forget_ce: float
    retain_ce: float
    joint: float
    """-min(forget_ce, ceiling) + retain_ce: lower is better (forgotten up to the ceiling, retain held)."""


@dataclasses.dataclass
class UnlearnResult:
    """What :func:`workbench.unlearning.unlearn` returns (and writes as ``metrics.json``)."""

    out: Path
    model_dir: Path
    method: str
    steps: int
    stopped: str
    """max_steps | epochs | early_stop."""
    best_step: int | None
    """The step whose weights were kept (``train.keep_best``), else None (the last weights)."""
    val: ValMetrics
    """Validation metrics of the saved weights."""
    layers: list[int]
    trainable: int
    total: int
    wall_time_s: float
    world_size: int
    peak_memory_bytes: int | None = None

    @property
    def share(self) -> float:
        """Trainable share of the parameters."""
        return self.trainable / max(self.total, 1)

    def summary(self) -> str:
        """A few lines for the CLI."""
        kept = f", best step {self.best_step}" if self.best_step is not None else ""
        return (
            f"{self.method}: {self.steps} steps ({self.stopped}{kept}) in {self.wall_time_s:.1f}s on "
            f"{self.world_size} process(es)\n"
            f"trained layers {self.layers}: {self.trainable:,} / {self.total:,} params ({100 * self.share:.2f}%)\n"
            f"validation: forget CE {self.val.forget_ce:.3f}, retain CE {self.val.retain_ce:.3f}, "
            f"joint {self.val.joint:.3f}\n"
            f"model: {self.model_dir}"
        )


def plot_curves(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """Plot training losses/parts and validation CE against steps into ``path`` (PNG)."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    skip = {"step", "epoch", "lr", "grad_norm"}
    train_keys = [k for k in rows[0] if k not in skip and not k.startswith("val_")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in rows]
    for k in train_keys:
        axes[0].plot(steps, [r.get(k) for r in rows], label=k)
    axes[0].set_title(f"training {title}")
    val = [r for r in rows if "val_joint" in r]
    for k in ("val_forget_ce", "val_retain_ce", "val_joint"):
        axes[1].plot([r["step"] for r in val], [r[k] for r in val], marker="o", label=k)
    axes[1].set_title("validation")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)
