"""``workbench patch``: token-replacement activation patching (exact or AtP) of one prompt pair."""

from __future__ import annotations

import argparse

SITES = ("resid_pre", "resid_post", "attn", "mlp", "heads")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``patch`` command."""
    p = sub.add_parser("patch", help="activation patching between a clean and a corrupted prompt")
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--clean", required=True, help="clean prompt")
    p.add_argument("--corrupted", required=True, help="corrupted prompt (same number of tokens)")
    p.add_argument(
        "--sites",
        nargs="+",
        default=["resid_pre", "attn", "mlp", "heads"],
        help=f"site kinds among {', '.join(SITES)} (resid = resid_pre)",
    )
    p.add_argument("--metric", choices=("logit_diff", "prob"), default="logit_diff")
    p.add_argument(
        "--answers",
        nargs="+",
        default=None,
        help="answer tokens: correct [wrong] (default: the two runs' top tokens)",
    )
    p.add_argument("--direction", choices=("denoise", "noise"), default="denoise")
    p.add_argument(
        "--method",
        choices=("exact", "atp"),
        default="exact",
        help="exact patching, or the attribution-patching estimate",
    )
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--dtype", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="run folder to write")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import yaml

    from ..io import run_dir, write_json, write_text
    from ..models import load
    from ..tracing import attribution_patch, patch
    from ..tracing.plots import plot_patch

    lm = load(args.model, dtype=args.dtype, device=args.device)
    out = run_dir(args.out)
    write_text(
        out / "config.yaml",
        yaml.safe_dump({k: v for k, v in vars(args).items() if k != "func"}, sort_keys=False),
    )
    kw = dict(sites=args.sites, metric=args.metric, answers=args.answers, direction=args.direction)
    if args.method == "exact":
        result = patch(lm, args.clean, args.corrupted, max_batch_tokens=args.max_batch_tokens, **kw)
    else:
        result = attribution_patch(lm, args.clean, args.corrupted, **kw)
    result.save(out)
    plot_patch(result, out / "patch.png")
    peaks = {}
    base = result.corrupted if result.direction == "denoise" else result.clean
    for site, grid in result.scores.items():
        idx = result.peak(site)
        peaks[site] = {"index": idx, "effect": float(grid[idx]) - base, "token": result.tokens[idx[1]]}
    write_json(
        out / "metrics.json",
        {
            "clean": result.clean,
            "corrupted": result.corrupted,
            "metric": result.metric,
            "answers": result.answers,
            "peaks": peaks,
        },
    )
    print(
        f"{result.method} patching ({result.direction}, {result.metric}): clean {result.clean:.4f}, "
        f"corrupted {result.corrupted:.4f} -> {out}"
    )
    for site, pk in peaks.items():
        where = f"layer {pk['index'][0]} pos {pk['index'][1]} ({pk['token']!r})"
        if site == "heads":
            where += f" head {pk['index'][2]}"
        print(f"  peak {site}: {where}, change {pk['effect']:+.4f}")
    return 0
