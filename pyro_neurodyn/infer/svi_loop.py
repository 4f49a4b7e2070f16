"""The fitting loop shared by every model of the suite: SVI with a torch optimizer, minibatches, guards, progress.

:class:`GuardedSVI` takes one SVI step: ``loss.loss_and_grads`` (any ``pyro.infer.ELBO``) on model and
guide, then a step of a ``torch.optim`` optimizer over the parameters to train. It checks the loss and the
gradients *before* the optimizer touches the parameters: a NaN/inf loss raises
:class:`NonFiniteLossError` and leaves the parameters as they were (plain SVI would have written NaNs
into them). It can also clip the global gradient norm. :func:`fit_svi` runs it over minibatches of trials
with a progress bar.

Parameters: module-local, never in Pyro's global param store. The steps run under Pyro's setting
``module_local_params`` (:func:`~pyro_neurodyn.infer.local_params.module_local_params`, turned on for the
step only): a PyroModule's parameters stay in the module, so a fit neither reads nor writes the global
store, two models of one class share nothing whatever their Pyro names, and a fit leaves the store as it
found it. The optimizer is a plain ``torch.optim`` one over the modules' parameters, Pyro's ``ELBOModule``
pattern (``torch.optim.Adam(elbo(model, guide).parameters())``), not ``pyro.optim``, which finds its
parameters in the global store. Why not the setting for the whole process: it would change a user's own
Pyro code, e.g. ``pyro.infer.SVI`` with ``pyro.optim``, which needs the global store; with the setting on
only inside the library's steps, such code keeps working on the suite's models (each instance has its own
Pyro name, :func:`~pyro_neurodyn.models.module_names.unique_module_name`, for that store). Plain functions
with ``pyro.param`` statements still keep those in the global store (module-local parameters concern
PyroModules only); give them to the optimizer as ``pyro.param(name).unconstrained()``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import pyro
import torch
from pyro import poutine
from pyro.infer.util import torch_item
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from tqdm.auto import tqdm

from ..data.validation import check_count, check_positive
from .fit_run import ROLLBACK_INTERVAL, FitRun, Minibatches, deferred_keyboard_interrupt
from .local_params import module_local_params, pyro_modules
from .windows import RandomWindows

__all__ = ["GuardedSVI", "NonFiniteLossError", "fit_svi", "torch_threads"]


class NonFiniteLossError(FloatingPointError):
    """The loss or its gradient became NaN or infinite; the parameters were not updated."""


class GuardedSVI:
    """SVI steps with a ``torch.optim`` optimizer that refuse non-finite steps and optionally clip the global
    gradient norm, with module-local parameters (module docstring).

    Args:
        model, guide: the Pyro model and guide (PyroModules, their methods, or functions), called with the
            arguments of :meth:`step`.
        optimizer: a ``torch.optim.Optimizer`` over the parameters to train; only they are updated. The other
            parameters of the PyroModules behind model and guide stay exactly as they are, and their
            gradients are dropped after every step (a frozen part: leave it out of the optimizer).
        loss: a ``pyro.infer.ELBO`` (its ``loss_and_grads`` computes the loss and the gradients).
        clip_norm: if set, gradients are rescaled so their joint 2-norm is at most this value.
    """

    def __init__(self, model: Callable, guide: Callable, optimizer: Optimizer, loss: pyro.infer.ELBO, clip_norm: Optional[float] = None):
        if not isinstance(optimizer, Optimizer):
            raise ValueError(
                f"optimizer must be a torch.optim.Optimizer over the parameters to train (e.g. torch.optim.Adam(module.parameters(), "
                f"lr=1e-2)), got {type(optimizer).__name__}; pyro.optim optimizers find parameters in Pyro's global param store, "
                "which the suite's fits do not use"
            )
        self.model, self.guide, self.optimizer, self.loss = model, guide, optimizer, loss
        self.clip_norm = None if clip_norm is None else check_positive(clip_norm, "clip_norm")
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        trained = {id(p) for p in self.params}
        self.modules = pyro_modules(model, guide)
        self.frozen = [p for module in self.modules for p in module.parameters() if id(p) not in trained]
        self.num_steps_taken = 0

    def step(self, *args, **kwargs) -> float:
        """One step on ``model(*args, **kwargs)`` and ``guide(*args, **kwargs)``; return the loss (a float)."""
        self.optimizer.zero_grad(set_to_none=True)
        with module_local_params(*self.modules), poutine.trace(param_only=True) as reads:
            loss = torch_item(self.loss.loss_and_grads(self.model, self.guide, *args, **kwargs))
        for p in self.frozen:
            p.grad = None
        grads = [p.grad for p in self._in_reading_order(reads.trace) if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else torch.zeros(())
        if not (math.isfinite(loss) and bool(torch.isfinite(grad_norm))):
            self.optimizer.zero_grad(set_to_none=True)
            what = "loss" if not math.isfinite(loss) else "gradient"
            raise NonFiniteLossError(
                f"the {what} became non-finite (loss = {loss}) at step {self.num_steps_taken}; the parameters were "
                "not updated. Try a smaller learning rate, gradient clipping (clip_norm), or check the data's scale."
            )
        if self.clip_norm is not None and float(grad_norm) > self.clip_norm:
            for g in grads:
                g.mul_(self.clip_norm / float(grad_norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.num_steps_taken += 1
        return loss

    def _in_reading_order(self, trace) -> list[Tensor]:
        """The optimizer's parameters in the order model and guide first read them (their ``"param"`` sites in
        ``trace``), the others after them: the order of the global norm's float sum. It is Pyro SVI's order, so
        clipped steps are bitwise those of the ``pyro.optim`` loop this replaced."""
        first_read: dict[int, int] = {}
        for site in trace.nodes.values():
            value = site["value"]  # a constrained parameter knows its unconstrained one; a plain nn.Parameter is one
            parameter = value.unconstrained() if hasattr(value, "unconstrained") else value
            first_read.setdefault(id(parameter), len(first_read))
        return sorted(self.params, key=lambda p: first_read.get(id(p), len(first_read)))


def fit_svi(
    model: Callable,
    guide: Callable,
    loss: pyro.infer.ELBO,
    optimizer: Optimizer,
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
    scheduler: Optional[LRScheduler] = None,
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
        optimizer: a ``torch.optim.Optimizer`` over the parameters to train, e.g.
            ``torch.optim.Adam(loss(model, guide).parameters(), lr=1e-2)`` for modules model and guide
            (Pyro's ``ELBOModule``); a subset trains only that subset (see :class:`GuardedSVI`). Pass the
            same one again to continue with its state (moments, decayed learning rate).
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
        scheduler: a learning-rate scheduler of ``optimizer`` (``torch.optim.lr_scheduler``) that the caller
            steps (e.g. in ``callback``), given so that checkpoints, resumption and rollbacks carry its state.
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
    svi = GuardedSVI(model, guide, optimizer, loss, clip_norm=clip_norm)
    if scheduler is not None and getattr(scheduler, "optimizer", None) is not optimizer:
        raise ValueError("scheduler must be a learning-rate scheduler of optimizer (scheduler.optimizer is optimizer)")
    run = FitRun() if run is None else run
    with torch_threads(num_threads):
        return _run_steps(svi, scheduler, list(data), num_steps, batches, run, record_losses, progress, desc, callback, kwargs)


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


def _run_steps(svi: GuardedSVI, scheduler: Optional[LRScheduler], data: list, num_steps: int, batches: Minibatches | RandomWindows,
               run: FitRun, record_losses: bool, progress: bool, desc: str, callback, kwargs) -> list[float]:  # fmt: skip
    """The step loop of :func:`fit_svi`: minibatches, progress bar, callback, checkpoints, rollbacks, Ctrl-C."""
    step = run.begin_phase(svi.optimizer, scheduler, batches)
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
                run.save(step)
                resumed_at = run.handle_nonfinite(error, snapshot)
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
            run.after_step(step)
            if run.on_nonfinite == "rollback" and (step % ROLLBACK_INTERVAL == 0 or snapshot is None):
                snapshot = run.snapshot(step)
            if interrupted[0]:
                run.save(step)
                raise KeyboardInterrupt(f"{desc}: interrupted after step {step} of {num_steps}; the model keeps its parameters and losses")
    return losses
