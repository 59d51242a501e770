"""Unlearning data: SemEval records → token examples (loss on OUTPUT tokens only) → forget/retain batches.

Records are read by :func:`workbench.data.read_semeval` (the one reader shared with the evaluation suite).
The prompt (``input``, optionally in the chat template; off by default, as in the official evaluation) and
the ``output`` are tokenized separately and concatenated; labels are ``-100`` everywhere except on the
output tokens, as in the seed's code (SHA256 at SemEval-2025 Task 4, ``unlearn.py``: loss_mask on the
output only).

Samplers are deterministic functions of (seed, epoch): an epoch's batches are recomputed, never drawn from
a stateful RNG, so a checkpoint needs only (epoch, position) to resume exactly. Under several processes
each rank takes its own rows of every global batch (different data per rank).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch

from ..data import SemEvalRecord, read_semeval
from ..errors import WorkbenchError
from .positions import tokenize_with_entities

log = logging.getLogger(__name__)

IGNORE = -100


@dataclasses.dataclass(frozen=True)
class Example:
    """One tokenized record: ``input_ids`` and ``labels`` (``-100`` off the output), and its side."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    forget: bool
    id: str = ""
    n_prompt: int = 0
    """Number of leading prompt (``input``) tokens; the rest are the output."""
    entities: tuple[int, ...] = ()
    """Positions of the prompt's named-entity tokens (only with ``data.forget_positions: entities``)."""


@dataclasses.dataclass
class UnlearnBatch:
    """A padded batch of forget and retain rows; ``is_forget`` is the seed's ±1 flag as a bool."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    is_forget: torch.Tensor
    prompt_mask: torch.Tensor | None = None
    """[B, T] bool: the prompt (``input``) tokens of each row, whatever the labels cover."""
    entity_mask: torch.Tensor | None = None
    """[B, T] bool: the prompt's named-entity tokens (:mod:`~workbench.unlearning.positions`)."""

    def to(self, device: torch.device | str) -> UnlearnBatch:
        """The batch on ``device``."""
        return UnlearnBatch(*(None if t is None else t.to(device) for t in dataclasses.astuple(self)))

    @property
    def n_forget(self) -> int:
        """Number of forget rows."""
        return int(self.is_forget.sum())

    @property
    def n_retain(self) -> int:
        """Number of retain rows."""
        return int((~self.is_forget).sum())

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The keyword arguments of the model's forward."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


@dataclasses.dataclass
class UnlearnData:
    """Tokenized train and validation examples of both sides."""

    forget: list[Example]
    retain: list[Example]
    val_forget: list[Example]
    val_retain: list[Example]


def _prompt_ids(tokenizer, text: str, chat_template: bool) -> list[int]:
    if chat_template:
        if getattr(tokenizer, "chat_template", None) is None:
            raise WorkbenchError(
                "data.chat_template=true but the tokenizer has no chat template; set it false"
            )
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=True, add_generation_prompt=True
        )
        return list(ids["input_ids"] if isinstance(ids, dict) else ids)
    return list(tokenizer(text)["input_ids"])


def tokenize_record(
    tokenizer,
    rec: SemEvalRecord,
    *,
    max_length: int,
    chat_template: bool = False,
    whole: bool = False,
    entities: bool = False,
) -> Example:
    """Tokenize one record; the prompt is truncated from the left so the output tokens survive.

    Labels cover the output tokens; with ``whole`` every token after the first (the prompt too). With
    ``entities`` the prompt's named-entity token positions are recorded (``data.forget_positions``).
    """
    if entities:
        if chat_template:
            raise WorkbenchError("entity positions need chat_template=False (no offsets into the template)")
        prompt, found = tokenize_with_entities(tokenizer, rec.input)
    else:
        prompt, found = _prompt_ids(tokenizer, rec.input, chat_template), ()
    output = list(tokenizer(rec.output, add_special_tokens=False)["input_ids"])
    if not output:
        raise WorkbenchError(
            f"record {rec.id!r} has an empty output; every record needs an output to learn from"
        )
    output = output[: max_length - 1]
    cut = max(len(prompt) - (max_length - len(output)), 0)
    prompt = prompt[cut:]
    ids = prompt + output
    labels = ([IGNORE] + prompt[1:] if whole else [IGNORE] * len(prompt)) + output
    kept = tuple(i - cut for i in found if i >= cut)
    return Example(tuple(ids), tuple(labels), rec.split == "forget", rec.id, len(prompt), kept)


def _subset(records: list[SemEvalRecord], n: int | None, seed: int) -> list[SemEvalRecord]:
    if n is None or len(records) <= n:
        return records
    g = torch.Generator().manual_seed(seed)
    keep = sorted(torch.randperm(len(records), generator=g)[:n].tolist())
    return [records[i] for i in keep]


def _split_val(records: list[SemEvalRecord], fraction: float, seed: int) -> tuple[list, list]:
    if fraction <= 0 or len(records) < 2:
        return records, []
    g = torch.Generator().manual_seed(seed + 17)
    order = torch.randperm(len(records), generator=g).tolist()
    n_val = max(1, int(round(len(records) * fraction)))
    val = set(order[:n_val])
    return [r for i, r in enumerate(records) if i not in val], [r for i, r in enumerate(records) if i in val]


def load_data(tokenizer, cfg, seed: int = 0) -> UnlearnData:
    """Read and tokenize train/validation examples for a :class:`~workbench.unlearning.config.DataConfig`."""
    if not cfg.path:
        raise WorkbenchError(
            "data.path is empty; point it at a SemEval-layout folder (e.g. the organism folder)"
        )
    records = read_semeval(cfg.path)
    train = [r for r in records if r.part != "validation"]
    val = [r for r in records if r.part == "validation"]
    if cfg.validation:
        val = read_semeval(cfg.validation)
    out: dict[str, list[Example]] = {}
    for split in ("forget", "retain"):
        tr = [r for r in train if r.split == split]
        if not tr:
            raise WorkbenchError(
                f"{cfg.path}: the {split} training split is empty; unlearning needs both sides"
            )
        va = [r for r in val if r.split == split]
        if not va:
            tr, va = _split_val(tr, cfg.val_fraction, seed)
        tr = _subset(tr, cfg.limit, seed)
        va = _subset(va, cfg.val_max, seed)
        whole = split == "forget" and cfg.forget_tokens == "all"
        ent = split == "forget" and cfg.forget_positions == "entities"
        tok = dict(max_length=cfg.max_length, chat_template=cfg.chat_template)
        out[split] = [tokenize_record(tokenizer, r, **tok, whole=whole, entities=ent) for r in tr]
        if ent and tr:
            bare = sum(not e.entities for e in out[split])
            if bare == len(out[split]):
                raise WorkbenchError(
                    f"{cfg.path}: data.forget_positions=entities found no capitalized name in any forget "
                    "prompt; use forget_positions=prompt or all"
                )
            if bare:
                log.warning(
                    "%d of %d forget records name no entity and give no forget gradient", bare, len(tr)
                )
        out[f"val_{split}"] = [tokenize_record(tokenizer, r, **tok) for r in va]
    log.info(
        "unlearning data: %d forget, %d retain (%d/%d validation)",
        *(len(out[k]) for k in ("forget", "retain", "val_forget", "val_retain")),
    )
    return UnlearnData(out["forget"], out["retain"], out["val_forget"], out["val_retain"])


def collate(examples: Sequence[Example], pad_id: int) -> UnlearnBatch:
    """Right-pad examples into an :class:`UnlearnBatch`."""
    if not examples:
        raise WorkbenchError("cannot build an empty batch")
    T = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    prompt = torch.zeros((len(examples), T), dtype=torch.bool)
    entity = torch.zeros((len(examples), T), dtype=torch.bool)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
        prompt[i, : e.n_prompt] = True
        entity[i, list(e.entities)] = True
    flags = torch.tensor([e.forget for e in examples], dtype=torch.bool)
    return UnlearnBatch(ids, mask, labels, flags, prompt, entity)


class Sampler:
    """Deterministic epoch plans of global batches (lists of (side, index)), cut per rank.

    ``mixed``: every forget and retain example once per epoch, shuffled together (the seed's RandomSampler
    over one dataset with a ±1 factor). ``paired``: every forget example once per epoch, each with a
    uniformly drawn retain example. ``batch_size`` is per process; a global batch holds
    ``batch_size * world`` (mixed) or as many forget examples (paired).
    """

    def __init__(
        self, kind: str, n_forget: int, n_retain: int, batch_size: int, *, seed: int, world: int = 1
    ):
        if kind not in ("mixed", "paired"):
            raise WorkbenchError(f"unknown sampler {kind!r}; use mixed or paired")
        self.kind, self.n_forget, self.n_retain = kind, n_forget, n_retain
        self.batch_size, self.seed, self.world = batch_size, seed, world

    def epoch(self, epoch: int) -> list[list[tuple[str, int]]]:
        """The global batches of ``epoch``, each a list of rows; rows are dealt to ranks round-robin."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.kind == "mixed":
            pool = [("forget", i) for i in range(self.n_forget)] + [
                ("retain", i) for i in range(self.n_retain)
            ]
            items = [pool[i] for i in torch.randperm(len(pool), generator=g).tolist()]
        else:
            order = torch.randperm(self.n_forget, generator=g).tolist()
            partners = torch.randint(self.n_retain, (self.n_forget,), generator=g).tolist()
            items = [x for i, j in zip(order, partners) for x in (("forget", i), ("retain", j))]
        per = self.batch_size * self.world * (2 if self.kind == "paired" else 1)
        n = len(items) // per  # drop the ragged tail so every rank gets a full, distinct share
        if n == 0:
            raise WorkbenchError(
                f"too few examples ({len(items)}) for one global batch of {per}; lower train.batch_size"
            )
        return [items[b * per : (b + 1) * per] for b in range(n)]

    def rows(self, batch: list[tuple[str, int]], rank: int) -> list[tuple[str, int]]:
        """This rank's rows of a global batch (paired rows stay with their partner)."""
        if self.kind == "paired":
            pairs = [batch[i : i + 2] for i in range(0, len(batch), 2)]
            return [x for p in pairs[rank :: self.world] for x in p]
        return batch[rank :: self.world]

    def batches_per_epoch(self) -> int:
        """Number of global batches in one epoch (the same for every epoch)."""
        if not hasattr(self, "_per_epoch"):
            self._per_epoch = len(self.epoch(0))
        return self._per_epoch


def pad_id_of(tokenizer) -> int:
    """The pad token id (eos when the tokenizer has no pad token)."""
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pid if pid is not None else 0)


def default_ceiling(vocab_size: int) -> float:
    """ln |V|: the CE of a uniform prediction, the default forget-loss ceiling."""
    return math.log(max(int(vocab_size), 2))
