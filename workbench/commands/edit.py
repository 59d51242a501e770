"""``workbench edit``: ROME, MEMIT or AlphaEdit edits of CounterFact-style requests into a run folder.

The flags are the fields of :class:`workbench.editing.run.EditJob`, plus one flag per editor
hyperparameter, generated from the editors' own config dataclasses (only those of the chosen method apply).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``edit`` command."""
    p = sub.add_parser("edit", help="knowledge editing (ROME, MEMIT, AlphaEdit) at given or traced layers")
    p.set_defaults(func=_run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The flags: :class:`~workbench.editing.run.EditJob`'s, then each editor hyperparameter."""
    import dataclasses

    from ..config import add_config_arguments, add_option_flags
    from ..editing.run import EditJob, option_fields

    p.description = " ".join((EditJob.__doc__ or "").split())
    add_config_arguments(p, EditJob)
    shared = {f.name for f in dataclasses.fields(EditJob)}
    title = "method hyperparameters (published defaults; or --options YAML)"
    add_option_flags(p, option_fields(), title, skip=shared)


def _run(args: argparse.Namespace) -> int:
    from ..config import config_from_args, given_options
    from ..editing.run import EditJob, option_fields, run_edit
    from ..errors import WorkbenchError

    given = given_options(args)
    cfg = config_from_args(EditJob, args, base={"options": given})
    known = option_fields()
    wrong = sorted(k for k in given if cfg.method not in known[k][2])
    if wrong:
        users = {k: known[k][2] for k in wrong}
        raise WorkbenchError(
            f"{cfg.method} does not take {', '.join(f'--{k} (only {v})' for k, v in users.items())}"
        )
    run, folder = run_edit(cfg)
    if run.before:
        print(run.table())
    print(
        f"\n{cfg.method}: {len(run.result.requests)} request(s) into layers {run.result.layers}; run folder: {folder}"
    )
    return 0
