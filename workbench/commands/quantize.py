"""``workbench quantize``: quantize a model, report what it cost, optionally measure unlearning relapse.

The flags are the fields of :class:`workbench.quantization.run.QuantizeRun`, plus one flag per method
option, generated from the methods' own options dataclasses.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``quantize`` command."""
    p = sub.add_parser(
        "quantize", help="quantize a model (bitsandbytes, torchao, native RTN/GPTQ) and report the cost"
    )
    p.set_defaults(func=_run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The flags: :class:`~workbench.quantization.run.QuantizeRun`'s, then each method option's."""
    import dataclasses

    from ..config import add_config_arguments, add_option_flags
    from ..quantization.run import QuantizeRun, option_fields

    p.description = " ".join((QuantizeRun.__doc__ or "").split())
    add_config_arguments(p, QuantizeRun)
    shared = {f.name for f in dataclasses.fields(QuantizeRun)}  # e.g. seq_len, seed: gptq reads the run's
    title = "method options (only those the method takes; or --options YAML)"
    add_option_flags(p, option_fields(), title, skip=shared)


def _run(args: argparse.Namespace) -> int:
    from ..config import config_from_args, given_options
    from ..quantization.run import QuantizeRun, option_fields, run_quantize

    given = given_options(args)
    known = option_fields()
    given = {k: v for k, v in given.items() if k in known}
    cfg = config_from_args(QuantizeRun, args, base={"options": given})
    res = run_quantize(cfg)
    print(res["report"].table())
    if res["relapse"] is not None:
        print()
        print(res["relapse"].table())
    print(f"\nrun folder: {res['out']}")
    return 0
