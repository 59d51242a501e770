"""``workbench eval``: SemEval-2025 Task 4 metrics, membership inference, MMLU and stability probes."""

from __future__ import annotations

import argparse

SUITES = ("semeval", "mia", "mmlu", "stability")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` command."""
    p = sub.add_parser("eval", help="evaluate a model: SemEval-2025 Task 4, MIA, MMLU, stability proxies")
    p.add_argument("--model", required=True, help="model folder (save_pretrained) or hub id")
    p.add_argument(
        "--data", required=True, help="organism folder or SemEval data folder (forget/retain files)"
    )
    p.add_argument("--suite", default=",".join(SUITES), help=f"comma-separated subset of {','.join(SUITES)}")
    p.add_argument("--out", default=None, help="run folder for metrics.json and samples.jsonl")
    p.add_argument("--max-new-tokens", type=int, default=256, help="greedy generation length (official: 256)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--part",
        choices=("train", "validation"),
        default=None,
        help="SemEval files of this part only, where the layout has parts",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="at most N records per split x task x kind and N MIA documents per side (seeded)",
    )
    p.add_argument("--mmlu", default=None, help="MMLU folder/file or lm-eval task name (default: auto)")
    p.add_argument("--num-fewshot", type=int, default=0, help="MMLU shots from dev (default 0)")
    p.add_argument(
        "--mmlu-formulation",
        choices=("mcf", "cf"),
        default=None,
        help="mcf: answer letters (lm-eval mmlu); cf: choice texts (mmlu_continuation); "
        "default: cf on an organism's utility set, mcf elsewhere",
    )
    p.add_argument("--mia-k", type=float, default=0.2, help="Min-K%% fraction (default 0.2)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 | auto")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..evaluation.suite import evaluate, parse_suites
    from ..models import load

    suites = parse_suites(args.suite)
    lm = load(args.model, dtype=args.dtype, device=args.device)
    report = evaluate(
        lm,
        args.data,
        suites=suites,
        out=args.out,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        part=args.part,
        limit=args.limit,
        mmlu=args.mmlu,
        num_fewshot=args.num_fewshot,
        mmlu_formulation=args.mmlu_formulation,
        mia_k=args.mia_k,
        seed=args.seed,
        progress=True,
    )
    print(report.table())
    if args.out:
        print(f"wrote {args.out}/metrics.json and {args.out}/samples.jsonl")
    return 0
