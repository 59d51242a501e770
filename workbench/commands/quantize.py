"""``workbench quantize``: quantize a model, report what it cost, optionally measure unlearning relapse."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``quantize`` command."""
    p = sub.add_parser(
        "quantize",
        help="quantize a model (bitsandbytes, torchao, native RTN/GPTQ) and report the cost",
        description="Methods: bnb-nf4, bnb-fp4, bnb-int8, torchao-int8wo, torchao-int8da, torchao-int4wo, "
        "rtn, gptq (rtn-N / gptq-N set the bits). Writes metrics.json, weight_error.png and "
        "config.yaml into --out; with --eval also relapse.json (SemEval before/after).",
    )
    p.add_argument("--model", required=True, help="model folder (or hub id)")
    p.add_argument("--method", required=True, help="quantization method, e.g. bnb-nf4, rtn-4, gptq")
    p.add_argument("--out", required=True, help="run folder")
    g = p.add_argument_group("method options (only those the method takes)")
    g.add_argument("--bits", type=int, default=None, help="rtn/gptq bit width (2..8)")
    g.add_argument("--group-size", type=int, default=None, help="columns per scale; -1 for per channel")
    g.add_argument("--asym", action="store_true", help="rtn/gptq/torchao-int4wo: asymmetric grid")
    g.add_argument("--grid", default=None, help="rtn grid: int | nf4")
    g.add_argument(
        "--calib", default=None, help="gptq calibration text (file or folder; default <model>/corpus)"
    )
    g.add_argument("--n-samples", type=int, default=None, help="gptq calibration chunks (default 64)")
    g.add_argument("--double-quant", action="store_true", help="bnb 4-bit: double quantization")
    g.add_argument("--compute-dtype", default=None, help="bnb 4-bit compute dtype (float32|bfloat16|float16)")
    r = p.add_argument_group("report")
    r.add_argument(
        "--heldout", default=None, help="held-out text for KL/perplexity (default: --calib or <model>/corpus)"
    )
    r.add_argument("--seq-len", type=int, default=128, help="tokens per calibration / held-out chunk")
    r.add_argument("--n-heldout", type=int, default=32, help="held-out chunks")
    r.add_argument("--seed", type=int, default=0)
    e = p.add_argument_group("relapse (SemEval before and after)")
    e.add_argument(
        "--eval", action="store_true", help="run the SemEval metrics before and after quantization"
    )
    e.add_argument("--data", default=None, help="SemEval data folder (default: the model folder)")
    e.add_argument("--part", default=None, help="train | validation files only")
    e.add_argument("--limit", type=int, default=None, help="records per split x task x kind (seeded)")
    e.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--save-model", action="store_true", help="also save the quantized model to OUT/model")
    p.set_defaults(func=_run)


def method_options(args: argparse.Namespace) -> dict:
    """The method options the user gave (the method refuses those it does not take)."""
    opts = {}
    for flag, key in (
        ("bits", "bits"),
        ("group_size", "group_size"),
        ("grid", "grid"),
        ("calib", "calib"),
        ("n_samples", "n_samples"),
        ("compute_dtype", "compute_dtype"),
    ):
        if getattr(args, flag) is not None:
            opts[key] = getattr(args, flag)
    if args.asym:
        opts["sym"] = False
    if args.double_quant:
        opts["double_quant"] = True
    if args.method.startswith("gptq"):
        opts.setdefault("seq_len", args.seq_len)
        opts.setdefault("seed", args.seed)
    return opts


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from ..io import run_dir, write_json, write_text
    from ..models import load
    from ..quantization import quant_info, quantize
    from ..quantization.report import quant_report

    out = run_dir(args.out)
    opts = method_options(args)
    lm = load(args.model)
    q = quantize(lm, args.method, **opts)
    info = quant_info(q)
    write_text(
        out / "config.yaml",
        yaml.safe_dump(
            {
                "model": args.model,
                "method": info.method,
                "options": _plain(info.options),
                "report": {
                    "heldout": args.heldout or args.calib,
                    "seq_len": args.seq_len,
                    "n_heldout": args.n_heldout,
                    "seed": args.seed,
                },
                "eval": {
                    "data": args.data,
                    "part": args.part,
                    "limit": args.limit,
                    "max_new_tokens": args.max_new_tokens,
                }
                if args.eval
                else None,
            },
            sort_keys=False,
        ),
    )
    skip = int(info.options.get("n_samples", 64)) if info.method == "gptq" else 64
    report = quant_report(
        lm,
        q,
        texts=args.heldout or args.calib,
        seq_len=args.seq_len,
        n_heldout=args.n_heldout,
        skip_first=skip,
        seed=args.seed,
    )
    report.save(out)
    print(report.table())
    if args.eval:
        from ..quantization.relapse import relapse

        data = args.data or args.model
        if not Path(data).exists():
            raise_missing(data)
        res = relapse(
            lm, q, data, part=args.part, limit=args.limit, max_new_tokens=args.max_new_tokens, seed=args.seed
        )
        write_json(out / "relapse.json", res.metrics())
        print()
        print(res.table())
    if args.save_model:
        q.model.save_pretrained(out / "model", safe_serialization=True)
        q.tokenizer.save_pretrained(out / "model")
    print(f"\nrun folder: {out}")
    return 0


def raise_missing(data: str) -> None:
    """The error for a missing --data folder."""
    from ..errors import WorkbenchError

    raise WorkbenchError(
        f"--data {data!r} does not exist; pass the SemEval data folder (or the organism folder)"
    )


def _plain(obj):  # yaml-safe copy of an options dict
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
