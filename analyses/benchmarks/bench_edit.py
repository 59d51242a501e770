"""Benchmark and goal figures of knowledge editing (issue 16) on the organism.

    python analyses/benchmarks/bench_edit.py [--organism default|tiny|FOLDER] [--layers 1 | --trace DIR]
        [--sections stats,rome,memit,alphaedit] [--samples 100,300,1000,3000,all] [--org-every 5]
        [--threads 2] [--out runs/bench_edit]

1. ``stats``: time of the key statistics C = E[k kᵀ] against the number of texts (uncached), the relative
   change ‖C_n − C_all‖/‖C_all‖, and ROME's efficacy / neighbourhood score on ``--probe`` retain requests
   with each C_n (how few texts suffice, instead of ROME's 100k).
2. ``rome``: single edits of every *retain* request (edit, score, revert): efficacy, paraphrase and
   neighbourhood scores and argmax accuracies; retain QA and utility after every ``--org-every``-th edit
   against before (their mean and largest change).
3. ``memit``: all requests (both sides) in one batch: time with the statistics cached, the metrics, retain
   QA and utility before/after.
4. ``alphaedit``: 10 sequential rounds of 10 requests (all requests, shuffled with a seed): the first
   round's efficacy after each round, the final metrics, retain QA and utility.

Layers: ``--layers`` (used by every method), or a causal trace of the retain requests' prompts (ROME the
top MLP layer at the last subject token, MEMIT/AlphaEdit the peak MLP block of width ``--width``).
Everything is printed as one table and written to ``--out/bench_edit.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEAD = (
    "efficacy_score",
    "efficacy_acc",
    "paraphrase_score",
    "paraphrase_acc",
    "neighborhood_score",
    "neighborhood_acc",
)


def locate(spec: str) -> Path:
    """An organism folder: a path, or the cached build of a preset (never built here)."""
    path = Path(spec)
    if path.is_dir():
        return path
    from workbench.organism.build import cached

    found = cached(spec)
    if found is None:
        raise SystemExit(
            f"no built {spec!r} organism in the cache; build it first (workbench organism build)"
        )
    return found


def mean(xs):
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else float("nan")


def trace_layers(lm, reqs, width, samples):
    """(ROME layer, MEMIT block) from a causal trace of the requests' prompts."""
    import workbench as wb

    facts = [{"prompt": r.prompt, "subject": r.subject, "answer": r.target_true} for r in reqs]
    trace = wb.causal_trace(lm, facts, samples=samples, kinds=("mlp",))
    eff = trace.layer_effect("mlp").tolist()
    print("trace: MLP AIE at the last subject token by layer:", [round(e, 4) for e in eff])
    return trace.top_layers("mlp", 1), trace.peak_block("mlp", width), eff


def stats_section(lm, retain, args, layer):
    """C from n texts: time, distance to C from all texts, and ROME's scores with it (δ computed once)."""
    import torch

    from workbench.editing import context_prefixes, editor_config, evaluate_requests, second_moments
    from workbench.editing.keys import at_subject, average, context_rows
    from workbench.editing.rome import rank_one_update, solve_psd
    from workbench.editing.sources import read_texts, resolve_source
    from workbench.editing.targets import optimise_targets
    from workbench.editing.weights import add_delta, down_proj, weight

    n_all = len(read_texts(resolve_source(None, lm)))
    sizes = sorted({n_all if s == "all" else min(int(s), n_all) for s in args.samples.split(",")})
    cfg = editor_config("rome", **opts("rome"))
    prefixes = context_prefixes(lm, cfg)
    dp, site = down_proj(lm, layer), f"layers.{layer}.mlp.hidden"
    probe = []
    for r in retain[: args.probe]:  # the key and δ do not depend on C: compute them once
        rows = context_rows(lm.tokenizer, [r], prefixes)
        acts = at_subject(lm, rows, [site])[site]
        delta = optimise_targets(lm, [r], dp.output_site, prefixes, cfg).delta[0]
        probe.append((r, average(acts, rows, 1, grouped=False)[0], acts[0], delta))
    Cs, rows_out, original = {}, [], weight(lm, dp).detach().clone()
    for n in sizes:
        t0 = time.perf_counter()
        Cs[n] = second_moments(lm, [layer], n_samples=n, progress=False, use_cache=False)[layer]
        secs = time.perf_counter() - t0
        scores = []
        for r, k_bar, k_b, delta in probe:
            u = solve_psd(Cs[n], k_bar)
            dW = rank_one_update(u / u.norm(), k_b, delta)
            add_delta(lm, dp, dW)
            scores.append(evaluate_requests(lm, [r]).as_dict())
            with torch.no_grad():
                weight(lm, dp).copy_(original)
        rows_out.append({"n": n, "seconds": secs, **{k: mean([s[k] for s in scores]) for k in HEAD}})
        print(
            f"stats n={n:6d}: {secs:7.1f} s  efficacy {rows_out[-1]['efficacy_score']:.3f}  "
            f"neighbourhood {rows_out[-1]['neighborhood_score']:.3f}",
            flush=True,
        )
    ref = Cs[sizes[-1]]
    for row in rows_out:
        row["rel_change"] = float((Cs[row["n"]] - ref).norm() / ref.norm())
    return rows_out


ORG_ON = True
OPTS: dict = {}
"""Editor options for every edit (``--options``), on top of each method's published defaults."""


def opts(method: str) -> dict:
    """The ``--options`` that ``method`` takes (e.g. ROME has no ``mom2_update_weight``)."""
    import dataclasses

    from workbench.editing import editor

    names = {f.name for f in dataclasses.fields(editor(method).config_cls)}
    return {k: v for k, v in OPTS.items() if k in names}


def org(lm, folder):
    from workbench.editing import organism_scores

    if not ORG_ON:
        return {"retain_qa": float("nan"), "forget_qa": float("nan"), "utility": float("nan")}
    s = organism_scores(lm, folder).as_dict()
    return {"retain_qa": s["qa_em_retain"], "forget_qa": s["qa_em_forget"], "utility": s["utility"]}


def rome_section(lm, folder, retain, layer, base, args):
    from workbench.editing import context_prefixes, edit, editor_config, evaluate_requests

    cfg = editor_config("rome", **opts("rome"))
    prefixes = context_prefixes(lm, cfg)
    per, orgs, secs = [], [], []
    for i, r in enumerate(retain):
        t0 = time.perf_counter()
        res = edit(lm, [r], method="rome", layers=[layer], config=cfg, prefixes=prefixes, progress=False)
        secs.append(time.perf_counter() - t0)
        per.append(evaluate_requests(lm, [r]).as_dict())
        if args.org_every and i % args.org_every == 0:
            orgs.append(org(lm, folder))
        res.revert()
        print(
            f"rome {i + 1}/{len(retain)}: efficacy {per[-1]['efficacy_score']:.0f} paraphrase "
            f"{per[-1]['paraphrase_score']:.2f} neighbourhood {per[-1]['neighborhood_score']:.2f}",
            flush=True,
        )
    out = {k: mean([p[k] for p in per]) for k in HEAD}
    out["seconds_per_edit"] = mean(secs)
    for key in ("retain_qa", "utility"):
        deltas = [o[key] - base[key] for o in orgs]
        out[f"{key}_mean_change"], out[f"{key}_worst_change"] = mean(deltas), min(deltas) if deltas else None
    out["org_evaluated_edits"] = len(orgs)
    return out


def memit_section(lm, folder, reqs, layers, base):
    from workbench.editing import edit, evaluate_requests

    before = evaluate_requests(lm, reqs).as_dict()
    edit(
        lm, reqs[:1], method="memit", layers=layers, progress=False, **opts("memit")
    ).revert()  # statistics cached
    t0 = time.perf_counter()
    res = edit(lm, reqs, method="memit", layers=layers, progress=False, **opts("memit"))
    secs = time.perf_counter() - t0
    after = evaluate_requests(lm, reqs).as_dict()
    o = org(lm, folder)
    res.revert()
    return {
        "seconds": secs,
        "before": before,
        "after": after,
        **o,
        "retain_qa_ratio": o["retain_qa"] / base["retain_qa"],
        "utility_ratio": o["utility"] / base["utility"],
    }


def alphaedit_section(lm, folder, reqs, layers, base, rounds, size, seed):
    from workbench.editing import edit, evaluate_requests

    order = list(reqs)
    random.Random(seed).shuffle(order)
    batches = [order[i * size : (i + 1) * size] for i in range(rounds)]
    state, results, first = None, [], []
    t0 = time.perf_counter()
    for b in batches:
        res = edit(lm, b, method="alphaedit", layers=layers, progress=False, state=state, **opts("alphaedit"))
        state = res.state
        results.append(res)
        first.append(evaluate_requests(lm, batches[0]).efficacy_score)
        print(f"alphaedit round {len(results)}: first-round efficacy {first[-1]:.3f}", flush=True)
    secs = time.perf_counter() - t0
    edited = [r for b in batches for r in b]
    after = evaluate_requests(lm, edited).as_dict()
    o = org(lm, folder)
    for res in reversed(results):
        res.revert()
    return {
        "seconds": secs,
        "first_round_efficacy": first,
        "after": after,
        **o,
        "null_dims": results[0].info.get("null_dims"),
        "retain_qa_ratio": o["retain_qa"] / base["retain_qa"],
        "utility_ratio": o["utility"] / base["utility"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--organism", default="default")
    p.add_argument("--layers", default=None, help="comma-separated layers for every method (default: trace)")
    p.add_argument("--rome-layer", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="MEMIT/AlphaEdit block width from the trace")
    p.add_argument("--trace-samples", type=int, default=5)
    p.add_argument("--sections", default="stats,rome,memit,alphaedit")
    p.add_argument("--samples", default="100,300,1000,3000,all")
    p.add_argument(
        "--probe", type=int, default=8, help="requests edited per sample count in the stats section"
    )
    p.add_argument("--org-every", type=int, default=5)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--round-size", type=int, default=10)
    p.add_argument(
        "--limit", type=int, default=None, help="use the first N requests of each side (smoke runs)"
    )
    p.add_argument("--no-org", action="store_true", help="skip retain QA / utility (smoke runs)")
    p.add_argument(
        "--options", default="{}", help="editor options (YAML) for every method, e.g. '{fact_token: last}'"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_edit")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import workbench as wb
    from workbench.editing import read_requests

    folder = locate(args.organism)
    lm = wb.load(folder)
    reqs = read_requests(folder)
    if args.limit:
        sides = {r.extra.get("side") for r in reqs}
        reqs = [
            r
            for side in sorted(sides)
            for r in [q for q in reqs if q.extra.get("side") == side][: args.limit]
        ]
    retain = [r for r in reqs if r.extra.get("side") == "retain"]
    global ORG_ON
    ORG_ON = not args.no_org
    import yaml

    OPTS.update(yaml.safe_load(args.options) or {})
    print(f"{folder}: {len(reqs)} requests, {len(retain)} on the retain side", flush=True)
    if args.layers:
        block = [int(x) for x in args.layers.split(",")]
        top, eff = [args.rome_layer if args.rome_layer is not None else block[0]], None
    else:
        top, block, eff = trace_layers(lm, retain, args.width, args.trace_samples)
    print(f"layers: rome {top}, memit/alphaedit {block}", flush=True)
    sections = args.sections.split(",")
    report = {"organism": str(folder), "layers": {"rome": top, "memit": block}, "trace_mlp_aie": eff}
    base = org(lm, folder)
    report["before"] = base
    print("before:", base, flush=True)
    if "stats" in sections:
        report["stats"] = stats_section(lm, retain, args, top[0])
    if "rome" in sections:
        report["rome"] = rome_section(lm, folder, retain, top[0], base, args)
        print("rome:", report["rome"], flush=True)
    if "memit" in sections:
        report["memit"] = memit_section(lm, folder, reqs, block, base)
        print("memit:", report["memit"], flush=True)
    if "alphaedit" in sections:
        report["alphaedit"] = alphaedit_section(
            lm, folder, reqs, block, base, args.rounds, args.round_size, args.seed
        )
        print("alphaedit:", report["alphaedit"], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_edit.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


def print_table(rep: dict) -> None:
    """The goal figures of issue 16 as one table."""
    lines = ["| figure | measured | goal |", "|---|---|---|"]
    r = rep.get("rome")
    if r:
        lines += [
            f"| ROME single edits (retain side): efficacy / paraphrase / neighbourhood | "
            f"{r['efficacy_score']:.3f} / {r['paraphrase_score']:.3f} / {r['neighborhood_score']:.3f} | ≥ 0.99 / 0.90 / 0.95 |",
            f"| ROME: retain QA / utility change (mean, worst) | {r['retain_qa_mean_change']:+.3f}, {r['retain_qa_worst_change']:+.3f} / "
            f"{r['utility_mean_change']:+.3f}, {r['utility_worst_change']:+.3f} | within ±0.01 |",
        ]
    m = rep.get("memit")
    if m:
        a = m["after"]
        lines += [
            f"| MEMIT {len(rep.get('layers', {}).get('memit', []))}-layer batch: efficacy / paraphrase / neighbourhood | "
            f"{a['efficacy_score']:.3f} / {a['paraphrase_score']:.3f} / {a['neighborhood_score']:.3f} | ≥ 0.97 / 0.85 / 0.90 |",
            f"| MEMIT: retain QA / utility (× before) | {m['retain_qa_ratio']:.3f} / {m['utility_ratio']:.3f} | ≥ 0.97 / 0.98 |",
            f"| MEMIT: time (statistics cached) | {m['seconds']:.1f} s | ≤ 60 s |",
        ]
    e = rep.get("alphaedit")
    if e:
        lines += [
            f"| AlphaEdit 10×10 sequential: first-round efficacy after the last round | {e['first_round_efficacy'][-1]:.3f} | ≥ 0.9 |",
            f"| AlphaEdit: retain QA / utility (× before) | {e['retain_qa_ratio']:.3f} / {e['utility_ratio']:.3f} | — |",
        ]
    for s in rep.get("stats", []):
        lines.append(
            f"| statistics, {s['n']} texts | {s['seconds']:.1f} s, ‖ΔC‖/‖C‖ {s['rel_change']:.3f}, ROME efficacy "
            f"{s['efficacy_score']:.3f}, neighbourhood {s['neighborhood_score']:.3f} | — |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
