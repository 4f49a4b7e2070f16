"""The fitting loop shared by every model of the suite: Pyro SVI, minibatches, guards, progress.

:class:`GuardedSVI` is :class:`pyro.infer.SVI` whose ``step`` checks the loss and the gradients
*before* the optimizer touches the parameters: a NaN/inf loss raises :class:`NonFiniteLossError` and
leaves the parameters as they were (plain SVI would have written NaNs into them). It can also clip the
global gradient norm. :func:`fit_svi` runs it over minibatches of trials with a progress bar.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional, Sequence

import pyro
import torch
from pyro import poutine
from pyro.infer import SVI
from pyro.infer.util import torch_item, zero_grads
from torch import Tensor
from tqdm.auto import tqdm

from ..data.validation import check_count, check_positive
from .fit_run import ROLLBACK_INTERVAL, FitRun, Minibatches, deferred_keyboard_interrupt
from .windows import RandomWindows

__all__ = ["GuardedSVI", "NonFiniteLossError", "fit_svi", "torch_threads"]


class NonFiniteLossError(FloatingPointError):
    """The loss or its gradient became NaN or infinite; the parameters were not updated."""


class GuardedSVI(SVI):
    """``pyro.infer.SVI`` that refuses non-finite steps and optionally clips the global gradient norm.

    Args:
        model, guide, optim, loss: as for :class:`pyro.infer.SVI`.
        clip_norm: if set, gradients are rescaled so their joint 2-norm is at most this value.
        trainable: if given, only these parameters are updated (and clipped); the others the model and
            guide use stay exactly as they are. (Freezing by ``requires_grad`` is not enough in Pyro: the
            param store sets ``requires_grad=True`` again when it first sees a parameter.)
    """

    def __init__(self, model, guide, optim, loss, clip_norm: Optional[float] = None, trainable: Optional[Iterable[Tensor]] = None, **kwargs):
        super().__init__(model, guide, optim, loss, **kwargs)
        self.clip_norm = None if clip_norm is None else check_positive(clip_norm, "clip_norm")
        self.trainable = None if trainable is None else {id(p) for p in trainable}
        self.num_steps_taken = 0
        self.last_params: list[Tensor] = []  # the unconstrained parameters the last step saw

    def step(self, *args, **kwargs) -> float:
        with poutine.trace(param_only=True) as param_capture:
            loss = self.loss_and_grads(self.model, self.guide, *args, **kwargs)
        # trace order, not a set: a set of tensors iterates in memory-address order, which made the
        # float sums below (and so clipping) differ between otherwise identical seeded runs
        params = list(dict.fromkeys(site["value"].unconstrained() for site in param_capture.trace.nodes.values()))
        if self.trainable is not None:
            for p in params:
                if id(p) not in self.trainable:
                    p.grad = None  # a frozen parameter: no gradient, so no optimizer (or momentum) step
            params = [p for p in params if id(p) in self.trainable]
        self.last_params = params
        loss = torch_item(loss)
        grads = [p.grad for p in params if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else torch.zeros(())
        if not (math.isfinite(loss) and bool(torch.isfinite(grad_norm))):
            zero_grads(params)
            what = "loss" if not math.isfinite(loss) else "gradient"
            raise NonFiniteLossError(
                f"the {what} became non-finite (loss = {loss}) at step {self.num_steps_taken}; the parameters were "
                "not updated. Try a smaller learning rate, gradient clipping (clip_norm), or check the data's scale."
            )
        if self.clip_norm is not None and float(grad_norm) > self.clip_norm:
            for g in grads:
                g.mul_(self.clip_norm / float(grad_norm))
        self.optim(params)
        zero_grads(params)
        self.num_steps_taken += 1
        return loss


def fit_svi(
    model: Callable,
    guide: Callable,
    loss: pyro.infer.ELBO,
    optim: pyro.optim.PyroOptim,
    data: Sequence[Optional[Tensor]],
    *,
    num_steps: int,
    batch_size: Optional[int] = None,
    clip_norm: Optional[float] = None,
    seed: Optional[int] = None,
    progress: bool = True,
    desc: str = "fit",
    callback: Optional[Callable[[int, float], None]] = None,
    num_threads: Optional[int] = None,
    run: Optional[FitRun] = None,
    record_losses: bool = True,
    trainable: Optional[Iterable[Tensor]] = None,
    lengths: Optional[Tensor] = None,
    batches: Optional[RandomWindows] = None,
    **kwargs,
) -> list[float]:
    """Run ``num_steps`` SVI steps of ``model``/``guide`` on trials of ``data``; return their losses.

    Args:
        data: positional arguments of model and guide whose dim 0 is trials (``None`` entries pass
            through). With ``batch_size`` < trials, each step uses a random minibatch of trials (a new
            permutation every epoch), and model and guide are scaled by trials / batch_size so the loss
            is an unbiased estimate of the full-data loss.
        loss: any ``pyro.infer.ELBO`` (Trace_ELBO, the suite's VSMC_ELBO, ...).
        optim: a ``pyro.optim`` optimizer; pass the same one again to continue with its state.
        clip_norm: clip the global gradient norm (see :class:`GuardedSVI`).
        seed: if given, ``pyro.set_rng_seed(seed)`` first.
        progress: show a progress bar with the loss per trial and steps/s.
        callback: called as ``callback(step, loss)`` after every step.
        num_threads: torch threads during the fit (restored afterwards); None keeps the current setting.
            For small models 1 thread is within ~30% of 2 on an idle 2-core machine and does not
            collapse when other processes compete for the cores (measured: 2 threads then ran 100x slower).
        run: the :class:`~pyro_neurodyn.infer.FitRun` of the estimator's fit this call is one phase of: its
            loss history (appended to after every step), checkpoints, resumption and ``on_nonfinite``.
            Default: a run of its own that raises on a non-finite loss.
        record_losses: append this call's losses to the run's history (False for a phase that optimizes
            another objective, e.g. the SRNN's causal filter encoder).
        trainable: only these parameters are updated (default: every parameter of model and guide).
        lengths: ``(trials,)`` lengths of ragged trials padded in ``data``: minibatches are then buckets of
            similar length, each cut to its longest trial (:class:`~pyro_neurodyn.infer.fit_run.Minibatches`).
            Only the batching reads it: pass the lengths in ``data`` too if the model needs them.
        batches: what each step reads instead of minibatches of trials, e.g.
            :class:`~pyro_neurodyn.infer.windows.RandomWindows` (random windows of long trials); model and
            guide are then scaled by its ``scale``. ``batch_size`` must then be None.
        kwargs: keyword arguments passed unchanged to model and guide.

    Returns:
        The loss (negative ELBO, full-data scale) of every step this call ran (on a resumed phase, those
        after the checkpoint's step; a rollback drops the losses of the steps it undid).

    Raises:
        NonFiniteLossError: on a NaN/inf loss or gradient with ``on_nonfinite="raise"`` (parameters left at
            their last finite values, the completed steps' losses in the run's history).
        KeyboardInterrupt: after the step in flight when Ctrl-C was pressed (a checkpoint written first).
    """
    num_steps = check_count(num_steps, "num_steps")
    tensors = [x for x in data if x is not None]
    if not tensors:
        raise ValueError("data must contain at least one tensor whose dim 0 is trials")
    num_trials = tensors[0].shape[0]
    if any(x.shape[0] != num_trials for x in tensors):
        raise ValueError(f"all data tensors must have the same number of trials, got {[x.shape[0] for x in tensors]}")
    if batches is not None and batch_size is not None:
        raise ValueError("batch_size: give either batch_size (minibatches of trials) or batches, not both")
    if seed is not None:
        pyro.set_rng_seed(seed)
    if batches is None:  # after seeding: its first permutation comes from the seeded RNG
        batch_size = num_trials if batch_size is None else min(check_count(batch_size, "batch_size"), num_trials)
        batches = Minibatches(num_trials, batch_size, lengths=lengths)
    if batches.scale != 1.0:
        model, guide = poutine.scale(model, scale=batches.scale), poutine.scale(guide, scale=batches.scale)
    svi = GuardedSVI(model, guide, optim, loss, clip_norm=clip_norm, trainable=None if trainable is None else list(trainable))
    run = FitRun() if run is None else run
    with torch_threads(num_threads):
        return _run_steps(svi, list(data), num_steps, batches, run, record_losses, progress, desc, callback, kwargs)


@contextmanager
def torch_threads(num_threads: Optional[int]) -> Iterator[None]:
    """Set torch's intra-op thread count inside the block (None: leave it alone)."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(check_count(num_threads, "num_threads"))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_steps(svi: GuardedSVI, data: list, num_steps: int, batches: Minibatches | RandomWindows, run: FitRun, record_losses: bool,
               progress: bool, desc: str, callback, kwargs) -> list[float]:  # fmt: skip
    """The step loop of :func:`fit_svi`: minibatches, progress bar, callback, checkpoints, rollbacks, Ctrl-C."""
    step = run.begin_phase(svi.optim, batches)
    if step is None:  # complete in the checkpoint this fit resumes
        return []
    losses: list[float] = []
    snapshot = None
    with tqdm(total=num_steps, initial=step, desc=desc, disable=not progress, mininterval=0.5, dynamic_ncols=True) as bar, \
            deferred_keyboard_interrupt() as interrupted:  # fmt: skip
        while step < num_steps:
            args = batches.next(data)
            try:
                loss = svi.step(*args, **kwargs)
            except NonFiniteLossError as error:
                run.save(svi.optim, batches, step)
                resumed_at = run.handle_nonfinite(error, snapshot, svi.last_params, svi.optim)
                if resumed_at is None:
                    break
                del losses[len(losses) - (step - resumed_at) :]  # the steps the rollback undid
                step = bar.n = resumed_at
                continue
            losses.append(loss)
            if record_losses:
                run.record(loss)
            step += 1
            bar.update()
            if progress and (step % 10 == 1 or step == num_steps):
                bar.set_postfix(loss_per_trial=f"{loss / batches.num_trials:.4g}", refresh=False)
            if callback is not None:
                callback(step - 1, loss)
            run.after_step(svi.optim, batches, step)
            if run.on_nonfinite == "rollback" and (step % ROLLBACK_INTERVAL == 0 or snapshot is None):
                snapshot = run.snapshot(svi.last_params, svi.optim, step)
            if interrupted[0]:
                run.save(svi.optim, batches, step)
                raise KeyboardInterrupt(f"{desc}: interrupted after step {step} of {num_steps}; the model keeps its parameters and losses")
    return losses
