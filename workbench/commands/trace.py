"""``workbench trace``: ROME causal tracing of a fact file into a run folder.

Runs sharded over processes under ``accelerate launch`` / ``torchrun`` (facts split by index, merged by
the main process; see :mod:`workbench.tracing.distributed`).
"""

from __future__ import annotations

import argparse

KINDS = ("hidden", "mlp", "attn")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``trace`` command."""
    p = sub.add_parser("trace", help="causal tracing (ROME) of {prompt, subject, answer} facts")
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument(
        "--facts",
        required=True,
        help="JSONL of {prompt, subject, answer?}, or SemEval records (e.g. LUME's forget.jsonl): their QA "
        "records are traced with the question's named entity as the subject and the output as the answer",
    )
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="grids to compute")
    p.add_argument("--samples", type=int, default=10, help="noise samples per fact (default 10)")
    p.add_argument("--noise", type=float, default=3.0, help="noise scale in units of σ (default 3)")
    p.add_argument("--sigma", type=float, default=None, help="σ itself (default: std of subject embeddings)")
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="restored mlp/attn layers per cell (default: about a fifth of the depth, ROME's 10 of 48)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-unknown", action="store_true", help="also trace facts the model gets wrong")
    p.add_argument("--max-batch-tokens", type=int, default=16384, help="rows × tokens per forward")
    p.add_argument(
        "--no-prefix-reuse",
        action="store_true",
        help="run every cell on the whole prompt (no KV-cache sharing)",
    )
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: float32 on CPU)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (distributed runs use their own)")
    p.add_argument("--figures", type=int, default=10, help="per-fact ROME figures to draw (default 10)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.set_defaults(func=_run)


def _summary(result) -> dict:
    out = {
        "facts_traced": len(result.facts),
        "facts_skipped": len(result.skipped),
        "sigma": result.sigma,
        "window": result.window,
        "peak_layer_last_subject": {},
        "aie": {},
    }
    if not result.facts:
        return out
    for kind in result.kinds:
        eff = result.layer_effect(kind)
        peak = result.peak_layer(kind)
        out["peak_layer_last_subject"][kind] = {"layer": peak, "aie": float(eff[peak])}
        aie = result.aie(kind)
        out["aie"][kind] = {
            b: {"mean": aie.mean[i], "ci95": aie.ci[i], "n": aie.n[i]} for i, b in enumerate(aie.buckets)
        }
    if "mlp" in result.kinds:
        out["top_mlp_layers"] = result.top_layers("mlp")
        out["peak_mlp_block"] = result.peak_block("mlp")
    return out


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from ..data import read_facts
    from ..io import run_dir, write_json, write_text
    from ..models import load
    from ..tracing import causal_trace
    from ..tracing.distributed import process_state, run_sharded
    from ..tracing.plots import plot_aie, plot_fact

    facts = read_facts(args.facts)
    state = process_state(cpu=args.device in (None, "cpu"))
    device = state.device if state is not None else args.device
    lm = load(args.model, dtype=args.dtype, device=device)
    main = state is None or state.is_main_process
    out = run_dir(args.out)
    kw = dict(
        kinds=args.kinds,
        samples=args.samples,
        noise=args.noise,
        sigma=args.sigma,
        window=args.window,
        seed=args.seed,
        keep_unknown=args.keep_unknown,
        max_batch_tokens=args.max_batch_tokens,
        reuse_prefix=not args.no_prefix_reuse,
    )
    if main:
        cfg = {
            "model": args.model,
            "facts": str(Path(args.facts)),
            "dtype": args.dtype,
            **kw,
            "kinds": list(args.kinds),
            "processes": 1 if state is None else state.num_processes,
        }
        write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    result = run_sharded(lambda shard: causal_trace(lm, facts, shard=shard, progress=main, **kw), out, state)
    if result is None:
        return 0
    result.save(out)
    summary = _summary(result)
    write_json(out / "metrics.json", summary)
    if result.facts:
        plot_aie(result, out / "aie.png")
        for f in result.facts[: args.figures]:
            plot_fact(f, out / "figures" / f"fact{f.index}.png", window=result.window)
    print(
        f"traced {len(result.facts)} facts ({len(result.skipped)} skipped as unknown), "
        f"sigma={result.sigma:.4g}, noise={result.noise}σ -> {out}"
    )
    peaks = summary["peak_layer_last_subject"]
    if peaks:
        print(
            "peak layer at the last subject token: "
            + " | ".join(f"{k} {v['layer']} (AIE {v['aie']:.4f})" for k, v in peaks.items())
        )
    return 0
