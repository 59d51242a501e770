"""The ``workbench`` command. Parses arguments, calls one library function, prints the result.

Each command lives in ``workbench/commands/<name>.py``: ``register(subparsers)`` adds its subparser and
returns it, and ``configure(parser)`` (optional) adds its flags, which are generated from the command's
config dataclass (:func:`workbench.config.add_config_arguments`). Only the command being run is
configured, so ``workbench --help`` imports neither torch nor any method package and returns fast. A :class:`WorkbenchError` prints as
``error: <message>`` on stderr with exit status 2; any other exception keeps its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .errors import WorkbenchError

COMMANDS = ("organism", "trace", "patch", "eval", "unlearn", "edit", "sae", "quantize", "pipeline")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every command registered and ``command``'s flags configured (all: ``"*"``)."""
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Mechanistic interpretability and model editing for OLMo-class language models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"workbench.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"workbench.commands.{name}":
                continue
            raise
        sub_parser = module.register(sub)
        if command in (name, "*") and hasattr(module, "configure"):
            module.configure(sub_parser)
    return parser


NOISY = ("torchao", "torch.utils._pytree", "bitsandbytes", "transformers.modeling_utils")
"""Loggers whose import-time warnings (torchao's missing CUDA kernels, torch's Enum registration notice)
say nothing about the user's run; the CLI keeps them to errors."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the process exit status."""
    for noisy in NOISY:  # before any command module imports torch / transformers / torchao
        logging.getLogger(noisy).setLevel(logging.ERROR)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head -n 1`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
