"""Where forgetting goes: unseen forget people against unseen retain people, over compare_methods runs.

Usage::

    python analyses/selective_amnesia/frontier.py RUN [RUN ...] [--out frontier.png]

Each RUN is a ``compare_methods.py`` output folder (or its ``compare.json``). The plot has two panels:

- left: QA exact match on the *validation* people (in no unlearning batch) of the forget side (x) against
  the retain side (y), one point per method and run. Forget and retain people come from one generator, so a
  method that forgets people it was never shown forgets unseen retain people at the same rate: the points
  lie near the diagonal;
- right: forget QA against retain QA over all records (the issue's goals: forget <= 0.05, retain >= 0.9x
  before), with the bound that the diagonal implies.

The bound: with n_fv of the n_f forget QA records on validation people, forget QA <= g needs the unseen
forget people at fv <= g * n_f / n_fv even when every trained forget record is forgotten. If unseen retain
people fare the same (rv = fv), retain QA <= (n_rt + n_rv * fv) / n_r. The table prints it for the organism
of the runs; a method can beat it only by telling unseen forget people from unseen retain people.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_runs(paths: list[Path]) -> list[dict]:
    """The compare.json of every run (a folder or the file itself); one-line error when one is missing."""
    runs = []
    for p in paths:
        f = p / "compare.json" if p.is_dir() else p
        if not f.is_file():
            raise SystemExit(f"{p}: no compare.json; pass compare_methods.py output folders")
        try:
            run = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise SystemExit(f"{f}: not JSON ({err.msg}); rerun compare_methods.py to rewrite it") from None
        if not isinstance(run, dict) or not {"organism", "rows"} <= run.keys():
            raise SystemExit(f"{f}: not a compare_methods.py result (no organism/rows)")
        run["_path"] = str(p)
        runs.append(run)
    return runs


def qa_counts(organism: Path) -> dict[str, int]:
    """Number of QA records per ``side/part`` of an organism folder (``forget/train`` ...)."""
    from workbench.data import read_semeval

    out: dict[str, int] = {}
    for r in read_semeval(organism):
        if r.kind == "qa":
            key = f"{r.split}/{r.part or 'all'}"
            out[key] = out.get(key, 0) + 1
    return out


def bound(counts: dict[str, int], goal_forget: float = 0.05) -> tuple[float, float]:
    """(the largest unseen-forget EM that forget QA <= goal allows, retain QA if unseen retain fares alike)."""
    n_f = counts.get("forget/train", 0) + counts.get("forget/validation", 0)
    n_fv, n_rv = counts.get("forget/validation", 0), counts.get("retain/validation", 0)
    n_r = counts.get("retain/train", 0) + n_rv
    if not (n_fv and n_rv and n_r):
        return 1.0, 1.0
    fv = min(goal_forget * n_f / n_fv, 1.0)
    return fv, (counts.get("retain/train", 0) + n_rv * fv) / n_r


def points(runs: list[dict]) -> list[dict]:
    """One row per (run, method) with the by-part QA, the overall QA and the run's settings."""
    rows = []
    for run in runs:
        s = run.get("settings", {})
        tag = f"{s.get('kind', '?')}, lr {s.get('lr', '?')}, {s.get('steps', '?')} steps, {s.get('forget_positions', 'all')}"
        for r in run["rows"]:
            part = r.get("by_part") or {}
            if r["name"] == "before" or "forget/validation" not in part:
                continue
            rows.append({"run": run["_path"], "tag": tag, "method": r["name"], "forget_qa": r["forget_qa"],
                         "retain_qa": r["retain_qa"], "fv": part["forget/validation"],
                         "rv": part["retain/validation"]})  # fmt: skip
    return rows


def plot(rows: list[dict], counts: dict[str, int], before_retain: float, out: Path) -> None:
    """The two panels to ``out`` (PNG), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.io import atomic_path

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.8))
    methods = sorted({r["method"] for r in rows})
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        a.scatter([r["fv"] for r in sel], [r["rv"] for r in sel], color=colors[m], label=m, s=28)
        b.scatter([r["forget_qa"] for r in sel], [r["retain_qa"] for r in sel], color=colors[m], s=28)
    a.plot([0, 1], [0, 1], "k--", lw=0.8)
    a.set(xlabel="forget QA EM, validation people (unseen)", ylabel="retain QA EM, validation people (unseen)",
          title="Unseen people: forget side vs retain side", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))  # fmt: skip
    a.legend(fontsize=8, loc="lower right")
    fv, rmax = bound(counts)
    b.axvspan(-0.03, 0.05, color="green", alpha=0.08)
    b.axhline(0.9 * before_retain, color="green", lw=0.8, ls=":")
    b.axhline(rmax, color="red", lw=0.8, ls="--")
    b.text(
        0.06,
        rmax - 0.05,
        f"bound at forget 0.05 if unseen people fare alike: {rmax:.3f}",
        color="red",
        fontsize=8,
    )
    b.set(xlabel="forget QA EM (all records)", ylabel="retain QA EM (all records)",
          title="The issue's goals (green) and the bound (red)", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))  # fmt: skip
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "runs", nargs="+", type=Path, help="compare_methods.py output folders or compare.json files"
    )
    ap.add_argument("--out", type=Path, default=Path("frontier.png"))
    args = ap.parse_args(argv)
    runs = load_runs(args.runs)
    organisms = {r["organism"] for r in runs}
    if len(organisms) > 1:
        raise SystemExit(
            f"the runs come from {len(organisms)} organisms ({sorted(organisms)}); pass runs of one"
        )
    organism = Path(organisms.pop())
    if not organism.is_dir():
        raise SystemExit(
            f"{organism}: the runs' organism folder is gone; rebuild it (workbench organism build)"
        )
    counts = qa_counts(organism)
    rows = points(runs)
    if not rows:
        raise SystemExit("no method rows with a by-part table; rerun compare_methods.py (it writes them)")
    before = next(r for r in runs[0]["rows"] if r["name"] == "before")["retain_qa"]
    fv, rmax = bound(counts)
    print(f"organism: {organism}\nQA records: {counts}")
    print(f"forget QA <= 0.05 needs unseen forget EM <= {fv:.3f}; with unseen retain alike, retain QA <= {rmax:.3f} "
          f"(goal: >= {0.9 * before:.3f})")  # fmt: skip
    print("| run | method | forget QA | retain QA | unseen forget | unseen retain | gap |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["run"], r["method"])):
        print(f"| {r['tag']} | {r['method']} | {r['forget_qa']:.3f} | {r['retain_qa']:.3f} | {r['fv']:.3f} | "
              f"{r['rv']:.3f} | {r['rv'] - r['fv']:+.3f} |")  # fmt: skip
    gaps = [r["rv"] - r["fv"] for r in rows]
    print(f"{len(rows)} rows; mean gap (unseen retain - unseen forget) {sum(gaps) / len(gaps):+.3f}")
    plot(rows, counts, before, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
