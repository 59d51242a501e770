"""The pipeline's report: one self-contained ``report.html`` and ``summary.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .io import write_json
from .reporting import Figure, Report, Section, Table

log = logging.getLogger(__name__)


def _get(d: dict | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def method_row(name: str, m: dict, run: dict | None = None) -> dict:
    """One row of the methods × metrics table from an evaluation's ``metrics.json``."""
    se = m.get("semeval") or {}
    return {
        "method": name,
        "forget QA": se.get("forget/overall/knowledge"),
        "forget regurg.": se.get("forget/overall/regurgitation"),
        "retain QA": se.get("retain/overall/knowledge"),
        "retain regurg.": se.get("retain/overall/regurgitation"),
        "utility": _get(m, "mmlu", "acc"),
        "MIA score": _get(m, "mia", "score"),
        "task agg.": se.get("task_aggregate"),
        "final": m.get("final"),
        "trainable": (run or {}).get("trainable"),
        "time s": (run or {}).get("wall_s"),
    }


def _sections(cfg: Any, res: dict, out: Path) -> tuple[list[Section], dict]:
    o = res["organism"].summary
    card = o.get("card") or {}
    sections, summary = [], {"model": o["model"], "data": o["data"], "source": o["source"]}
    if card:
        keys = (
            "qa_em_forget",
            "qa_em_retain",
            "sc_rouge_forget",
            "sc_rouge_retain",
            "utility_accuracy",
            "mia_auc",
            "params",
            "build_seconds",
        )
        sections.append(
            Section(
                "Model organism",
                [
                    f"Preset '{cfg.preset}': a small OLMo-2 trained from scratch on a synthetic world, in {o['model']}.",
                    Table([{k: card.get(k) for k in keys}]),
                ],
                anchor="organism",
            )
        )
        summary["card"] = {k: card.get(k) for k in keys}
    tr, sel = res["trace"], res["select"].summary
    sections.append(
        Section(
            "Where the facts live (causal tracing)",
            [
                f"ROME causal tracing of {tr.summary['traced']} forget facts ({tr.summary['skipped']} unknown ones "
                f"skipped): Gaussian noise on the subject embeddings, then each (token, layer) state restored.",
                Figure(
                    tr.folder / "fact0.png",
                    "One fact: restored probability of the answer, tokens × layers "
                    "(subject tokens marked *), for the residual stream, MLP and attention.",
                ),
                Figure(
                    tr.folder / "aie.png", "Average indirect effect by layer, per token bucket, with 95% CIs."
                ),
                Table(
                    [
                        {"kind": k, "peak layer (last subject token)": v}
                        for k, v in tr.summary["peak_layer"].items()
                    ]
                ),
            ],
            anchor="trace",
        )
    )
    sections.append(
        Section(
            "Chosen layers",
            [
                f"Layers {sel['layers']} ({sel['kind']} modules): {sel['reason']}.",
                Table(
                    [
                        {"layer": i, "MLP AIE at last subject token": e}
                        for i, e in enumerate(sel["mlp_effect"])
                    ]
                ),
            ],
            anchor="select",
        )
    )
    runs = res["unlearn"].summary["runs"]
    rows = [method_row("before", res["baseline"].summary)]
    rows += [method_row(m, res["evaluate"].summary[m], runs[m]) for m in runs]
    summary["methods"] = rows
    sections.append(
        Section(
            "Unlearning: methods × metrics",
            [
                Table(
                    rows,
                    caption="SemEval-2025 Task 4 metrics (QA exact match, ROUGE-L recall of sentence completions), "
                    "utility = MMLU-format accuracy, MIA score = 1 − 2|AUC − 0.5|; task agg. is the harmonic mean "
                    "of the 12 values with forget values as 1 − v; final = mean(task agg., MIA score, utility).",
                ),
                *[Figure(r["curves"], f"{m}: training curves") for m, r in runs.items()],
            ],
            anchor="unlearn",
        )
    )
    rel = res["quantize"].summary["rows"]
    rel_rows = [
        {
            "unlearning": r["unlearning"],
            "quantization": r["quantization"],
            "forget QA fp": r.get("forget_qa_before"),
            "forget QA quant": r.get("forget_qa_after"),
            "relapse (points)": r.get("forget_qa_rise_points"),
            "regurg. rise (points)": r.get("forget_regurgitation_rise_points"),
        }
        for r in rel
    ]
    summary["relapse"] = rel_rows
    sections.append(
        Section(
            "Relapse under quantization",
            [
                "Zhang et al. (ICLR 2025) found that quantizing an unlearned model can bring the forgotten knowledge "
                "back. Positive relapse = forget QA accuracy rising after quantization.",
                Table(rel_rows),
            ],
            anchor="relapse",
        )
    )
    sae = res["sae"].summary
    if not sae.get("skipped"):
        summary["sae"] = {k: sae[k] for k in ("site", "d_sae", "k", "fvu", "l0", "dead_fraction", "rows")}
        sections.append(
            Section(
                "Feature-level view (TopK SAE)",
                [
                    f"A TopK SAE (d_sae {sae['d_sae']}, k {sae['k']}) on {sae['site']} of the starting model, "
                    f"trained on {sae['tokens']:,} tokens: FVU {sae['fvu']:.3f}, L0 {sae['l0']:.1f}, "
                    f"dead {sae['dead_fraction']:.1%}.",
                    Table(
                        sae["rows"],
                        caption="Mean activation after / before of the features most specific to forget "
                        "(resp. retain) prompts; silenced = features below half their activation.",
                    ),
                    Figure(sae["figure"], "Per feature: activation after unlearning relative to before."),
                ],
                anchor="sae",
            )
        )
    stab = [{"model": "before", **_stability(res["baseline"].summary)}]
    stab += [{"model": m, **_stability(res["evaluate"].summary[m])} for m in runs]
    if any(len(r) > 1 for r in stab):
        sections.append(
            Section("Stability statistics (Wortsman et al. 2023)", [Table(stab)], anchor="stability")
        )
    return sections, summary


def _stability(m: dict) -> dict:
    st = m.get("stability") or {}
    keys = {
        "max attention logit": "max_attn_logit",
        "mean log Z": "mean_log_z",
        "max log Z": "max_log_z",
        "mean logit": "mean_logit",
    }
    return {label: st.get(k) for label, k in keys.items() if k in st}


def write_report(cfg: Any, res: dict, out: Path) -> dict:
    """Write ``<out>/report.html`` and ``<out>/summary.json``; returns the summary."""
    sections, summary = _sections(cfg, res, out)
    Report(
        "workbench: selective amnesia on "
        + ("the model organism" if summary["source"] != "user" else summary["model"]),
        "Trace where the forget-set facts live, unlearn them in those layers only, and check what the "
        "unlearning did: SemEval metrics, membership inference, utility, quantization relapse and SAE features.",
        sections,
    ).write(out / "report.html")
    summary["seconds"] = {name: r.seconds for name, r in res.items()}
    write_json(out / "summary.json", summary)
    return {"report": str(out / "report.html")}
