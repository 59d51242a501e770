"""The model organism: the workbench's embedded default.

A seeded synthetic world (people with personal data, short stories, encyclopedic entities, general
knowledge) written in the layouts real users have (SemEval-2025 Task 4, MIA member/nonmember, MMLU,
trace facts), and a small OLMo-2 trained on it from scratch on CPU until it knows the world::

    import workbench as wb
    org = wb.organism.build("tiny", seed=0)     # cached under $WORKBENCH_CACHE/organism/
    print(org.card.table())
    lm = wb.load(org.path)                      # the folder root is a Hugging Face model folder
"""

from .build import Organism, build, cached, config_hash, folder_name, info
from .card import ACCEPTANCE, Scorecard
from .config import FORMAT_VERSION, PRESETS, ModelConfig, OrganismConfig, TrainConfig, WorldConfig, resolve

__all__ = [
    "ACCEPTANCE",
    "FORMAT_VERSION",
    "PRESETS",
    "ModelConfig",
    "Organism",
    "OrganismConfig",
    "Scorecard",
    "TrainConfig",
    "WorldConfig",
    "build",
    "cached",
    "config_hash",
    "folder_name",
    "info",
    "resolve",
]
