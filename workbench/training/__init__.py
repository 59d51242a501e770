"""What every trainer in the workbench shares: the learning-rate schedule, the checkpoint/resume format
and the OLMo-2 config factory. Used by the organism's trainer, unlearning and SAE training."""

from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .olmo2 import olmo2_config
from .schedule import SCHEDULES, lr_lambda, lr_multiplier

__all__ = [
    "SCHEDULES",
    "latest_checkpoint",
    "load_checkpoint",
    "lr_lambda",
    "lr_multiplier",
    "olmo2_config",
    "save_checkpoint",
]
