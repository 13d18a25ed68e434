"""The ``seispinn`` command line.

Each subcommand lives in its own module of this package with two functions:
``add_parser(subparsers)`` registering its arguments, and ``run(args) -> int``.
Errors of seispinn's own (:class:`seispinn.errors.SeispinnError`) are printed as
one line on stderr with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from seispinn.errors import SeispinnError

__all__ = ["main"]

# Subcommand modules, in the order `seispinn --help` lists them.
_COMMANDS = (
    "info",
    "simulate",
    "race",
    "forward",
    "invert",
    "fwi",
    "wri",
    "compare",
    "plot",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seispinn",
        description="Seismic full-waveform inversion with physics-informed neural networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        module = importlib.import_module(f"seispinn.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for a relaunch (--nproc)
    try:
        return int(args.func(args) or 0)
    except SeispinnError as exc:
        print(f"seispinn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output folder that cannot be made, a full disk...
        print(f"seispinn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # Training stops at a step, checkpoints it and says where
        # (seispinn.pinn.training.Interrupted); elsewhere Ctrl-C stops at once.
        line = str(exc) or "interrupted"
        if getattr(exc, "checkpoint", None) is not None and hasattr(args, "resume"):
            line += " (--resume continues)"
        print(f"seispinn {args.command}: {line}", file=sys.stderr)
        return int(getattr(exc, "exit_status", 130))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
