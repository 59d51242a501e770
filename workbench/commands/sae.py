"""``workbench sae collect|train|eval|export|dashboard``: sparse autoencoders, one run folder per command."""

from __future__ import annotations

import argparse

_PARSERS: dict[str, argparse.ArgumentParser] = {}


def configure(p: argparse.ArgumentParser) -> None:
    """Generated flags: ``sae collect`` from :class:`~workbench.sae.activations.CollectRun`, ``sae train``
    from :class:`~workbench.sae.train.RunConfig` (``--sae.arch``, ``--train.steps``, ...; they win over
    ``--config`` and ``--set``)."""
    from ..config import add_config_arguments
    from ..sae.activations import CollectRun
    from ..sae.train import RunConfig

    add_config_arguments(_PARSERS["collect"], CollectRun)
    # d_in, site and model come from the activation store
    add_config_arguments(_PARSERS["train"], RunConfig, skip=("sae.d_in", "sae.site", "sae.model"))


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sae`` command."""
    p = sub.add_parser(
        "sae", help="sparse autoencoders: collect activations, train, evaluate, export, dashboard"
    )
    ssub = p.add_subparsers(dest="sae_command", metavar="ACTION", required=True)

    c = ssub.add_parser("collect", help="collect a site's activations into a sharded store")
    c.set_defaults(func=_collect)  # flags: configure() (generated from CollectRun)
    _PARSERS["collect"] = c

    t = ssub.add_parser("train", help="train an SAE on a store")
    t.add_argument("--store", required=True, help="activation store folder (workbench sae collect)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--config", default=None, help="YAML with sae: and train: sections")
    t.add_argument("--set", dest="overrides", action="append", default=[], help="override, e.g. sae.k=16")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    t.set_defaults(func=_train)  # the --sae.* / --train.* flags: configure() (generated from RunConfig)
    _PARSERS["train"] = t

    e = ssub.add_parser("eval", help="reconstruction metrics on a store; splice metrics with --model")
    e.add_argument("--sae", required=True, help="SAE folder (ours or SAELens format)")
    e.add_argument("--store", default=None)
    e.add_argument("--model", default=None)
    e.add_argument("--source", default=None, help="texts for the spliced CE/KL metrics")
    e.add_argument("--n-texts", type=int, default=64)
    e.add_argument("--max-tokens", type=int, default=65_536)
    e.add_argument("--out", required=True)
    e.set_defaults(func=_eval)

    x = ssub.add_parser("export", help="write an SAE in SAELens's on-disk format")
    x.add_argument("--sae", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--hook-name", default=None)
    x.set_defaults(func=_export)

    d = ssub.add_parser("dashboard", help="self-contained HTML feature dashboard")
    d.add_argument("--sae", required=True)
    d.add_argument("--model", required=True)
    d.add_argument("--source", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--n-texts", type=int, default=200)
    d.add_argument("--n-features", type=int, default=24)
    d.add_argument("--features", default=None, help="comma-separated feature ids")
    d.set_defaults(func=_dashboard)
    return p


def _collect(args: argparse.Namespace) -> int:
    from .. import load
    from ..config import config_from_args, dump_config
    from ..sae.activations import CollectRun, collect

    run = config_from_args(CollectRun, args)
    lm = load(run.model)
    store = collect(lm, run.source, run.out, run.collect_config(), overwrite=run.overwrite)
    dump_config(run, store.folder / "config.yaml")
    print(store.folder)
    print(
        f"site {store.site}  d {store.d}  tokens {store.n_tokens}  shards {len(store.meta['shards'])}  "
        f"dtype {store.meta['dtype']}"
    )
    return 0


def _run_config(args: argparse.Namespace, d_in: int, site: str, model: str):
    from ..config import apply_overrides, config_from_args, read_yaml
    from ..sae.train import RunConfig

    data = read_yaml(args.config) if args.config else {}
    data = apply_overrides(
        data, [*args.overrides, f"sae.d_in={d_in}", f"sae.site={site}", f"sae.model={model}"]
    )
    return config_from_args(RunConfig, args, base=data)


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import dump_config
    from ..io import write_json
    from ..sae import build
    from ..sae.activations import ActivationStore
    from ..sae.metrics import reconstruction_metrics
    from ..sae.train import train

    store = ActivationStore(args.store)
    cfg = _run_config(args, store.d, store.site, str(store.meta.get("model", "")))
    out = Path(args.out)
    dump_config(cfg, out / "config.yaml")
    model = build(cfg.sae, seed=cfg.train.seed)
    bs, seed = cfg.train.batch_size, cfg.train.seed
    res = train(
        model, lambda start: store.batches(bs, seed=seed, skip=start), cfg.train, out=out, resume=args.resume
    )
    m = reconstruction_metrics(
        model, store.batches(bs, seed=seed + 1, loop=False), max_tokens=cfg.eval_tokens
    )
    write_json(out / "metrics.json", {"train": res, "reconstruction": m.summary()})
    print(out)
    print(
        f"{model.arch_name}  d_sae {cfg.sae.d_sae}  steps {res.steps}  tokens {res.tokens}  "
        f"{res.tokens_per_s:,.0f} tok/s"
    )
    print(_fmt(m.summary()))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import WorkbenchError
    from ..io import write_json
    from ..sae import load
    from ..sae.activations import ActivationStore, iter_texts
    from ..sae.metrics import reconstruction_metrics, splice_metrics

    if args.store is None and args.model is None:
        raise WorkbenchError("sae eval needs --store (reconstruction) and/or --model with --source (splice)")
    model = load(args.sae)
    out = Path(args.out)
    result: dict = {}
    if args.store:
        m = reconstruction_metrics(
            model, ActivationStore(args.store).batches(4096, seed=1, loop=False), max_tokens=args.max_tokens
        )
        result["reconstruction"] = m.summary()
        result["log10_density_hist"] = m.log10_density_hist
        _density_plot(m.density, out / "density.png")
    if args.model:
        if not args.source:
            raise WorkbenchError("--model needs --source (the texts to score)")
        from .. import load as load_model

        lm = load_model(args.model)
        texts = [t for _, t in zip(range(args.n_texts), iter_texts(args.source), strict=False)]
        result["splice"] = splice_metrics(model.to(lm.device), lm, None, texts)
    write_json(out / "metrics.json", result)
    print(out)
    for key in ("reconstruction", "splice"):
        if key in result:
            vals = result[key] if isinstance(result[key], dict) else vars(result[key])
            print(f"{key}: {_fmt(vals)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..sae import load
    from ..sae.export import export_saelens

    model = load(args.sae)
    path = export_saelens(model, args.out, hook_name=args.hook_name)
    print(path)
    print(f"{model.arch_name} -> SAELens ({path / 'cfg.json'}, {path / 'sae_weights.safetensors'})")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from .. import load as load_model
    from ..sae import load
    from ..sae.activations import iter_texts
    from ..sae.dashboard import dashboard

    model = load(args.sae)
    lm = load_model(args.model)
    texts = [t for _, t in zip(range(args.n_texts), iter_texts(args.source), strict=False)]
    feats = [int(f) for f in args.features.split(",")] if args.features else None
    path = dashboard(model.to(lm.device), lm, texts, args.out, features=feats, n_features=args.n_features)
    print(path)
    print(f"{len(texts)} texts, {len(feats) if feats else args.n_features} features")
    return 0


def _fmt(vals: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in vals.items())


def _density_plot(density, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = density[density > 0]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(live.log10().numpy(), bins=40, color="#4a7")
    ax.set_xlabel("log10 feature density")
    ax.set_ylabel("features")
    ax.set_title(f"{int((density == 0).sum())} dead of {len(density)}")
    fig.tight_layout()
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
