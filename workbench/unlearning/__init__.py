"""Layer-constrained unlearning (SHA256 at SemEval-2025 Task 4) and its baselines, on accelerate.

    from workbench.unlearning import UnlearnConfig, unlearn
    cfg = load_config(UnlearnConfig, "configs/unlearn/constrained.yaml")
    result = unlearn(cfg)          # -> UnlearnResult; <out>/model is the unlearned model

``data`` tokenizes SemEval records (loss on output tokens only) and samples forget/retain batches;
``objectives/`` holds one file per method in one registry; ``select`` picks the trainable layers (from a
causal trace or a list) and modules; ``trainer`` is the one accelerate loop.
"""

from .config import DataConfig, SelectConfig, TrainConfig, UnlearnConfig
from .objectives import OBJECTIVES, LossOutput
from .report import UnlearnResult, ValMetrics
from .select import Selection, apply_selection
from .trainer import unlearn

__all__ = [
    "OBJECTIVES",
    "DataConfig",
    "LossOutput",
    "SelectConfig",
    "Selection",
    "TrainConfig",
    "UnlearnConfig",
    "UnlearnResult",
    "ValMetrics",
    "apply_selection",
    "unlearn",
]
