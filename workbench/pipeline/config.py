"""The typed config of ``workbench pipeline``: the modules' own configs, embedded, plus the pipeline's own.

Each stage reads the config of the module it runs: ``eval`` is the evaluation suite's
:class:`~workbench.evaluation.config.EvalConfig`, ``trace`` a :class:`~workbench.tracing.TraceConfig`,
``select`` the unlearning :class:`~workbench.unlearning.config.SelectConfig`, ``unlearn.train`` /
``unlearn.data`` the unlearning ``TrainConfig`` / ``DataConfig``. Where the pipeline wants another default
(a shorter generation, a step budget shared by six methods) a subclass overrides that one field, so
that a config read from YAML, a ``--set`` override and the generated flags all start from it. Method
choices (which layers RMU reads, whether a method keeps its best checkpoint) belong to the objectives.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import apply_overrides, from_dict, read_yaml, to_dict
from ..errors import WorkbenchError
from ..evaluation.config import EvalConfig
from ..tracing.config import TraceConfig
from ..unlearning.config import DataConfig, SelectConfig
from ..unlearning.config import TrainConfig as UnlearnTrainConfig

BASELINES = ("grad_ascent", "grad_diff", "npo", "simnpo", "rmu")


@dataclasses.dataclass(kw_only=True)
class EvalStage(EvalConfig):
    """The evaluation of the starting and of every unlearned model (and of the relapse check)."""

    max_new_tokens: int = 48
    """greedy generation length (the pipeline's 48: organism answers are short; the official setting,
    the ``workbench eval`` default, is 256)"""


@dataclasses.dataclass(kw_only=True)
class TraceStage(TraceConfig):
    """Causal tracing of a seeded sample of the forget facts."""

    max_facts: int = 24
    """trace at most this many forget facts (a sample drawn with ``trace.seed``)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_facts < 1:
            raise WorkbenchError(f"trace.max_facts={self.max_facts} must be at least 1")


@dataclasses.dataclass(kw_only=True)
class UnlearnTrain(UnlearnTrainConfig):
    """The training budget every method gets."""

    max_steps: int = 240
    """optimizer steps, the same for every method"""
    batch_size: int = 16
    """examples per step"""
    lr: float = 2e-3
    """learning rate, the same for every method (at 1e-4 and 150 steps ``constrained`` barely moves the
    default organism: forget QA 0.99; compare_methods measured the recipe at 480 steps and 1e-3)"""
    warmup_steps: int = 10
    """linear warmup steps"""


@dataclasses.dataclass
class UnlearnStage:
    """The unlearning runs: the constrained method and the baselines, on one budget."""

    methods: list[str] = dataclasses.field(default_factory=lambda: ["constrained", *BASELINES, "edit"])
    """methods to run (``constrained`` first is conventional); ``edit`` is editing as unlearning (MEMIT
    writes every given forget question to a decoy; set it with ``params.edit``)"""
    params: dict[str, dict] = dataclasses.field(default_factory=dict)
    """per-method objective parameters on top of each objective's published defaults (its params
    dataclass), e.g. ``{npo: {beta: 0.2}}``"""
    train: UnlearnTrain = dataclasses.field(default_factory=UnlearnTrain)
    """the training loop (``keep_best`` applies to the methods whose objective keeps its best checkpoint)"""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    """how forget/retain records are read (``path`` is filled in by the pipeline)"""
    method_data: dict[str, dict] = dataclasses.field(
        default_factory=lambda: {"constrained": {"forget_positions": "entities"}}
    )
    """per-method data settings on top of ``data``: ``constrained`` moves its layers only through the
    prompt's named entities (the subject), which kept retain QA at 0.79 against 0.00 for every gradient
    baseline in compare_methods.py; ``{constrained: {}}`` trains it through every position"""


@dataclasses.dataclass
class QuantizeStage:
    """The relapse check: quantize every unlearned model and re-run the SemEval metrics."""

    methods: list[str] = dataclasses.field(default_factory=lambda: ["bnb-int8", "bnb-nf4", "rtn-4"])
    """quantization methods (``workbench.quantization.method_names()``; rtn-N / gptq-N set the bits)"""


# TODO(issue 17): embed workbench.sae's CollectConfig (max_tokens) and TrainConfig (steps, batch_size,
# seed) as sae.collect / sae.train once the SAE rework has settled their fields.
@dataclasses.dataclass
class SAEStage:
    """A TopK SAE on the most-mediating layer and the feature-level view of forgetting."""

    enabled: bool = True
    """run the stage"""
    expansion: int = 8
    """d_sae = expansion × d_model"""
    k: int = 16
    """active latents per token"""
    steps: int = 600
    """training steps"""
    batch_tokens: int = 1024
    """tokens per step"""
    max_tokens: int = 200_000
    """activations collected from the training corpus"""
    top_features: int = 20
    """features shown in the report"""

    def __post_init__(self) -> None:
        sizes = ("expansion", "k", "steps", "batch_tokens", "max_tokens", "top_features")
        small = [name for name in sizes if getattr(self, name) < 1]
        if small:
            raise WorkbenchError(f"sae.{', sae.'.join(small)} must be at least 1")


@dataclasses.dataclass
class PipelineConfig:
    """The whole main job. Without ``model``/``data`` it runs on the embedded organism."""

    model: str | None = None
    """a model folder or hub id (None: the organism)"""
    data: str | None = None
    """a SemEval-layout data folder (organism layout or the public LUME files); None: the organism's"""
    facts: str | None = None
    """trace facts: JSONL ``{prompt, subject, answer?}`` or SemEval records (their QA records, subject = the
    question's named entity); default ``<data>/facts/forget.jsonl``, else the data's forget QA records"""
    preset: str = "default"
    """organism preset when ``model`` is None"""
    device: str | None = None
    """device for tracing, evaluation and SAE work (e.g. ``cuda``); unlearning places itself through
    accelerate. None: the CPU"""
    dtype: str | None = None
    """weights dtype for loading (``bfloat16`` for real checkpoints on GPUs); None: float32 on the CPU"""
    seed: int = 0
    """seed of the organism, the SAE and every section whose own seed (``eval.seed``, ``trace.seed``,
    ``unlearn.train.seed``) is left at its default"""
    eval: EvalStage = dataclasses.field(default_factory=EvalStage)
    """evaluation of the starting model and of every unlearned one"""
    trace: TraceStage = dataclasses.field(default_factory=TraceStage)
    """causal tracing of the forget facts"""
    select: SelectConfig = dataclasses.field(default_factory=lambda: SelectConfig(kind="mlp.down"))
    """the layers the trace picks for the methods that read it (``constrained``): ``layers`` given, else
    the peak block of ``peak_width``, else the ``top_n`` layers; ``kind`` (here ``mlp.down``: the matrix
    ROME edits, where the trace reads the MLP's effect) and ``lora_*`` as in ``workbench unlearn``
    (``trace`` is the pipeline's own trace)"""
    unlearn: UnlearnStage = dataclasses.field(default_factory=UnlearnStage)
    """the unlearning methods and their shared budget"""
    quantize: QuantizeStage = dataclasses.field(default_factory=QuantizeStage)
    """the relapse check"""
    sae: SAEStage = dataclasses.field(default_factory=SAEStage)
    """the SAE feature view"""

    def __post_init__(self) -> None:
        if (self.model is None) != (self.data is None):
            raise WorkbenchError("give both model: and data: (your own model and SemEval data), or neither")
        self.eval, self.trace = _with_seed(self.eval, self.seed), _with_seed(self.trace, self.seed)
        train = _with_seed(self.unlearn.train, self.seed)
        if train is not self.unlearn.train:  # a new section: the caller's objects are never changed
            self.unlearn = dataclasses.replace(self.unlearn, train=train)
        if "mlp" not in self.trace.kinds:
            raise WorkbenchError("trace.kinds must include mlp: the layer choice reads the MLP effect")
        _check_select(self.select)
        _check_unlearn(self.unlearn)
        _check_quantize(self.quantize.methods)


def _with_seed(section: Any, seed: int) -> Any:
    """``section`` with the pipeline's seed when its own is left at the module's default."""
    default = next(f.default for f in dataclasses.fields(section) if f.name == "seed")
    if section.seed == default and seed != default:
        return dataclasses.replace(section, seed=seed)
    return section


def _check_select(s: SelectConfig) -> None:
    if s.trace is not None:
        raise WorkbenchError("select.trace is the pipeline's own trace stage; leave it unset")
    if isinstance(s.layers, str) and s.layers != "all":
        raise WorkbenchError(f"select.layers={s.layers!r}: use a list of layer indices or 'all'")
    if s.layers is not None and not isinstance(s.layers, str) and not s.layers:
        raise WorkbenchError("select.layers is empty; name at least one layer or leave it unset")
    if s.top_n < 1 or (s.peak_width is not None and s.peak_width < 1):
        raise WorkbenchError("select.top_n and select.peak_width must be at least 1")
    if s.lora_rank is not None and s.lora_rank < 1:
        raise WorkbenchError(f"select.lora_rank={s.lora_rank} must be at least 1 (or unset)")


EDIT_METHOD = "edit"
"""The unlearning method that is a knowledge edit (:class:`workbench.editing.forget.ForgetEdit`), not an
objective: every given forget question is written to a decoy answer with MEMIT."""


def _params_cls(method: str) -> type:
    if method == EDIT_METHOD:
        from ..editing.forget import ForgetEdit

        return ForgetEdit
    from ..unlearning.objectives import OBJECTIVES

    return OBJECTIVES[method].params_cls


def _check_unlearn(u: UnlearnStage) -> None:
    from ..unlearning.objectives import OBJECTIVES

    known = sorted([*OBJECTIVES, EDIT_METHOD])
    if not u.methods:
        raise WorkbenchError(f"unlearn.methods is empty; choose from {', '.join(known)}")
    unknown = sorted({m for m in [*u.methods, *u.params] if m not in known})
    if unknown:
        raise WorkbenchError(f"unknown unlearning method(s) {unknown}; choose from {', '.join(known)}")
    for method, params in u.params.items():
        if not isinstance(params, dict):
            raise WorkbenchError(f"unlearn.params.{method}: expected a mapping of parameters, got {params!r}")
        from_dict(_params_cls(method), params, where=f"unlearn.params.{method}")
    if u.data.path:
        raise WorkbenchError("unlearn.data.path comes from the data: key (or the organism); leave it unset")


def _check_quantize(methods: list[str]) -> None:
    from ..quantization.registry import resolve_method

    for m in methods:
        try:
            resolve_method(m, {})
        except WorkbenchError as e:
            raise WorkbenchError(f"quantize.methods: {e}") from None


QUICK = [  # --quick: tiny sizes end to end
    "preset=tiny",
    "eval.limit=6",
    "eval.max_new_tokens=24",
    "trace.max_facts=4",
    "trace.samples=3",
    "select.top_n=1",
    "unlearn.methods=[constrained,grad_diff,npo,rmu,edit]",
    "unlearn.params.edit.options.mom2_n_samples=300",
    "unlearn.train.max_steps=20",
    "unlearn.train.batch_size=8",
    "unlearn.train.eval_every=5",
    "unlearn.data.max_length=128",
    "quantize.methods=[bnb-int8,rtn-4]",
    "sae.steps=60",
    "sae.max_tokens=8000",
    "sae.batch_tokens=256",
    "sae.expansion=4",
    "sae.k=8",
]

RENAMED = {  # keys of the pipeline config before it embedded the modules' configs (issue 17)
    "select.rule": "select.layers (explicit), select.peak_width (peak) or select.top_n (top, the default)",
    "select.n": "select.top_n",
    "select.width": "select.peak_width",
    "unlearn.steps": "unlearn.train.max_steps",
    "unlearn.batch_size": "unlearn.train.batch_size",
    "unlearn.lr": "unlearn.train.lr",
    "unlearn.warmup_steps": "unlearn.train.warmup_steps",
    "unlearn.eval_every": "unlearn.train.eval_every",
    "unlearn.max_length": "unlearn.data.max_length",
}


def _check_renamed(data: dict) -> None:
    for old, new in RENAMED.items():
        section, key = old.split(".")
        if isinstance(data.get(section), dict) and key in data[section]:
            raise WorkbenchError(f"{old} is now {new}; rename the key")


def config_mapping(
    path: str | Path | None = None, overrides: list[str] | None = None, quick: bool = False
) -> dict:
    """The pipeline config as a plain mapping: YAML, then ``--quick``, then ``key=value`` overrides."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, (QUICK if quick else []) + list(overrides or []))
    _check_renamed(data)
    return data


def resolve_config(
    config: PipelineConfig | str | Path | None = None,
    overrides: list[str] | None = None,
    quick: bool = False,
) -> PipelineConfig:
    """Build the pipeline config from YAML (or a config), ``--quick`` and ``key=value`` overrides, in that
    order; a bad key or value is a one-line WorkbenchError."""
    path = None if isinstance(config, PipelineConfig) else config
    try:
        if isinstance(config, PipelineConfig):
            if not quick and not overrides:
                return config
            data = apply_overrides(to_dict(config), (QUICK if quick else []) + list(overrides or []))
            _check_renamed(data)
        else:
            data = config_mapping(path, overrides, quick)
        return from_dict(PipelineConfig, data)
    except WorkbenchError as e:
        raise WorkbenchError(f"{path}: {e}" if path else str(e)) from None
