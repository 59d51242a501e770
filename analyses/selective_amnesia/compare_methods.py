"""Selective amnesia on the organism: layer-constrained unlearning vs the usual baselines, same budget.

    python analyses/selective_amnesia/compare_methods.py [--organism default|tiny|FOLDER] [--steps 200]

1. trace the forget facts (ROME causal tracing, MLP restorations) and take the top-3 layers by MLP AIE
   at the last subject token;
2. run ``constrained`` on the MLPs of those layers, and every baseline with its published defaults
   (grad_ascent, grad_diff, npo, simnpo on all parameters; rmu reading the residual after the top
   traced layer and training the down projections of that layer and the two below), all with the same
   steps, batch, sampler, learning rate and warmup;
3. evaluate the model before and each result with the evaluation suite (SemEval-2025 Task 4 metrics,
   MIA, utility MMLU);
4. print one table and write ``compare.json`` / ``compare.md`` into ``--out``.

Goals for ``constrained`` (issue 5): forget QA EM <= 0.05, retain QA >= 0.9x before, utility >= 0.95x
before, MIA score >= 0.8, final above every baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

METHODS = ("constrained", "constrained_all", "grad_ascent", "grad_diff", "npo", "simnpo", "rmu", "edit")
"""``constrained_all``: constrained with the forget loss on the whole forget record (``data.forget_tokens:
all``), not only its output tokens (the official setting, ``constrained``). ``edit``: editing as
unlearning (MEMIT writes every given forget question to a decoy answer; workbench.editing.forget)."""


@dataclasses.dataclass
class Row:
    """One line of the table."""

    name: str
    forget_qa: float
    forget_regurg: float
    retain_qa: float
    retain_regurg: float
    utility: float
    mia: float
    aggregate: float
    final: float
    trainable: int
    wall_s: float
    by_part: dict[str, float] = dataclasses.field(default_factory=dict)
    """QA exact match per split and part, e.g. ``forget/train``: the unlearning job trains on the *train*
    records only, so the validation people (never in its forget or retain batches) show what leaks."""


def locate_organism(spec: str) -> Path:
    """A built organism folder: a path, or a preset found in the cache (``tiny`` is built if missing)."""
    from workbench.io import cache_dir

    path = Path(spec)
    if path.is_dir():
        return path
    from workbench.organism import PRESETS, folder_name

    roots = [cache_dir(), REPO / ".cache" / "workbench", Path.home() / ".cache" / "workbench"]
    if spec in PRESETS:  # the build of the current preset config, not an older one left in the cache
        name = folder_name(spec)
        for root in roots:
            if (root / "organism" / name / "card.json").is_file():
                return root / "organism" / name
    if spec != "tiny":
        raise SystemExit(
            f"no built {spec!r} organism in {[str(r) for r in roots]}; build it or use --organism tiny"
        )
    from workbench.organism import build

    return build("tiny").path


def trace_layers(
    org: Path, out: Path, samples: int, n: int, window: int | None = None
) -> tuple[list[int], list[float]]:
    """Trace the forget facts (cached in ``out/trace``); the top-n MLP layers and the per-layer AIE."""
    from workbench.data import read_facts
    from workbench.models import load
    from workbench.tracing import TraceResult, causal_trace

    folder = out / f"trace_w{window or 'auto'}"
    if (folder / "trace.json").is_file():
        trace = TraceResult.load(folder)
    else:
        lm = load(org)
        facts = read_facts(org / "facts" / "forget.jsonl")
        # window None: about a fifth of the depth (ROME's 10 of 48 layers; 1 on the 6-layer organism)
        trace = causal_trace(lm, facts, kinds=("mlp",), samples=samples, window=window, progress=True)
        trace.save(folder)
    return trace.top_layers("mlp", n), [float(x) for x in trace.layer_effect("mlp")]


def nonmember_nll(org: Path) -> float:
    """Mean document NLL of the MIA nonmembers under the original model: the loss level of unseen text."""
    from workbench.data import read_mia
    from workbench.evaluation.scoring import document_nll
    from workbench.models import load

    lm = load(org)
    _, nonmembers = read_mia(org)
    nll = document_nll(lm.model, lm.tokenizer, [d.document for d in nonmembers])
    return sum(nll) / len(nll)


def evaluate_row(name: str, model, org: Path, args, trainable: int, wall: float) -> Row:
    """Evaluate ``model`` (a folder or LoadedModel) and reduce the report to one row."""
    try:
        from workbench.evaluation import evaluate
    except ImportError:  # before the package re-exports it
        from workbench.evaluation.suite import evaluate

    rep = evaluate(model, org, suites=("semeval", "mia", "mmlu"), limit=args.limit,
                   max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch, out=args.out / "eval" / name)  # fmt: skip
    ov = rep.semeval.overall
    # QA by part (train: in the unlearning batches; validation: never), as the SemEval metrics report it
    by_part = {
        k[: -len("/knowledge")]: v for k, v in ov.items() if k.endswith("/knowledge") and "/overall/" not in k
    }
    return Row(name, ov.get("forget/overall/knowledge", float("nan")), ov.get("forget/overall/regurgitation", float("nan")),
               ov.get("retain/overall/knowledge", float("nan")), ov.get("retain/overall/regurgitation", float("nan")),
               rep.mmlu.acc, rep.mia.score, rep.semeval.task_aggregate, rep.final, trainable, wall, by_part)  # fmt: skip


def constrained_params(text: str) -> dict:
    """``--constrained-params`` parsed and checked against the objective's params before any work runs."""
    from workbench.unlearning.objectives import OBJECTIVES

    try:
        params = json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(
            f"--constrained-params is not JSON ({err.msg}); pass e.g. '{{\"m_max\": 2.8}}'"
        ) from None
    valid = {f.name for f in dataclasses.fields(OBJECTIVES["constrained"].params_cls)}
    if not isinstance(params, dict) or set(params) - valid:
        raise SystemExit(f"--constrained-params must be a JSON object with keys among {sorted(valid)}")
    return params


def method_config(method: str, layers: list[int], org: Path, args, ceiling: float | None = None):
    """The UnlearnConfig of ``method``: published objective defaults, the shared budget."""
    from workbench.config import from_dict
    from workbench.unlearning import UnlearnConfig

    params: dict = {}  # each objective's params dataclass holds its published defaults
    variant, method = method, method.removesuffix("_all")
    if method == "constrained":
        select = {"layers": layers, "kind": args.kind}
        params.update(args.constrained_params)
    elif method == "rmu":
        top = layers[0]  # the strongest traced layer; train it and the (up to) two below it
        params["layer"] = top
        select = {"layers": list(range(max(0, top - 2), top + 1)), "kind": "mlp.down"}
    else:
        select = {"layers": "all", "kind": "*"}
    train = {"max_steps": args.steps, "batch_size": args.batch, "lr": args.lr, "warmup_steps": args.warmup,
             "eval_every": args.eval_every, "keep_best": method == "constrained" and args.keep_best, "seed": args.seed,
             "progress": True, "forget_ceiling": ceiling if method == "constrained" else None}  # fmt: skip
    forget_tokens = "all" if variant.endswith("_all") else "output"
    positions = args.forget_positions if method == "constrained" else "all"
    return from_dict(
        UnlearnConfig,
        {"model": str(org), "out": str(args.out / "runs" / variant), "method": method, "params": params,
         "data": {"path": str(org), "sampler": "mixed", "max_length": args.max_length,
                  "forget_tokens": forget_tokens, "forget_positions": positions},
         "select": select, "train": train},
    )  # fmt: skip


def edit_row(org: Path, args) -> Row:
    """Editing as unlearning: edit every given forget question to a decoy, then evaluate as the others."""
    import yaml

    from workbench.editing.forget import FORGET_OPTIONS, ForgetEdit, run_forget_edit

    options = {**FORGET_OPTIONS, **(yaml.safe_load(args.edit_options) or {})}
    chosen = [int(x) for x in args.edit_layers.split(",")] if args.edit_layers else None
    trace = args.out / f"trace_w{args.window or 'auto'}"  # written by trace_layers
    run = run_forget_edit(
        str(org), str(org), args.out / "edit", ForgetEdit(layers=chosen, options=options), trace
    )
    print(
        f"edit: {run['requests']} requests into layers {run['layers']} in {run['wall_s']:.0f} s", flush=True
    )
    return evaluate_row("edit", run["model"], org, args, run["trainable"], run["wall_s"])


def table(rows: list[Row]) -> str:
    """The comparison as a Markdown table."""
    head = ("| method | forget QA EM | forget regurg | retain QA EM | retain regurg | utility | MIA score "
            "| task agg | final | trainable | wall s |")  # fmt: skip
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r.name} | {r.forget_qa:.3f} | {r.forget_regurg:.3f} | {r.retain_qa:.3f} | "
                     f"{r.retain_regurg:.3f} | {r.utility:.3f} | {r.mia:.3f} | {r.aggregate:.3f} | {r.final:.3f} | "
                     f"{r.trainable:,} | {r.wall_s:.0f} |")  # fmt: skip
    return "\n".join(lines)


def part_table(rows: list[Row]) -> str:
    """QA exact match on the train records (in the unlearning batches) and the validation ones (never)."""
    keys = ["forget/train", "forget/validation", "retain/train", "retain/validation"]
    lines = ["| method | " + " | ".join(f"{k} QA" for k in keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for r in rows:
        lines.append(
            f"| {r.name} | " + " | ".join(f"{r.by_part.get(k, float('nan')):.3f}" for k in keys) + " |"
        )
    return "\n".join(lines)


def goals(rows: list[Row]) -> list[str]:
    """The issue's goals for ``constrained``, each with its verdict."""
    by = {r.name: r for r in rows}
    if "constrained" not in by:
        return []
    c, b = by["constrained"], by["before"]
    others = [r.final for r in rows if not r.name.startswith(("before", "constrained"))]
    checks = [
        (f"forget QA EM {c.forget_qa:.3f} <= 0.05", c.forget_qa <= 0.05),
        (f"retain QA {c.retain_qa:.3f} >= 0.9 x {b.retain_qa:.3f}", c.retain_qa >= 0.9 * b.retain_qa),
        (f"utility {c.utility:.3f} >= 0.95 x {b.utility:.3f}", c.utility >= 0.95 * b.utility),
        (f"MIA score {c.mia:.3f} >= 0.8", c.mia >= 0.8),
        (f"final {c.final:.3f} > every baseline (best {max(others, default=float('nan')):.3f})",
         bool(others) and c.final > max(others)),
    ]  # fmt: skip
    return [f"{'met    ' if ok else 'NOT met'}  {text}" for text, ok in checks]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--organism", default="default", help="default | tiny | an organism folder")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "selective_amnesia")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps, the same for every method")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4, help="the same for every method")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--trace-samples", type=int, default=10)
    ap.add_argument("--top-n", type=int, default=3)
    ap.add_argument(
        "--kind",
        default="mlp",
        help="constrained's module filter in the selected layers: mlp | attn | all | mlp.down | a glob",
    )
    ap.add_argument("--constrained-params", default="{}",
                    help='JSON overrides of the constrained objective\'s params, e.g. \'{"m_max": 2.8}\'')  # fmt: skip
    ap.add_argument(
        "--window", type=int, default=None, help="MLP restoration window (default: a fifth of the depth)"
    )
    ap.add_argument("--limit", type=int, default=None, help="evaluate at most this many records per cell")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--forget-tokens",
        default="output",
        choices=["output", "all"],
        help="constrained: forget loss on the output tokens (official) or on whole forget records",
    )
    ap.add_argument("--keep-best", default=True, action=argparse.BooleanOptionalAction,
                    help="constrained keeps its best checkpoint by validation joint loss (the seed's choice)")  # fmt: skip
    ap.add_argument(
        "--forget-positions",
        default="all",
        choices=["all", "prompt", "entities"],
        help="constrained: positions through which forget rows move the weights (data.forget_positions)",
    )
    ap.add_argument(
        "--edit-layers", default=None, help="edit: comma-separated layers (default: the traced ones)"
    )
    ap.add_argument("--edit-options", default="{}",
                    help="edit: editor options (YAML) on top of workbench.editing.forget.FORGET_OPTIONS")  # fmt: skip
    ap.add_argument("--ceiling", default="vocab",
                    help="constrained's forget-CE ceiling: 'vocab' (ln |V|, the library default), 'nonmember' (the "
                         "original model's mean NLL on the MIA nonmember documents) or a number")  # fmt: skip
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from workbench.unlearning import unlearn

    args.constrained_params = constrained_params(args.constrained_params)

    org = locate_organism(args.organism)
    args.out.mkdir(parents=True, exist_ok=True)
    layers, aie = trace_layers(org, args.out, args.trace_samples, args.top_n, args.window)
    print(f"organism: {org}\nMLP AIE at the last subject token by layer: {[round(x, 3) for x in aie]}")
    print(f"selected layers (top-{args.top_n}): {layers}")
    if args.ceiling == "nonmember":
        ceiling = nonmember_nll(org)
    else:
        ceiling = None if args.ceiling == "vocab" else float(args.ceiling)
    print(f"constrained forget-CE ceiling: {ceiling if ceiling is not None else 'ln |V|'} ({args.ceiling})")
    rows = [evaluate_row("before", org, org, args, 0, 0.0)]
    for method in args.methods.split(","):
        if method == "edit":
            rows.append(edit_row(org, args))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
            continue
        cfg = method_config(method, layers, org, args, ceiling)
        start = time.perf_counter()
        res = unlearn(cfg)
        wall = time.perf_counter() - start
        rows.append(evaluate_row(method, res.model_dir, org, args, res.trainable, wall))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows) + "\n\n" + part_table(rows)
    verdicts = goals(rows)
    print(text)
    print("\n".join(verdicts))
    settings = {**{k: str(v) for k, v in vars(args).items()}, "ceiling_value": ceiling}
    (args.out / "compare.md").write_text(text + "\n\n" + "\n".join(verdicts) + "\n")
    (args.out / "compare.json").write_text(json.dumps(
        {"organism": str(org), "layers": layers, "aie": aie, "settings": settings,
         "rows": [dataclasses.asdict(r) for r in rows], "goals": verdicts}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
