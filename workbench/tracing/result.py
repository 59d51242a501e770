"""Typed results of causal tracing and patching, their summaries (AIE) and their run-folder form.

A :class:`TraceResult` holds one :class:`FactTrace` per traced fact: the clean and corrupted scores and a
``[tokens x layers]`` grid of restored scores per kind. The average indirect effect (AIE) follows ROME
(Meng et al. 2022, Fig. 2 and the ``causal_trace`` notebook of kmeng01/rome): the indirect effect of a cell
is its restored score minus the fact's corrupted score; tokens fall into six buckets (first, middle and
last subject token, first subsequent token, further tokens, last token), where the "middle" and
"further" buckets contribute every token they hold; the 95% CI is mean ± 1.96·std/√n.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import torch

from ..errors import WorkbenchError
from ..io import load_tensors, read_json, run_dir, save_tensors, write_json
from .config import KINDS  # noqa: F401  (re-exported: the kinds a result may hold)

ROME_WINDOW, ROME_LAYERS = 10, 48
"""ROME's restoration window: 10 layers of GPT-2 XL's 48 (Meng et al. 2022, Fig. 1), about a fifth."""


def default_window(n_layers: int) -> int:
    """The mlp/attn restoration window that keeps ROME's proportion on a model of ``n_layers`` layers.

    ``max(1, round(n_layers * 10 / 48))``: 10 on 48 layers (GPT-2 XL), 3 on 16 (OLMo-1B), 7 on 32
    (OLMo-7B), 1 on the 6-layer organism. A window as wide as the model restores every layer in every
    cell, and the mlp/attn grids go flat. The same width is the default of the AIE summaries
    (:meth:`TraceResult.peak_block`, the layer counts reported by ``workbench trace``).
    """
    return max(1, round(int(n_layers) * ROME_WINDOW / ROME_LAYERS))


BUCKETS = ("first_subject", "middle_subject", "last_subject", "first_subsequent", "further", "last")


@dataclasses.dataclass
class FactTrace:
    """The trace of one fact: scores are probabilities of ``answer_id`` (the clean top token)."""

    prompt: str
    subject: str
    answer: str | None
    answer_id: int
    answer_token: str
    tokens: list[str]
    input_ids: list[int]
    subject_span: tuple[int, int]
    clean_score: float
    corrupted_score: float
    known: bool
    scores: dict[str, torch.Tensor]  # kind -> [tokens, layers]
    index: int = 0  # position in the input fact list

    def buckets(self) -> dict[str, list[int]]:
        """Token indices of ROME's six buckets for this fact (a bucket may be empty)."""
        s0, s1 = self.subject_span
        last = len(self.tokens) - 1
        return {
            "first_subject": [s0],
            "middle_subject": list(range(s0 + 1, s1 - 1)),
            "last_subject": [s1 - 1],
            "first_subsequent": [s1] if s1 <= last else [],
            "further": list(range(s1 + 1, last)),
            "last": [last],
        }


@dataclasses.dataclass
class AIE:
    """Average indirect effect per bucket and layer: ``mean``/``ci`` are ``[6, layers]``; ``n`` per bucket."""

    kind: str
    buckets: tuple[str, ...]
    mean: torch.Tensor
    ci: torch.Tensor
    n: list[int]

    def row(self, bucket: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, ci)`` over layers for one bucket."""
        if bucket not in self.buckets:
            raise WorkbenchError(f"unknown bucket {bucket!r}; use one of {', '.join(self.buckets)}")
        i = self.buckets.index(bucket)
        return self.mean[i], self.ci[i]


@dataclasses.dataclass
class TraceResult:
    """Causal traces of a fact set (ROME): per-fact grids, AIE summaries, layer choice for unlearning."""

    facts: list[FactTrace]
    kinds: tuple[str, ...]
    n_layers: int
    samples: int
    noise: float
    sigma: float
    window: int
    seed: int
    model: str = "<memory>"
    skipped: list[dict] = dataclasses.field(default_factory=list)

    # -- summaries -------------------------------------------------------------------------------------
    def _check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise WorkbenchError(f"kind {kind!r} was not traced; this result holds {', '.join(self.kinds)}")
        if not self.facts:
            raise WorkbenchError("the trace holds no facts (all were unknown?); trace with keep_unknown=True")

    def aie(self, kind: str = "mlp") -> AIE:
        """Average indirect effect by ROME's six token buckets and by layer, with 95% CIs."""
        self._check_kind(kind)
        mean = torch.full((len(BUCKETS), self.n_layers), math.nan)
        ci = torch.full_like(mean, math.nan)
        counts = []
        for b, name in enumerate(BUCKETS):
            rows = [
                f.scores[kind][f.buckets()[name]] - f.corrupted_score for f in self.facts if f.buckets()[name]
            ]
            data = torch.cat(rows).double() if rows else torch.empty(0, self.n_layers, dtype=torch.float64)
            counts.append(data.shape[0])
            if data.shape[0]:
                mean[b] = data.mean(0).float()
                sd = data.std(0, unbiased=True) if data.shape[0] > 1 else torch.zeros(self.n_layers)
                ci[b] = (1.96 * sd / math.sqrt(data.shape[0])).float()
        return AIE(kind, BUCKETS, mean, ci, counts)

    def layer_effect(self, kind: str = "mlp", bucket: str = "last_subject") -> torch.Tensor:
        """AIE over layers at one bucket (default: the last subject token), ``[layers]``."""
        return self.aie(kind).row(bucket)[0]

    def top_layers(self, kind: str = "mlp", n: int | None = None) -> list[int]:
        """The ``n`` layers with the largest AIE at the last subject token, strongest first.

        ``n`` defaults to the depth-relative width :func:`default_window` (about a fifth of the layers).
        """
        eff = self.layer_effect(kind)
        n = default_window(self.n_layers) if n is None else n
        n = max(1, min(int(n), self.n_layers))
        return [int(i) for i in torch.argsort(eff, descending=True, stable=True)[:n]]

    def peak_block(self, kind: str = "mlp", width: int | None = None) -> list[int]:
        """The ``width`` consecutive layers with the largest summed AIE at the last subject token.

        ``width`` defaults to the depth-relative width :func:`default_window` (about a fifth of the layers).
        """
        eff = self.layer_effect(kind)
        width = default_window(self.n_layers) if width is None else width
        width = max(1, min(int(width), self.n_layers))
        sums = eff.unfold(0, width, 1).sum(-1)
        start = int(torch.argmax(sums))
        return list(range(start, start + width))

    def peak_layer(self, kind: str) -> int:
        """The single layer with the largest AIE at the last subject token."""
        return self.top_layers(kind, 1)[0]

    # -- run folder ------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``trace.json`` (metadata) and ``trace.safetensors`` (grids) into ``folder``."""
        folder = run_dir(folder)
        tensors, facts = {}, []
        for i, f in enumerate(self.facts):
            for kind, grid in f.scores.items():
                tensors[f"fact{i}.{kind}"] = grid.float()
            meta = {
                k: getattr(f, k)
                for k in (
                    "prompt",
                    "subject",
                    "answer",
                    "answer_id",
                    "answer_token",
                    "tokens",
                    "input_ids",
                    "subject_span",
                    "clean_score",
                    "corrupted_score",
                    "known",
                    "index",
                )
            }
            facts.append(meta)
        save_tensors(folder / "trace.safetensors", tensors or {"empty": torch.zeros(0)})
        meta = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "facts"}
        write_json(folder / "trace.json", {"format": "workbench.trace/1", **meta, "facts": facts})
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TraceResult:
        """Read a result written by :meth:`save` (the folder, or its ``trace.json``)."""
        folder = Path(folder)
        if folder.name == "trace.json":
            folder = folder.parent
        if not (folder / "trace.json").is_file():
            raise WorkbenchError(f"{folder} holds no trace.json; pass the run folder of `workbench trace`")
        meta = read_json(folder / "trace.json")
        if meta.get("format") != "workbench.trace/1":
            raise WorkbenchError(
                f"{folder}/trace.json is not a workbench trace (format {meta.get('format')!r})"
            )
        tensors = load_tensors(folder / "trace.safetensors")
        facts = []
        for i, fm in enumerate(meta.pop("facts")):
            scores = {k: tensors[f"fact{i}.{k}"] for k in meta["kinds"]}
            facts.append(FactTrace(**{**fm, "subject_span": tuple(fm["subject_span"])}, scores=scores))
        meta.pop("format")
        meta["kinds"] = tuple(meta["kinds"])
        return cls(facts=facts, **meta)

    @classmethod
    def merge(cls, parts: list[TraceResult]) -> TraceResult:
        """Join results over disjoint fact shards (same settings), ordered by the original fact index."""
        if not parts:
            raise WorkbenchError("nothing to merge")
        first = parts[0]
        facts = sorted((f for p in parts for f in p.facts), key=lambda f: f.index)
        skipped = sorted((s for p in parts for s in p.skipped), key=lambda s: s.get("index", 0))
        return dataclasses.replace(first, facts=facts, skipped=skipped)


@dataclasses.dataclass
class PatchResult:
    """Activation patching (or its AtP estimate) over a grid of sites.

    ``scores[site]`` is ``[layers, positions]`` (``[layers, positions, heads]`` for ``heads``): the metric
    after patching that one cell. ``clean``/``corrupted`` are the unpatched metrics of the two runs.
    """

    scores: dict[str, torch.Tensor]
    clean: float
    corrupted: float
    metric: str
    direction: str
    tokens: list[str]
    method: str = "exact"  # exact | atp
    answers: tuple[int, ...] = ()

    def normalized(self, site: str) -> torch.Tensor:
        """Scores rescaled so that the corrupted run is 0 and the clean run is 1."""
        if site not in self.scores:
            raise WorkbenchError(f"site {site!r} was not patched; this result holds {', '.join(self.scores)}")
        denom = self.clean - self.corrupted
        if abs(denom) < 1e-12:
            raise WorkbenchError(
                "clean and corrupted metrics are equal; the prompts do not differ on the metric"
            )
        return (self.scores[site] - self.corrupted) / denom

    def peak(self, site: str) -> tuple[int, ...]:
        """Index (layer, position[, head]) of the largest effect on the metric (away from the baseline)."""
        base = self.corrupted if self.direction == "denoise" else self.clean
        eff = (self.scores[site] - base).abs()
        return tuple(int(i) for i in torch.unravel_index(torch.argmax(eff), eff.shape))

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``patch.json`` and ``patch.safetensors`` into ``folder``."""
        folder = run_dir(folder)
        save_tensors(folder / "patch.safetensors", {k: v.float() for k, v in self.scores.items()})
        meta = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "scores"}
        write_json(folder / "patch.json", {"format": "workbench.patch/1", **meta, "sites": list(self.scores)})
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> PatchResult:
        """Read a result written by :meth:`save`."""
        folder = Path(folder)
        meta = read_json(folder / "patch.json")
        if meta.pop("format", None) != "workbench.patch/1":
            raise WorkbenchError(f"{folder}/patch.json is not a workbench patch result")
        tensors = load_tensors(folder / "patch.safetensors")
        scores = {s: tensors[s] for s in meta.pop("sites")}
        meta["answers"] = tuple(meta["answers"])
        return cls(scores=scores, **meta)
