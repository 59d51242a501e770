"""The typed config of ``workbench pipeline`` (strict; ``--config`` YAML plus ``key=value`` overrides)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .errors import WorkbenchError

BASELINES = ("grad_ascent", "grad_diff", "npo", "simnpo", "rmu")


@dataclasses.dataclass
class EvalStage:
    """Evaluation settings shared by the baseline and every re-evaluation."""

    suites: list[str] = dataclasses.field(default_factory=lambda: ["semeval", "mia", "mmlu", "stability"])
    """Suites of ``workbench eval`` run on the starting and the unlearned models."""
    limit: int | None = None
    """At most this many records per split × task × kind (None: all)."""
    max_new_tokens: int = 48
    """Greedy generation budget (the official 256 is the CLI default; organism answers are short)."""
    batch_size: int = 32
    """Generation / scoring batch."""
    mmlu_formulation: str | None = None
    """``mcf`` (answer letters) or ``cf`` (choice texts); None: cf on an organism, mcf elsewhere."""


@dataclasses.dataclass
class TraceStage:
    """Causal tracing of the forget facts."""

    max_facts: int = 24
    """Trace at most this many forget facts (seeded choice)."""
    samples: int = 10
    """Noise samples per fact (ROME: 10)."""
    noise: float = 3.0
    """Noise scale in units of the subject-embedding std (ROME: 3)."""
    window: int | None = None
    """Layers restored around the centre for mlp/attn; None: about a fifth of the depth (ROME's 10 of
    48 layers; 1 on the 6-layer organism)."""
    kinds: list[str] = dataclasses.field(default_factory=lambda: ["hidden", "mlp", "attn"])
    """Grids to compute."""


@dataclasses.dataclass
class SelectStage:
    """How the trace chooses the layers that ``constrained`` trains."""

    rule: Literal["top", "peak", "explicit"] = "top"
    """``top``: the n layers with the highest MLP AIE at the last subject token; ``peak``: the block of
    ``width`` layers around the peak; ``explicit``: ``layers``."""
    n: int = 3
    """Layers for ``top``."""
    width: int = 3
    """Block width for ``peak``."""
    layers: list[int] = dataclasses.field(default_factory=list)
    """Layers for ``explicit``."""
    kind: str = "mlp"
    """Module filter inside the chosen layers (mlp, attn, all, or a parameter-name glob)."""


@dataclasses.dataclass
class UnlearnStage:
    """The unlearning runs: the constrained method and the baselines, on one budget."""

    methods: list[str] = dataclasses.field(default_factory=lambda: ["constrained", *BASELINES])
    """Methods to run (``constrained`` first is conventional)."""
    steps: int = 60
    """Optimizer steps, the same for every method."""
    batch_size: int = 16
    """Examples per step."""
    lr: float = 1e-3
    """Learning rate, the same for every method (at 1e-4 and 150 steps ``constrained`` barely moves the
    default organism: forget QA 0.99)."""
    warmup_steps: int = 10
    """Linear warmup."""
    eval_every: int = 10
    """Validation interval (``constrained`` keeps the best checkpoint by validation joint loss)."""
    max_length: int = 256
    """Token budget per example."""
    params: dict[str, dict] = dataclasses.field(default_factory=dict)
    """Per-method objective overrides on top of each objective's published defaults (its params
    dataclass), e.g. ``{npo: {beta: 0.2}}``."""


@dataclasses.dataclass
class QuantizeStage:
    """The relapse check: quantize every unlearned model and re-run the SemEval metrics."""

    methods: list[str] = dataclasses.field(default_factory=lambda: ["bnb-int8", "bnb-nf4", "rtn-4"])
    """Quantization methods (``workbench.quantization.method_names()``)."""


@dataclasses.dataclass
class SAEStage:
    """A TopK SAE on the most-mediating layer and the feature-level view of forgetting."""

    enabled: bool = True
    """Run the stage."""
    expansion: int = 8
    """d_sae = expansion × d_model."""
    k: int = 16
    """Active latents per token."""
    steps: int = 600
    """Training steps."""
    batch_tokens: int = 1024
    """Tokens per step."""
    max_tokens: int = 200_000
    """Activations collected from the training corpus."""
    top_features: int = 20
    """Features shown in the report."""


@dataclasses.dataclass
class PipelineConfig:
    """The whole main job. Without ``model``/``data`` it runs on the embedded organism."""

    model: str | None = None
    """A model folder or hub id (None: the organism)."""
    data: str | None = None
    """A SemEval-layout data folder (organism layout or the public LUME files); None: the organism's."""
    facts: str | None = None
    """Trace facts: JSONL ``{prompt, subject, answer?}`` or SemEval records (their QA records, subject = the
    question's named entity); default ``<data>/facts/forget.jsonl``, else the data's forget QA records."""
    preset: str = "default"
    """Organism preset when ``model`` is None."""
    device: str | None = None
    """Device for tracing, evaluation and SAE work (e.g. ``cuda``); unlearning places itself through
    accelerate. None: the CPU."""
    dtype: str | None = None
    """Weights dtype for loading (``bfloat16`` for real checkpoints on GPUs); None: float32 on the CPU."""
    seed: int = 0
    """Seed for every random choice."""
    eval: EvalStage = dataclasses.field(default_factory=EvalStage)
    trace: TraceStage = dataclasses.field(default_factory=TraceStage)
    select: SelectStage = dataclasses.field(default_factory=SelectStage)
    unlearn: UnlearnStage = dataclasses.field(default_factory=UnlearnStage)
    quantize: QuantizeStage = dataclasses.field(default_factory=QuantizeStage)
    sae: SAEStage = dataclasses.field(default_factory=SAEStage)

    def __post_init__(self) -> None:
        if (self.model is None) != (self.data is None):
            raise WorkbenchError("give both model: and data: (your own model and SemEval data), or neither")
        if self.eval.mmlu_formulation not in (None, "mcf", "cf"):
            raise WorkbenchError(
                f"eval.mmlu_formulation {self.eval.mmlu_formulation!r} is unknown; use mcf (answer letters), "
                "cf (cloze) or leave it unset"
            )
        from .unlearning.objectives import OBJECTIVES

        unknown = [m for m in self.unlearn.methods if m not in OBJECTIVES]
        if unknown:
            raise WorkbenchError(
                f"unknown unlearning method(s) {unknown}; choose from {', '.join(sorted(OBJECTIVES))}"
            )


QUICK = [  # --quick: tiny sizes end to end
    "preset=tiny",
    "eval.limit=6",
    "eval.max_new_tokens=24",
    "eval.suites=[semeval,mia,mmlu,stability]",
    "trace.max_facts=4",
    "trace.samples=3",
    "trace.kinds=[hidden,mlp,attn]",
    "select.n=1",
    "unlearn.steps=20",
    "unlearn.batch_size=8",
    "unlearn.lr=1e-3",
    "unlearn.eval_every=5",
    "unlearn.max_length=128",
    "unlearn.methods=[constrained,grad_diff,npo,rmu]",
    "quantize.methods=[bnb-int8,rtn-4]",
    "sae.steps=60",
    "sae.max_tokens=8000",
    "sae.batch_tokens=256",
    "sae.expansion=4",
    "sae.k=8",
]
