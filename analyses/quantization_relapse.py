"""Does unlearned knowledge come back after quantization? (Zhang et al., ICLR 2025, arXiv:2410.16454)

On the model organism: run every registered unlearning method (its ``configs/unlearn/<method>.yaml``,
pointed at the organism), then measure forget knowledge (SemEval forget QA exact match and forget
regurgitation) of each unlearned model at full precision and after bnb-int8, bnb-nf4, rtn-4 and gptq-4,
next to the original model. Prints one table, writes ``metrics.json``, ``table.txt`` and
``relapse.png`` into ``--out``.

    python analyses/quantization_relapse.py --preset default --out runs/analyses/quantization_relapse
    python analyses/quantization_relapse.py --preset tiny --steps 60 --methods constrained,grad_diff

Relapse = forget QA(quantized) - forget QA(fp32), in points; "kept" = forget QA / the original model's.
A method named ``sure-<base>`` (e.g. ``sure-npo``) runs the quantization-robust SURE objective
(``workbench/unlearning/objectives/sure.py``) on top of ``<base>``'s config, with ``--sure-top`` of the
neurons trainable and ``--sure-lr-mult`` times its learning rate.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUANTS = ("fp32", "bnb-int8", "bnb-nf4", "rtn-4", "gptq-4")
log = logging.getLogger("quantization_relapse")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", help="organism preset (default | tiny)")
    p.add_argument("--organism", default=None, help="an organism folder instead of building the preset")
    p.add_argument("--methods", default="all", help="comma-separated unlearning methods (default: every one)")
    p.add_argument("--quant", default=",".join(QUANTS), help="comma-separated quantizations (fp32 = none)")
    p.add_argument("--steps", type=int, default=None, help="override train.max_steps of every method")
    p.add_argument("--layers", default=None, help="override select.layers, e.g. '[0,1]' (tiny organism)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD:KEY=VALUE",
        help="extra config override for one method (or '*'), e.g. 'rmu:params.layer=1'",
    )
    p.add_argument("--sure-top", type=float, default=0.1, help="sure-<base>: share of salient neurons kept")
    p.add_argument("--sure-lr-mult", type=float, default=4.0, help="sure-<base>: learning rate x the base's")
    p.add_argument("--part", default="train", help="SemEval part to score (the unlearned one: train)")
    p.add_argument("--limit", type=int, default=None, help="records per split x task x kind")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--group-size", type=int, default=64, help="group size of rtn-4 / gptq-4")
    p.add_argument("--skip-original", action="store_true", help="do not measure the original model")
    p.add_argument("--reuse", action="store_true", help="reuse unlearned models already in --out")
    p.add_argument("--out", default="runs/analyses/quantization_relapse")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def unlearned_models(args: argparse.Namespace, org_path: Path, out: Path) -> Iterator[tuple[str, Path]]:
    """Run (or reuse) each unlearning method on the organism in turn; yields (method, model folder)."""
    from workbench.config import load_config
    from workbench.unlearning import OBJECTIVES, UnlearnConfig, unlearn

    methods = sorted(OBJECTIVES) if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    for method in methods:
        run = out / "unlearn" / method
        if args.reuse and (run / "model" / "config.json").is_file():
            yield method, run / "model"
            continue
        base = method.split("-", 1)[1] if method.startswith("sure-") else method
        yaml_path = REPO / "configs" / "unlearn" / f"{base}.yaml"
        overrides = [
            f"model={org_path}",
            f"out={run}",
            f"data.path={org_path}",
            f"method={base}",
            "train.progress=false",
            f"train.seed={args.seed}",
        ]
        if base != method:  # sure-<base>: the base's config, saliency-restricted, larger learning rate
            overrides += sure_overrides(yaml_path, base, args)
        if args.steps is not None:
            overrides.append(f"train.max_steps={args.steps}")
        if args.layers is not None:
            overrides.append(f"select.layers={args.layers}")
        overrides += [o.split(":", 1)[1] for o in args.set if o.split(":", 1)[0] in (method, base, "*")]
        try:
            cfg = load_config(UnlearnConfig, yaml_path if yaml_path.is_file() else None, overrides)
            result = unlearn(cfg)
        except Exception as e:  # one failing method must not sink the table; it is reported
            log.error("unlearning with %s failed: %s", method, e)
            continue
        log.info("%s", result.summary())
        yield method, Path(result.model_dir)


def sure_overrides(yaml_path: Path, base: str, args: argparse.Namespace) -> list[str]:
    """Config overrides turning ``base`` into SURE on top of it (Zhang et al. 2025, §5)."""
    import json

    import workbench.unlearning.objectives.sure  # noqa: F401  (registers "sure")
    from workbench.config import read_yaml

    data = read_yaml(yaml_path) if yaml_path.is_file() else {}
    params = {"base": base, "base_params": data.get("params", {}), "top_fraction": args.sure_top}
    lr = float(data.get("train", {}).get("lr", 1e-5)) * args.sure_lr_mult
    return ["method=sure", f"params={json.dumps(params)}", f"train.lr={lr}"]


def measure(
    name: str, model_dir: Path, org_path: Path, quants: list[str], args: argparse.Namespace
) -> list[dict]:
    """Forget / retain SemEval numbers of one model at every quantization."""
    from workbench.models import load
    from workbench.quantization import quantize
    from workbench.quantization.relapse import semeval_snapshot

    lm = load(model_dir)
    rows = []
    for qname in quants:
        if qname == "fp32":
            qlm = lm
        else:
            opts = {"group_size": args.group_size} if qname.startswith(("rtn", "gptq")) else {}
            if qname.startswith("gptq"):
                opts.update(calib=str(org_path), seed=args.seed)
            qlm = quantize(lm, qname, **opts)
        snap = semeval_snapshot(
            qlm,
            org_path,
            part=args.part,
            limit=args.limit,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
        )
        rows.append({"model": name, "quant": qname, **vars(snap)})
        log.info("%s %s: forget QA %.3f", name, qname, snap.forget_qa or 0.0)
    return rows


def table(rows: list[dict]) -> str:
    """One plain-text table: forget QA / regurgitation / retain QA per model and quantization."""
    base = {r["model"]: r for r in rows if r["quant"] == "fp32"}
    orig = next((r for r in rows if r["model"] == "original" and r["quant"] == "fp32"), None)
    head = (
        f"{'model':14s}{'quant':10s}{'forget QA':>10s}{'relapse':>9s}{'kept %':>8s}{'forget RG':>10s}"
        f"{'retain QA':>10s}{'retain RG':>10s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        fp = base.get(r["model"])
        rel = 100 * (r["forget_qa"] - fp["forget_qa"]) if fp and r["quant"] != "fp32" else None
        kept = 100 * r["forget_qa"] / orig["forget_qa"] if orig and orig["forget_qa"] else None
        lines.append(
            f"{r['model']:14s}{r['quant']:10s}{100 * r['forget_qa']:10.1f}"
            f"{'' if rel is None else f'{rel:+.1f}':>9s}{'' if kept is None else f'{kept:.0f}':>8s}"
            f"{100 * r['forget_regurgitation']:10.1f}{100 * r['retain_qa']:10.1f}"
            f"{100 * r['retain_regurgitation']:10.1f}"
        )
    lines.append(
        "(percent; relapse = forget QA after quantization - at fp32, in points; kept = forget QA / "
        "the original model's)"
    )
    return "\n".join(lines)


def plot(rows: list[dict], quants: list[str], path: Path) -> None:
    """Grouped bars: forget QA per model, one bar per quantization."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.io import atomic_path

    models = list(dict.fromkeys(r["model"] for r in rows))
    width = 0.8 / len(quants)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(models)), 4.0))
    for j, q in enumerate(quants):
        vals = [
            next((100 * r["forget_qa"] for r in rows if r["model"] == m and r["quant"] == q), 0.0)
            for m in models
        ]
        ax.bar([i + j * width for i in range(len(models))], vals, width, label=q)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models, rotation=20)
    ax.set_ylabel("forget QA exact match (%)")
    ax.set_title("Unlearning relapse under quantization")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the analysis; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("torchao", "bitsandbytes", "transformers", "torch.utils._pytree"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args = parse_args(argv)
    from workbench.io import run_dir, write_json, write_text

    out = run_dir(args.out)
    if args.organism:
        org_path = Path(args.organism)
    else:
        from workbench.organism import build

        org_path = Path(build(args.preset, seed=args.seed).path)
    quants = [q.strip() for q in args.quant.split(",") if q.strip()]
    rows: list[dict] = []
    first = [] if args.skip_original else [("original", org_path)]
    models = itertools.chain(first, unlearned_models(args, org_path, out))
    for name, folder in models:  # measured as soon as each is unlearned; results written after each
        rows += measure(name, folder, org_path, quants, args)
        write_json(out / "metrics.json", {"organism": str(org_path), "part": args.part, "rows": rows})
        write_text(out / "table.txt", table(rows) + "\n")
        plot(rows, quants, out / "relapse.png")
    print(table(rows))
    print(f"\nrun folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
