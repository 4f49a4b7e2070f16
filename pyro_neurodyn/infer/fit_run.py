"""One call of an estimator's ``fit``: its loss history, checkpoints, resumption, and non-finite losses.

A fit is a sequence of *phases*, one :func:`~pyro_neurodyn.infer.fit_svi` call each (the SRNN has a
label phase, a free phase and a filter phase; the low-rank RNNs have one). A :class:`FitRun` travels
through them and provides three things.

**Checkpoints.** With ``checkpoint=PATH`` it writes, every ``checkpoint_every`` steps, when the fit ends
and when it stops early (interrupt, non-finite loss), one file holding

* everything the estimator's ``save`` holds (config, parameters, loss history): the file loads as a
  model with ``Estimator.load(PATH)`` at any moment, and
* ``"fit_progress"``: the phase and step reached, the state of the phase's optimizer and learning-rate
  scheduler (moments, learning rates; keyed by parameter names, :mod:`~pyro_neurodyn.infer.optimizer_state`),
  the RNG states (torch, numpy, Python), the minibatch permutation, where this fit's losses begin in the
  history, and a fingerprint of the data and the fit's arguments.

Writes are atomic and ``fsync``'d (:func:`~pyro_neurodyn.infer.save_checkpoint`): a fit killed at any
moment leaves the previous checkpoint or the new one, never a partial file.

**Resumption.** ``resume=True`` checks that the file was written by a fit of the same data and
arguments, then, at the start of the phase the file was written in (earlier phases are skipped),
restores parameters, history, optimizer, RNG and minibatch order, and goes on (a file of checkpoint format
1 or 2 holds ``pyro.optim``'s per-parameter optimizer state, converted on the way). A fit killed with
SIGKILL and resumed ends with the same parameters as the uninterrupted fit (bitwise, on the same
machine and thread count). An existing file is never replaced by a new fit: ``resume=False`` with an
existing ``PATH`` is a :class:`FileExistsError` before any work is done.

**Stopping well.** The parameters never take a non-finite step (:class:`~pyro_neurodyn.infer.GuardedSVI`)
and every completed step's loss is in the history at once, so after a :class:`NonFiniteLossError` or
Ctrl-C the model holds its last good parameters and can be saved and used. Ctrl-C is deferred to the
end of the step in flight (a second Ctrl-C interrupts at once). ``on_nonfinite`` chooses what a
non-finite loss does: ``"raise"`` (default), ``"stop"`` (warn and end the fit there) or ``"rollback"``
(return to the state of the last snapshot, taken every :data:`ROLLBACK_INTERVAL` steps, halve the
learning rate and go on; after :data:`MAX_ROLLBACKS` rollbacks, stop).
"""

from __future__ import annotations

import copy
import os
import signal
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Union

import numpy as np
import pyro
import pyro.util
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..data.validation import check_count
from .checkpoint import CheckpointError, fingerprint, load_checkpoint, save_checkpoint
from .optimizer_state import from_pyro_optim_state, load_named_state, named_state, parameter_names, scaled_learning_rates

__all__ = ["FitRun", "MAX_ROLLBACKS", "NONFINITE_ACTIONS", "ROLLBACK_INTERVAL", "Resumable"]

NONFINITE_ACTIONS = ("raise", "stop", "rollback")
ROLLBACK_INTERVAL = 10  # steps between the in-memory snapshots that on_nonfinite="rollback" returns to
MAX_ROLLBACKS = 3  # rollbacks in one fit before on_nonfinite="rollback" stops it
DEFAULT_CHECKPOINT_EVERY = 50


class Resumable(Protocol):
    """What an estimator provides so that its fits can be checkpointed and resumed."""

    kind: str
    losses: list[float]

    def _checkpoint_contents(self) -> tuple[dict, dict, dict]:
        """``(config, state_dict, extra entries)`` exactly as its ``save`` writes them."""

    def _restore_checkpoint(self, payload: dict) -> None:
        """Take parameters and loss history (and whatever ``save`` stores) from a loaded payload."""

    def _modules_by_name(self) -> dict[str, nn.Module]:
        """Its modules by the stable names their parameters carry in saved optimizer states (``<name>.<path>``)."""


@dataclass
class Minibatches:
    """Which trials each step uses: a random permutation consumed ``batch_size`` trials at a time (a new
    one every epoch), or all trials every step when ``batch_size == num_trials``.

    With ``lengths`` ``(trials,)`` (ragged trials padded to ``T_max``) the batches are buckets of similar length:
    each epoch drops ``trials % batch_size`` trials at random (as the plain order does), sorts the rest by
    length (ties in random order), cuts them into consecutive batches and shuffles the batches; each step's
    time-indexed tensors (dim 1 of size ``T_max``) are cut to its longest trial. A batch of short trials then
    costs what its own steps cost, not the longest trial's.
    """

    num_trials: int
    batch_size: int
    order: Optional[Tensor] = None
    position: int = 0
    lengths: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if self.order is None:
            self.order = self._new_order()

    def _new_order(self) -> Tensor:
        permutation = torch.randperm(self.num_trials)
        if self.lengths is None or self.batch_size >= self.num_trials:
            return permutation
        kept = permutation[: self.num_trials - self.num_trials % self.batch_size]
        by_length = kept[torch.argsort(self.lengths.cpu()[kept], stable=True)]
        buckets = by_length.reshape(-1, self.batch_size)
        return buckets[torch.randperm(len(buckets))].reshape(-1)

    @property
    def scale(self) -> float:
        """What each step's loss is scaled by to estimate the whole data's: trials / batch_size."""
        return self.num_trials / self.batch_size

    def next(self, data: list) -> list:
        """The arguments of the next step: each tensor of ``data`` ``(trials, ...)`` indexed by the next batch of trials,
        ``(batch_size, ...)`` (None entries stay None; with ``lengths``, time cut to the batch's longest trial)."""
        if self.batch_size >= self.num_trials:
            return list(data)
        if self.position + self.batch_size > len(self.order):
            self.order, self.position = self._new_order(), 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        batch = [None if x is None else x[index] for x in data]
        if self.lengths is None:
            return batch
        num_steps = max(x.shape[1] for x in data if x is not None and x.dim() > 1)
        longest = int(self.lengths.cpu()[index].max())
        return [x[:, :longest] if x is not None and x.dim() > 1 and x.shape[1] == num_steps else x for x in batch]


@dataclass
class _Snapshot:
    """An in-memory copy of a phase's state (for ``on_nonfinite="rollback"``): the optimizer's parameters
    and ``{"optimizer": its state_dict(), "scheduler": the scheduler's or None}``."""

    step: int
    params: list[Tensor]
    optimizer_state: dict
    history_length: int


class FitRun:
    """The bookkeeping of one ``fit`` call (see the module docstring).

    Args:
        owner: the estimator (:class:`Resumable`), whose ``.losses`` each completed step's loss is appended
            to at once; None for a bare :func:`fit_svi` (no checkpoints; the losses go to ``.history``).
        on_nonfinite: ``"raise"``, ``"stop"`` or ``"rollback"``.
        checkpoint: file to write checkpoints to (None: none). checkpoint_every: steps between them.
        resume: continue from ``checkpoint``, which must exist and come from a fit of the same data and
            arguments.
        arguments: what the fit depends on (data tensors and options), fingerprinted so that ``resume``
            can refuse a file written by another fit; name -> value. A name the file lacks matches None (an
            option added since, at its default).

    All arguments are checked here, before any work: a wrong ``on_nonfinite``, an existing checkpoint
    without ``resume``, a missing one with it, or a file from another fit raise at once.
    """

    def __init__(
        self,
        owner: Optional[Resumable] = None,
        *,
        on_nonfinite: str = "raise",
        checkpoint: Union[str, os.PathLike, None] = None,
        checkpoint_every: Optional[int] = None,
        resume: bool = False,
        arguments: Optional[dict[str, Any]] = None,
    ):
        if on_nonfinite not in NONFINITE_ACTIONS:
            raise ValueError(f"on_nonfinite must be one of {list(NONFINITE_ACTIONS)}, got {on_nonfinite!r}")
        if not isinstance(resume, bool):
            raise ValueError(f"resume must be True or False, got {resume!r}")
        self.owner = owner
        self.history = owner.losses if owner is not None else []
        self.on_nonfinite = on_nonfinite
        self.path = None if checkpoint is None else Path(checkpoint)
        self.every = DEFAULT_CHECKPOINT_EVERY if checkpoint_every is None else check_count(checkpoint_every, "checkpoint_every")
        self.fingerprints = {name: fingerprint(value) for name, value in (arguments or {}).items()}
        self.fit_start = len(self.history)  # where this fit's losses begin in the history
        self.stopped = False  # set when the fit ended early (on_nonfinite="stop" or rollbacks exhausted)
        self.rollbacks = 0
        self._phase = -1
        self._estimator_restored = False
        self._saved: Optional[dict] = None  # the payload being resumed from, until it is consumed
        self._optimizer: Optional[Optimizer] = None  # the current phase's optimizer, scheduler and minibatches
        self._scheduler: Optional[LRScheduler] = None
        self._batches: Optional[Minibatches] = None
        self._check_checkpoint(resume)

    # ----- checks before any work ----------------------------------------------------------------
    def _check_checkpoint(self, resume: bool) -> None:
        if self.path is None:
            if resume:
                raise ValueError("resume=True needs checkpoint=PATH: the file to resume from")
            return
        if self.owner is None:
            raise ValueError("checkpoints need an estimator (FitRun(owner=...)) whose state they hold")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"checkpoint: the folder {self.path.parent} does not exist")
        if not resume:
            if os.path.lexists(self.path):
                raise FileExistsError(
                    f"checkpoint: {self.path} already exists; pass resume=True to continue the fit it holds, or "
                    "choose another path (an existing file is never replaced by a new fit)"
                )
            return
        if not self.path.is_file():
            raise FileNotFoundError(f"resume=True: there is no checkpoint at {self.path} to resume from")
        payload = load_checkpoint(self.path, self.owner.kind)
        progress = payload.get("fit_progress")
        if not isinstance(progress, dict):
            raise CheckpointError(f"{self.path} holds a saved model, not a fit in progress: it cannot be resumed (load it with {self.owner.kind}.load)")
        # an argument that one of the two fits does not name counts as None there: an option added since (a mask,
        # say) at its default None keeps older files resumable, and one that is given is a difference
        saved, absent = progress["fingerprints"], fingerprint(None)
        differing = sorted(name for name in set(saved) | set(self.fingerprints) if saved.get(name, absent) != self.fingerprints.get(name, absent))
        if differing:
            raise ValueError(
                f"resume=True: {self.path} was written by a fit with different {', '.join(differing)}; resume with the "
                "same data and arguments, or start a new fit with another checkpoint path"
            )
        self._saved = payload

    # ----- phases ------------------------------------------------------------------------------------
    def begin_phase(self, optimizer: Optimizer, scheduler: Optional[LRScheduler], batches: Minibatches) -> Optional[int]:
        """Called at the start of each phase with the phase's optimizer, its scheduler (or None) and minibatch
        order, which the run's checkpoints, snapshots and rollbacks then use: the step to start from (0 for a
        fresh phase), or None if the phase was already complete in the checkpoint being resumed. When
        resuming, the first call restores the estimator's parameters and history, and the call for the phase
        the file was written in restores optimizer, scheduler, RNG and minibatch order."""
        self._phase += 1
        self._optimizer, self._scheduler, self._batches = optimizer, scheduler, batches
        if self._saved is None:
            return 0
        progress = self._saved["fit_progress"]
        self._restore_estimator()
        if self._phase < progress["phase"]:
            return None
        names = parameter_names(self.owner._modules_by_name())
        saved = progress["optimizer_state"]
        if self._saved.get("format_version", 1) < 3:  # pyro.optim's per-parameter layout
            saved = from_pyro_optim_state(saved, [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups])
        load_named_state(saved, optimizer, scheduler, names)
        _set_rng_state(progress["rng"])
        batches.order, batches.position = progress["batch_order"].clone(), int(progress["batch_position"])
        self._saved = None
        return int(progress["step"])

    def _restore_estimator(self) -> None:
        if self._estimator_restored:
            return
        self.owner._restore_checkpoint(self._saved)
        self.fit_start = int(self._saved["fit_progress"]["fit_start"])
        self._estimator_restored = True

    def finish(self) -> None:
        """Called when the fit ends normally: restore a completed fit being resumed, write the final checkpoint."""
        if self._saved is not None:  # every phase was complete in the file: take its state and RNG
            self._restore_estimator()
            _set_rng_state(self._saved["fit_progress"]["rng"])
            self._saved = None
            return
        self._phase += 1  # past the last phase: a resumed complete fit skips them all
        self._batches = None
        self.save(0)

    # ----- steps -------------------------------------------------------------------------------------
    def record(self, loss: float) -> None:
        """Append a completed step's loss (a float) to the history."""
        self.history.append(loss)

    def after_step(self, step: int) -> None:
        """``step`` steps of the current phase are complete: write a checkpoint every ``checkpoint_every``."""
        if self.path is not None and step % self.every == 0:
            self.save(step)

    def save(self, step: int) -> None:
        """Write the estimator and the fit's progress (phase, ``step`` steps into it) to the checkpoint file."""
        if self.path is None:
            return
        config, state_dict, extra = self.owner._checkpoint_contents()
        optimizer_state = None
        if self._optimizer is not None:
            optimizer_state = named_state(self._optimizer, self._scheduler, parameter_names(self.owner._modules_by_name()))
        batches = self._batches
        progress = {
            "phase": self._phase, "step": step, "optimizer_state": optimizer_state, "rng": _rng_state(),
            "batch_order": torch.zeros(0, dtype=torch.long) if batches is None else batches.order.clone(),
            "batch_position": 0 if batches is None else batches.position,
            "fit_start": self.fit_start, "fingerprints": dict(self.fingerprints),
        }  # fmt: skip
        save_checkpoint(self.path, self.owner.kind, config, state_dict, overwrite=True, fit_progress=progress, **extra)

    # ----- non-finite losses -------------------------------------------------------------------------
    def _parameters(self) -> list[Tensor]:
        return [p for group in self._optimizer.param_groups for p in group["params"]]

    def snapshot(self, step: int) -> Optional[_Snapshot]:
        """An in-memory copy of the phase optimizer's parameters and state, kept only for ``on_nonfinite="rollback"``
        (the minibatch stream is not rewound: the replayed steps see new batches)."""
        if self.on_nonfinite != "rollback":
            return None
        state = {"optimizer": self._optimizer.state_dict(), "scheduler": None if self._scheduler is None else self._scheduler.state_dict()}
        return _Snapshot(step, [p.detach().clone() for p in self._parameters()], copy.deepcopy(state), len(self.history))

    def handle_nonfinite(self, error: Exception, snapshot: Optional[_Snapshot]) -> Optional[int]:
        """After a non-finite step: re-raise, stop (None), or roll back to ``snapshot`` and return its step."""
        if self.on_nonfinite == "raise":
            raise error
        if self.on_nonfinite == "rollback" and snapshot is not None and self.rollbacks < MAX_ROLLBACKS:
            self.rollbacks += 1
            with torch.no_grad():
                for param, saved in zip(self._parameters(), snapshot.params):
                    param.copy_(saved)
            state = scaled_learning_rates(snapshot.optimizer_state, 0.5)  # a copy: the snapshot serves the next rollback too
            self._optimizer.load_state_dict(state["optimizer"])
            if self._scheduler is not None:
                self._scheduler.load_state_dict(state["scheduler"])
            del self.history[snapshot.history_length :]
            warnings.warn(f"{error} Rolled back to step {snapshot.step} with half the learning rate "
                          f"(rollback {self.rollbacks} of at most {MAX_ROLLBACKS}).", RuntimeWarning, stacklevel=4)  # fmt: skip
            return snapshot.step
        reason = "" if self.on_nonfinite == "stop" else f" after {MAX_ROLLBACKS} rollbacks"
        warnings.warn(f"{error} The fit stopped there{reason}; the model keeps its last good parameters.", RuntimeWarning, stacklevel=4)
        self.stopped = True
        return None


@contextmanager
def deferred_keyboard_interrupt() -> Iterator[list[bool]]:
    """Inside the block, Ctrl-C (SIGINT) only sets ``flag[0]``; the loop raises KeyboardInterrupt after the
    step in flight. A second Ctrl-C raises at once. Outside the main thread it changes nothing."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield flag
        return

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# ----- helpers -----------------------------------------------------------------------------------------
def _rng_state() -> dict:
    """``pyro.util.get_rng_state()`` (torch, Python, numpy) with numpy's key array as a tensor: a weights-only
    checkpoint holds no ndarray."""
    state = pyro.util.get_rng_state()
    name, keys, *rest = state["numpy"]
    return {**state, "numpy": [name, torch.from_numpy(keys.astype(np.int64)), *rest]}


def _set_rng_state(state: dict) -> None:
    """Inverse of :func:`_rng_state`, through ``pyro.util.set_rng_state``."""
    name, keys, *rest = state["numpy"]
    version, internal, gauss = state["random"]  # a weights-only load may return the inner tuple as a list
    pyro.util.set_rng_state({"torch": state["torch"], "random": (version, tuple(internal), gauss),
                             "numpy": (name, keys.numpy().astype(np.uint32), *rest)})  # fmt: skip
