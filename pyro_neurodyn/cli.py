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


def _add_demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="neurodyn_output", help="new folder for figures, metrics and the model (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the fit (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the library default)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_demo(args: argparse.Namespace) -> int:
    """Fit an SRNN to switching Lorenz data; print held-out accuracy, R^2, forecast error; save figures."""
    from .demo import run_demo

    try:
        run_demo(args.output, seed=args.seed, num_steps=args.steps, overwrite=args.overwrite, progress=not args.quiet)
    except FileExistsError as error:
        print(f"neurodyn demo: {error}", file=sys.stderr)
        return 1
    return 0


COMMANDS: list[Command] = [
    ("demo", _add_demo_args, _cmd_demo),
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
