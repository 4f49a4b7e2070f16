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

    run_demo(args.output, seed=args.seed, num_steps=args.steps, overwrite=args.overwrite, progress=not args.quiet)
    return 0


def _add_fit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the run file (TOML: [model], [data], [fit], [output]; see pyro_neurodyn.runs)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted fit from its checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_fit(args: argparse.Namespace) -> int:
    """Fit the model of a run file, with periodic checkpoints (--resume continues after any interruption)."""
    from .runs import fit_run, load_run_config

    config = load_run_config(args.run)
    estimator = fit_run(config, resume=args.resume, progress=not args.quiet)
    print(f"fitted {config.estimator.__name__}: {len(estimator.losses)} steps, final loss {estimator.losses[-1]:.6g}; "
          f"model in {config.output}")  # fmt: skip
    return 0


def _add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the run file of a fitted run")
    parser.add_argument("--data", default=None, help="held-out recordings (.npy/.npz; default: the run file's [data] test)")
    parser.add_argument("--samples", type=int, default=100, help="posterior predictive draws (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation (default: %(default)s)")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Held-out log evidence, state accuracy and posterior predictive figures of a fitted run."""
    from .runs import evaluate_run, load_run_config

    config = load_run_config(args.run)
    result = evaluate_run(config, args.data, num_samples=args.samples, seed=args.seed)
    print(f"held-out log evidence: {result['log_evidence_per_bin']:.4f} nats per bin over {result['trials']} trials")
    if "state_accuracy" in result:
        print(f"state accuracy: {result['state_accuracy']:.3f}")
    print(f"evaluation.json and figures in {config.output}")
    return 0


def _add_sample_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the run file of a fitted run")
    parser.add_argument("--trials", type=int, required=True, help="number of trials to draw")
    parser.add_argument("--steps", type=int, required=True, help="time steps per trial")
    parser.add_argument("--output", required=True, help="new .npz file for the samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")


def _cmd_sample(args: argparse.Namespace) -> int:
    """Draw new trials from a fitted run into an .npz file."""
    from .runs import load_run_config, sample_run

    arrays = sample_run(load_run_config(args.run), args.output, args.trials, args.steps, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {', '.join(f'{name} {value.shape}' for name, value in arrays.items())} to {args.output}")
    return 0


def _add_sweep_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the sweep file (TOML: [model], [grid], [sweep], [data], [fit]; see pyro_neurodyn.sweep.config)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all of them)")
    parser.add_argument("--quiet", action="store_true", help="no progress table from Ray Tune")


def _cmd_sweep(args: argparse.Namespace) -> int:
    """Fit every grid point and seed of a sweep file on Ray Tune and compare them on held-out trials (rerun to resume)."""
    from .sweep import SweepInterrupted
    from .sweep.config import load_sweep_config, run_sweep_config
    from .sweep.results import describe

    config = load_sweep_config(args.config)
    try:
        result = run_sweep_config(config, num_cpus=args.num_cpus, verbose=0 if args.quiet else 1)
    except SweepInterrupted as interrupted:
        print(describe(interrupted.result))
        print(f"neurodyn sweep: {interrupted}; rerun `neurodyn sweep {args.config}` to resume", file=sys.stderr)
        return 1
    print(describe(result))
    print(f"results.csv and comparison.csv in {config.storage}")
    return 0 if result.complete else 1


COMMANDS: list[Command] = [
    ("demo", _add_demo_args, _cmd_demo),
    ("evaluate", _add_evaluate_args, _cmd_evaluate),
    ("fit", _add_fit_args, _cmd_fit),
    ("info", _add_info_args, _cmd_info),
    ("sample", _add_sample_args, _cmd_sample),
    ("sweep", _add_sweep_args, _cmd_sweep),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurodyn", description="Switching and low-rank stochastic RNNs for neural data.")
    parser.add_argument("--version", action="version", version=f"pyro_neurodyn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add_arguments, run in COMMANDS:
        sub = subparsers.add_parser(name, help=(run.__doc__ or "").strip().splitlines()[0])
        add_arguments(sub)
        sub.set_defaults(handler=run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as error:  # bad input: one clear line, no traceback
        print(f"neurodyn {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
