"""The main job, ``workbench pipeline``: organism → baseline → trace → select → unlearn → evaluate →
quantize → sae → report.

Each stage writes ``<out>/<stage>/`` and is skipped on a re-run when its inputs (its slice of the resolved
config and the stages it reads) are unchanged; a failure names the stage and keeps what earlier stages
wrote (:mod:`workbench.stages`). ``--quick`` runs tiny sizes end to end.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from pathlib import Path
from typing import Any

from .config import apply_overrides, dump_config, from_dict, read_yaml, to_dict
from .errors import WorkbenchError
from .io import read_json, write_json, write_text
from .pipeline_config import QUICK, PipelineConfig
from .stages import Stage, StageResult, run_stages

log = logging.getLogger(__name__)
STAGES = ("organism", "baseline", "trace", "select", "unlearn", "evaluate", "quantize", "sae", "report")


def resolve_config(
    path: str | Path | None = None, overrides: list[str] | None = None, quick: bool = False
) -> PipelineConfig:
    """Build the pipeline config from YAML, ``--quick`` and ``key=value`` overrides (in that order)."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, (QUICK if quick else []) + list(overrides or []))
    try:
        return from_dict(PipelineConfig, data)
    except WorkbenchError as e:
        raise WorkbenchError(f"{path}: {e}" if path else str(e)) from None


def load_model(cfg: PipelineConfig, spec: str):
    """Load ``spec`` on the pipeline's device and dtype."""
    from .models import load

    return load(spec, device=cfg.device, dtype=cfg.dtype)


def _evaluate(cfg: PipelineConfig, model: Any, data: str, out: Path) -> dict:
    from .evaluation.suite import evaluate

    rep = evaluate(
        model,
        data,
        suites=cfg.eval.suites,
        out=out,
        limit=cfg.eval.limit,
        seed=cfg.seed,
        max_new_tokens=cfg.eval.max_new_tokens,
        batch_size=cfg.eval.batch_size,
        mmlu_formulation=cfg.eval.mmlu_formulation,
    )
    write_text(out / "table.txt", rep.table() + "\n")
    return rep.metrics()


def _stage_organism(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        if cfg.model is None:
            from .organism import build

            org = build(cfg.preset, seed=cfg.seed)
            write_json(folder / "card.json", org.card)
            write_text(folder / "card.txt", org.card.table() + "\n")
            return {
                "model": str(org.path),
                "data": str(org.path),
                "card": dataclasses.asdict(org.card),
                "facts": cfg.facts or str(org.path / "facts" / "forget.jsonl"),
                "corpus": str(org.path / "corpus" / "train.jsonl"),
                "source": f"organism:{cfg.preset}",
            }
        from .data import default_facts, read_semeval

        read_semeval(cfg.data)  # fail early, naming the file, on unreadable data
        facts = cfg.facts or default_facts(cfg.data)
        return {
            "model": cfg.model,
            "data": cfg.data,
            "facts": facts,
            "corpus": cfg.data,
            "card": None,
            "source": "user",
        }

    return run


def _stage_baseline(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        o = res["organism"].summary
        return _evaluate(cfg, load_model(cfg, o["model"]), o["data"], folder)

    return run


def _stage_trace(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        from .data import read_facts
        from .tracing import causal_trace
        from .tracing.plots import plot_aie, plot_fact

        o = res["organism"].summary
        if not Path(o["facts"]).is_file():
            raise WorkbenchError(
                f"no trace facts at {o['facts']}; set facts: to a JSONL of {{prompt, subject, answer}}"
            )
        facts = read_facts(o["facts"])
        if len(facts) > cfg.trace.max_facts:
            facts = random.Random(cfg.seed).sample(facts, cfg.trace.max_facts)
        lm = load_model(cfg, o["model"])
        t = cfg.trace
        result = causal_trace(
            lm, facts, kinds=t.kinds, samples=t.samples, noise=t.noise, window=t.window, seed=cfg.seed
        )
        if not result.facts:
            raise WorkbenchError(
                "the model knows none of the traced facts (all skipped); check facts: and model:"
            )
        result.save(folder)
        plot_aie(result, folder / "aie.png")
        for i, fact in enumerate(result.facts[:2]):
            plot_fact(fact, folder / f"fact{i}.png", window=result.window)
        return {
            "traced": len(result.facts),
            "skipped": len(result.skipped),
            "peak_layer": {k: result.peak_layer(k) for k in result.kinds},
            "mlp_effect": [float(x) for x in result.layer_effect("mlp")] if "mlp" in result.kinds else [],
        }

    return run


def _stage_select(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        from .tracing import TraceResult

        s = cfg.select
        trace = TraceResult.load(res["trace"].folder)
        if s.rule == "explicit":
            if not s.layers:
                raise WorkbenchError("select.rule=explicit needs select.layers, e.g. [0, 1, 2]")
            layers, reason = sorted(s.layers), "given explicitly in the config"
        elif s.rule == "peak":
            layers = trace.peak_block("mlp", s.width)
            reason = f"the block of {s.width} layers around the peak MLP AIE at the last subject token"
        else:
            layers = sorted(trace.top_layers("mlp", s.n))
            reason = f"the {s.n} layers with the highest MLP AIE at the last subject token"
        effect = [float(x) for x in trace.layer_effect("mlp")]
        write_json(folder / "selection.json", {"layers": layers, "reason": reason, "mlp_effect": effect})
        return {"layers": layers, "reason": reason, "kind": s.kind, "mlp_effect": effect}

    return run


def method_config(cfg: PipelineConfig, method: str, layers: list[int], model: str, data: str, out: Path):
    """The UnlearnConfig of one method: its published defaults, the shared step budget and batch."""
    from .unlearning import UnlearnConfig

    u = cfg.unlearn
    params = dict(u.params.get(method, {}))  # on top of the objective's published defaults
    if method == "constrained":
        select: dict[str, Any] = {"layers": layers, "kind": cfg.select.kind}
    elif method == "rmu":  # read after the strongest traced layer; train its down projection and two below
        top = max(layers)
        params.setdefault("layer", top)
        select = {"layers": list(range(max(0, top - 2), top + 1)), "kind": "mlp.down"}
    else:
        select = {"layers": "all", "kind": "*"}
    train = {
        "max_steps": u.steps,
        "batch_size": u.batch_size,
        "lr": u.lr,
        "warmup_steps": u.warmup_steps,
        "eval_every": u.eval_every,
        "keep_best": method == "constrained",
        "seed": cfg.seed,
        "progress": True,
    }
    return from_dict(
        UnlearnConfig,
        {
            "model": model,
            "out": str(out),
            "method": method,
            "params": params,
            "data": {"path": data, "sampler": "mixed", "max_length": u.max_length},
            "dtype": cfg.dtype or "float32",
            "select": select,
            "train": train,
        },
    )


def _stage_unlearn(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        from .unlearning import unlearn

        o, layers = res["organism"].summary, res["select"].summary["layers"]
        runs = {}
        for method in cfg.unlearn.methods:
            log.info("unlearning with %s", method)
            r = unlearn(method_config(cfg, method, layers, o["model"], o["data"], folder / method))
            runs[method] = {
                "model": str(r.model_dir),
                "layers": r.layers,
                "trainable": r.trainable,
                "total": r.total,
                "share": r.share,
                "wall_s": r.wall_time_s,
                "steps": r.steps,
                "stopped": r.stopped,
                "best_step": r.best_step,
                "curves": str(folder / method / "curves.png"),
            }
        return {"runs": runs}

    return run


def _stage_evaluate(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        data = res["organism"].summary["data"]
        return {
            m: _evaluate(cfg, load_model(cfg, r["model"]), data, folder / m)
            for m, r in res["unlearn"].summary["runs"].items()
        }

    return run


def _stage_quantize(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        from .quantization import quantize
        from .quantization.relapse import KEYS, SemEvalSnapshot, relapse

        data = res["organism"].summary["data"]
        rows = []
        for method, run_info in res["unlearn"].summary["runs"].items():
            se = res["evaluate"].summary[method]["semeval"]
            before = SemEvalSnapshot(
                **{k: se.get(v) for k, v in KEYS.items()}, task_aggregate=se["task_aggregate"]
            )
            fp = load_model(cfg, run_info["model"])
            for qm in cfg.quantize.methods:
                q = quantize(fp, qm)
                r = relapse(
                    fp,
                    q,
                    data,
                    before=before,
                    limit=cfg.eval.limit,
                    seed=cfg.seed,
                    max_new_tokens=cfg.eval.max_new_tokens,
                    batch_size=cfg.eval.batch_size,
                )
                rows.append({"unlearning": method, "quantization": qm, **r.metrics()})
                del q
        write_json(folder / "relapse.json", rows)
        return {"rows": rows}

    return run


def _stage_sae(cfg: PipelineConfig):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        from .pipeline_sae import feature_view

        if not cfg.sae.enabled:
            return {"skipped": True}
        return feature_view(cfg, res, folder)

    return run


def _stage_report(cfg: PipelineConfig, out: Path):
    def run(folder: Path, res: dict[str, StageResult]) -> dict:
        from .pipeline_report import write_report

        return write_report(cfg, res, out)

    return run


def run_pipeline(
    config: PipelineConfig | str | Path | None = None,
    out: str | Path = "runs/pipeline",
    *,
    quick: bool = False,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict[str, StageResult]:
    """Run the main job into ``out`` and return every stage's result (``report.html`` at the top)."""
    if not isinstance(config, PipelineConfig):
        config = resolve_config(config, overrides, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    c = to_dict(config)
    base = {k: c[k] for k in ("model", "data", "preset", "seed", "facts", "dtype")}
    stages = [
        Stage("organism", _stage_organism(config), base),
        Stage("baseline", _stage_baseline(config), c["eval"], ("organism",)),
        Stage("trace", _stage_trace(config), c["trace"], ("organism",)),
        Stage("select", _stage_select(config), c["select"], ("trace",)),
        Stage("unlearn", _stage_unlearn(config), c["unlearn"], ("organism", "select")),
        Stage("evaluate", _stage_evaluate(config), c["eval"], ("unlearn",)),
        Stage("quantize", _stage_quantize(config), c["quantize"], ("evaluate",)),
        Stage("sae", _stage_sae(config), c["sae"], ("trace", "unlearn")),
        Stage("report", _stage_report(config, out), {"v": 1}, STAGES[:-1]),
    ]
    return run_stages(stages, out, force=force, on_stage=_announce)


def _announce(name: str, i: int, n: int) -> None:
    log.info("[%d/%d] stage %s", i + 1, n, name)


def summary(out: str | Path) -> dict:
    """The ``summary.json`` of a finished pipeline run."""
    return read_json(Path(out) / "summary.json")
