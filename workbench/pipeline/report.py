"""The pipeline's report: one self-contained ``report.html`` and ``summary.json``.

One function per section (:data:`SECTIONS`), each ``(cfg, results) -> (Section | None, summary part)``:
the section for the page (None when it has nothing to show) and its keys of ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import write_json
from ..reporting import Figure, Report, Section, Table

CARD_KEYS = (
    "qa_em_forget",
    "qa_em_retain",
    "sc_rouge_forget",
    "sc_rouge_retain",
    "utility_accuracy",
    "mia_auc",
    "params",
    "build_seconds",
)
STABILITY_KEYS = {
    "max attention logit": "max_attn_logit",
    "mean log Z": "mean_log_z",
    "max log Z": "max_log_z",
    "mean logit": "mean_logit",
}


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
        # the people the method was given (train records) and those it never saw (validation records)
        "forget QA given": se.get("forget/train/knowledge"),
        "forget QA unseen": se.get("forget/validation/knowledge"),
        "retain QA given": se.get("retain/train/knowledge"),
        "retain QA unseen": se.get("retain/validation/knowledge"),
        "utility": _get(m, "mmlu", "acc"),
        "MIA score": _get(m, "mia", "score"),
        "task agg.": se.get("task_aggregate"),
        "final": m.get("final"),
        "trainable": (run or {}).get("trainable"),
        "time s": (run or {}).get("wall_s"),
    }


def organism_section(cfg: Any, res: dict) -> tuple[Section | None, dict]:
    """The organism's scorecard (nothing for the user's own model)."""
    o = res["organism"].summary
    summary = {"model": o["model"], "data": o["data"], "source": o["source"]}
    card = o.get("card") or {}
    if not card:
        return None, summary
    row = {k: card.get(k) for k in CARD_KEYS}
    section = Section(
        "Model organism",
        [
            f"Preset '{cfg.preset}': a small OLMo-2 trained from scratch on a synthetic world, in {o['model']}.",
            Table([row]),
        ],
        anchor="organism",
    )
    return section, {**summary, "card": row}


def trace_section(cfg: Any, res: dict) -> tuple[Section | None, dict]:
    """Where the facts live: one fact's figure, the AIE curves and the peak layers."""
    tr = res["trace"]
    section = Section(
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
    return section, {}


def select_section(cfg: Any, res: dict) -> tuple[Section | None, dict]:
    """The chosen layers, why, and the MLP effect of every layer."""
    sel = res["select"].summary
    section = Section(
        "Chosen layers",
        [
            f"Layers {sel['layers']} ({sel['kind']} modules): {sel['reason']}.",
            Table(
                [{"layer": i, "MLP AIE at last subject token": e} for i, e in enumerate(sel["mlp_effect"])]
            ),
        ],
        anchor="select",
    )
    return section, {}


def unlearn_section(cfg: Any, res: dict) -> tuple[Section | None, dict]:
    """The methods × metrics table (the starting model first) and each method's training curves."""
    runs = res["unlearn"].summary["runs"]
    rows = [method_row("before", res["baseline"].summary)]
    rows += [method_row(m, res["evaluate"].summary[m], runs[m]) for m in runs]
    section = Section(
        "Unlearning: methods × metrics",
        [
            Table(
                rows,
                caption="SemEval-2025 Task 4 metrics (QA exact match, ROUGE-L recall of sentence completions); QA 'given' "
                "is on the train records the methods were given, 'unseen' on the validation people no method saw "
                "(the collateral: a good method keeps unseen retain people); "
                "utility = MMLU-format accuracy, MIA score = 1 − 2|AUC − 0.5|; task agg. is the harmonic mean "
                "of the 12 values with forget values as 1 − v; final = mean(task agg., MIA score, utility).",
            ),
            *[Figure(r["curves"], f"{m}: training curves") for m, r in runs.items() if r.get("curves")],
        ],
        anchor="unlearn",
    )
    return section, {"methods": rows}


def relapse_section(cfg: Any, res: dict) -> tuple[Section | None, dict]:
    """Forget QA before and after quantization, per unlearning × quantization method."""
    rows = [
        {
            "unlearning": r["unlearning"],
            "quantization": r["quantization"],
            "forget QA fp": r.get("forget_qa_before"),
            "forget QA quant": r.get("forget_qa_after"),
            "relapse (points)": r.get("forget_qa_rise_points"),
            "regurg. rise (points)": r.get("forget_regurgitation_rise_points"),
        }
        for r in res["quantize"].summary["rows"]
    ]
    section = Section(
        "Relapse under quantization",
        [
            "Zhang et al. (ICLR 2025) found that quantizing an unlearned model can bring the forgotten knowledge "
            "back. Positive relapse = forget QA accuracy rising after quantization.",
            Table(rows),
        ],
        anchor="relapse",
    )
    return section, {"relapse": rows}


def sae_section(cfg: Any, res: dict) -> tuple[Section | None, dict]:
    """The SAE's quality and which forget / retain features each method silenced (none when skipped)."""
    sae = res["sae"].summary
    if sae.get("skipped"):
        return None, {}
    section = Section(
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
    keys = ("site", "d_sae", "k", "fvu", "l0", "dead_fraction", "rows")
    return section, {"sae": {k: sae[k] for k in keys}}


def _stability(m: dict) -> dict:
    st = m.get("stability") or {}
    return {label: st.get(k) for label, k in STABILITY_KEYS.items() if k in st}


def stability_section(cfg: Any, res: dict) -> tuple[Section | None, dict]:
    """The stability proxies of every model (none when the suite did not run)."""
    rows = [{"model": "before", **_stability(res["baseline"].summary)}]
    rows += [{"model": m, **_stability(res["evaluate"].summary[m])} for m in res["unlearn"].summary["runs"]]
    if not any(len(r) > 1 for r in rows):
        return None, {}
    return Section("Stability statistics (Wortsman et al. 2023)", [Table(rows)], anchor="stability"), {}


SECTIONS = (
    organism_section,
    trace_section,
    select_section,
    unlearn_section,
    relapse_section,
    sae_section,
    stability_section,
)
"""The report's sections, in page order."""


def write_report(cfg: Any, res: dict, out: Path) -> dict:
    """Write ``<out>/report.html`` and ``<out>/summary.json``; returns the report's path."""
    sections, summary = [], {}
    for build in SECTIONS:
        section, part = build(cfg, res)
        if section is not None:
            sections.append(section)
        summary.update(part)
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
