"""Typed, strict configuration of the model organism and the preset registry.

An :class:`OrganismConfig` is three dataclasses: the synthetic world (:class:`WorldConfig`), the
OLMo-2 architecture (:class:`ModelConfig`) and the deterministic trainer (:class:`TrainConfig`).
Unknown keys are errors. Presets register themselves with :func:`preset`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import WorkbenchError

FORMAT_VERSION = "organism-v2"

DISTRACTORS = ("same_side", "relation")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise WorkbenchError(f"organism config: {message}")


@dataclass(frozen=True)
class WorldConfig:
    """Sizes of the synthetic world. Counts are per side (forget and retain each get this many)."""

    people: int = 20
    """Task2-like people in each side's train split (one sc + five qa records each)."""
    people_validation: int = 5
    """Extra people per side in the validation split (also trained on: the model knows them). With 20 train
    people, 5 make 50 people in all and so 100 edit requests (two relations each)."""
    stories: int = 12
    """Task1-like stories per side, train split (one sc + one qa each)."""
    stories_validation: int = 3
    """Stories per side, validation split."""
    entities: int = 12
    """Task3-like encyclopedic entities per side, train split (one sc + one qa each)."""
    entities_validation: int = 3
    """Entities per side, validation split."""
    bio_paraphrases: int = 5
    """How many biographies of each person are trained on (1-8): each words the attributes differently,
    orders its sentences differently and names the person in every sentence (knowledge augmentation)."""
    qa_phrasings: int = 3
    """Training phrasings of each person question; the first is the SemEval record's prompt (1-3)."""
    countries: int = 40
    """Fictional countries with capitals (utility: world geography)."""
    arithmetic_max: int = 9
    """Utility arithmetic: sums a + b for 1 <= a, b <= arithmetic_max (at most 12)."""
    units: int = 16
    """Real units of measure (utility: units of measure; at most 16)."""
    fictional_units: int = 0
    """Units of the fictional world ("There are 7 darns in a velk."), added to the real ones."""
    antonyms: int = 40
    """Utility word relations: antonym pairs (at most 40)."""
    past_tenses: int = 0
    """Utility word relations: irregular English past tenses (at most 56), added to the antonyms."""
    statements: int = 3
    """Prose phrasings of each utility fact in the corpus (1-6; the first five are forward, the sixth reversed)."""
    utility_asked: float = 0.5
    """Share of each utility subject asked (as MC and QA) in training; the rest is the test set."""
    mc_variants: int = 4
    """Multiple-choice (answer-letter) training copies of each asked utility fact (fresh distractors)."""
    cloze_variants: int = 0
    """Cloze training copies of each asked fact, in lm-eval's ``mmlu_continuation`` few-shot layout."""
    utility_repeats: int = 1
    """How many times each utility document appears in one pass over the corpus (1-8)."""
    distractors: str = "same_side"
    """Where a utility item's wrong choices come from. ``"same_side"``: answers of the same relation on the
    same side of the asked/test split (a test item's distractors are other test answers, never an answer the
    model was trained to give after "Answer:"); ``"relation"``: any other answer of the relation. Sums
    always use nearby numbers."""

    def __post_init__(self) -> None:
        _check(self.people >= 1 and self.stories >= 1 and self.entities >= 1, "people/stories/entities >= 1")
        _check(
            min(self.people_validation, self.stories_validation, self.entities_validation) >= 1,
            "each validation count must be >= 1",
        )
        _check(1 <= self.bio_paraphrases <= 8, "bio_paraphrases must be 1-8")
        _check(1 <= self.qa_phrasings <= 3, "qa_phrasings must be 1-3")
        _check(1 <= self.statements <= 6, "statements must be 1-6")
        _check(self.countries >= 8, "countries must be >= 8")
        _check(3 <= self.arithmetic_max <= 12, "arithmetic_max must be 3-12")
        _check(4 <= self.units <= 16, "units must be 4-16")
        _check(0 <= self.fictional_units <= 200, "fictional_units must be 0-200")
        _check(6 <= self.antonyms <= 40, "antonyms must be 6-40")
        _check(0 <= self.past_tenses <= 56, "past_tenses must be 0-56")
        _check(0 <= self.mc_variants <= 32, "mc_variants must be 0-32")
        _check(0 <= self.cloze_variants <= 8, "cloze_variants must be 0-8")
        _check(1 <= self.utility_repeats <= 8, "utility_repeats must be 1-8")
        _check(0.2 <= self.utility_asked <= 0.8, "utility_asked must be in [0.2, 0.8]")
        _check(self.distractors in DISTRACTORS, f"distractors must be one of {DISTRACTORS}")


@dataclass(frozen=True)
class ModelConfig:
    """OLMo-2 architecture. Every dimension is a multiple of 64 (bitsandbytes 4-bit on CPU needs it)."""

    layers: int = 6
    hidden: int = 256
    heads: int = 4
    intermediate: int = 1024
    vocab_size: int = 4096
    """Target BPE vocabulary; the tokenizer is padded with unused tokens to exactly this size."""
    max_positions: int = 512
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("hidden", "intermediate", "vocab_size", "max_positions"):
            _check(getattr(self, name) % 64 == 0, f"model.{name} must be a multiple of 64")
        _check(self.layers >= 1 and self.heads >= 1, "model.layers and model.heads must be >= 1")
        _check(
            self.hidden % self.heads == 0 and (self.hidden // self.heads) % 64 == 0,
            "model.hidden / model.heads (the head dim) must be a multiple of 64",
        )
        _check(self.vocab_size >= 512, "model.vocab_size must be >= 512")


@dataclass(frozen=True)
class TrainConfig:
    """A fixed-step AdamW run with linear warmup and a cosine decay that ends at the last step."""

    steps: int = 1000
    batch_rows: int = 16
    seq_len: int = 256
    """Packed row length; documents never cross rows and attend only to themselves."""
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    bf16: bool = True
    """bf16 autocast on CPU (weights and optimizer state stay fp32)."""
    threads: int = 2

    def __post_init__(self) -> None:
        _check(self.steps >= 1 and self.batch_rows >= 1, "train.steps and train.batch_rows must be >= 1")
        _check(self.seq_len >= 64, "train.seq_len must be >= 64")
        _check(0 <= self.warmup_steps < self.steps, "train.warmup_steps must be in [0, steps)")
        _check(self.lr > 0 and 0 <= self.min_lr_ratio <= 1, "train.lr > 0 and 0 <= min_lr_ratio <= 1")
        _check(self.threads >= 1, "train.threads must be >= 1")


@dataclass(frozen=True)
class OrganismConfig:
    """The whole recipe: world, model and training. Together with the seed it determines the organism."""

    world: WorldConfig = field(default_factory=WorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _check(self.train.seq_len <= self.model.max_positions, "train.seq_len must be <= model.max_positions")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for YAML and hashing)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrganismConfig:
        """Strict inverse of :meth:`to_dict`: unknown or misspelled keys are errors."""
        parts = {"world": WorldConfig, "model": ModelConfig, "train": TrainConfig}
        _check(isinstance(data, dict), "expected a mapping with world/model/train")
        unknown = set(data) - set(parts)
        _check(not unknown, f"unknown section(s) {sorted(unknown)}; valid: {sorted(parts)}")
        built = {}
        for name, klass in parts.items():
            section = data.get(name) or {}
            valid = {f.name for f in dataclasses.fields(klass)}
            bad = set(section) - valid
            _check(not bad, f"unknown key(s) {sorted(bad)} in {name}; valid: {sorted(valid)}")
            built[name] = klass(**section)
        return cls(**built)


PRESETS: dict[str, Callable[[], OrganismConfig]] = {}
"""Preset name -> a function returning its :class:`OrganismConfig`."""


def preset(name: str) -> Callable[[Callable[[], OrganismConfig]], Callable[[], OrganismConfig]]:
    """Decorator registering a preset factory under ``name``."""

    def register(fn: Callable[[], OrganismConfig]) -> Callable[[], OrganismConfig]:
        PRESETS[name] = fn
        return fn

    return register


def resolve(name: str) -> OrganismConfig:
    """The config of preset ``name`` (a WorkbenchError lists the valid presets)."""
    if name not in PRESETS:
        raise WorkbenchError(f"unknown organism preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


@preset("tiny")
def _tiny() -> OrganismConfig:
    """Integration tests: 2 layers, hidden 128, a small world; about a minute on 2 cores."""
    return OrganismConfig(
        world=WorldConfig(
            people=4,
            people_validation=1,
            stories=3,
            stories_validation=1,
            entities=3,
            entities_validation=1,
            bio_paraphrases=3,
            qa_phrasings=2,
            countries=12,
            arithmetic_max=5,
            units=8,
            antonyms=12,
            statements=3,
            mc_variants=4,
        ),
        model=ModelConfig(
            layers=2, hidden=128, heads=2, intermediate=512, vocab_size=1024, max_positions=512
        ),
        train=TrainConfig(steps=300, batch_rows=8, seq_len=256, lr=2e-3, warmup_steps=15),
    )


@preset("default")
def _default() -> OrganismConfig:
    """The embedded default: 6 layers, hidden 256, 8.4M parameters; builds in about 8.5 minutes on 2 cores.

    The utility world is sized for knowledge *extraction* (Allen-Zhu & Li 2023, "Physics of Language
    Models 3.1"): a model answers unasked questions from prose only after it has been asked about many
    members of the same relation (120 countries, 100 sums, 64 units, 80 word pairs; 60% asked), has read
    each fact in several phrasings (5, all subject-first: "knowledge augmentation"; 3 gave utility 0.81,
    5 give 0.945), has read each utility document often (4 copies per pass) and trains with weight decay
    (0.1), which on this world turns memorised answers into a general lookup (a geography-only probe at
    equal steps: 0.13 without it, 0.72 with it).
    """
    return OrganismConfig(
        world=WorldConfig(
            countries=120,
            arithmetic_max=10,
            fictional_units=48,
            past_tenses=40,
            utility_asked=0.6,
            mc_variants=0,
            cloze_variants=1,
            utility_repeats=4,
            statements=5,
        ),
        model=ModelConfig(layers=6, hidden=256, heads=4, intermediate=1024, vocab_size=4096),
        train=TrainConfig(steps=520, batch_rows=16, seq_len=256, lr=1e-3, warmup_steps=30, weight_decay=0.1),
    )
