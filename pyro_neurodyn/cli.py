"""The ``neurodyn`` command line.

Each subcommand lives in a function ``_cmd_<name>(args)`` registered in :data:`COMMANDS` together
with a function that adds its arguments; later modules add theirs the same way.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from . import __version__

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _add_info_args(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _cmd_info(args: argparse.Namespace) -> int:
    """Print the versions of the stack and the torch thread count."""
    import pyro
    import torch

    print(f"pyro_neurodyn {__version__}")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), pyro-ppl {pyro.__version__}")
    return 0


COMMANDS: list[Command] = [
    ("info", _add_info_args, _cmd_info),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurodyn", description="Switching and low-rank stochastic RNNs for neural data.")
    parser.add_argument("--version", action="version", version=f"pyro_neurodyn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add_arguments, run in COMMANDS:
        sub = subparsers.add_parser(name, help=(run.__doc__ or "").strip().splitlines()[0])
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
