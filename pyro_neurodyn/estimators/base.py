"""What every estimator (``SRNN``, ``LowRankRNN``, ``SwitchingLowRankRNN``) shares: the user-facing contract.

    est = Estimator(...)                     # a validated ``config`` dict (what save writes, load rebuilds from)
    est.fit(y, ...) -> est                   # losses of every step in est.losses (a later fit extends them)
    est.validate(y, u=None) -> (y, u)        # the checks and conversions every public method applies
    est.log_evidence(y, ...) -> (trials,)    # estimates of log p(y)
    est.posterior_predictive(y, ...)         # pyro_neurodyn.predictive.PosteriorPredictive
    est.save(path); Estimator.load(path)     # weights only, atomic; refuses to overwrite unless asked
    est.to(device, dtype), est.device, est.dtype

The estimator builds its modules, and every method that runs its Pyro programs (decorated with
:func:`module_local`) runs them, with Pyro's module-local parameters: its modules' parameters never enter
Pyro's global param store (:mod:`pyro_neurodyn.infer.local_params`).

A subclass sets ``kind`` (the checkpoint's kind) and implements ``validate``, ``check_fitted``,
``log_evidence`` and the checkpoint hooks ``_checkpoint_contents`` / ``_restore_checkpoint`` /
``_modules_by_name`` (which :class:`~pyro_neurodyn.infer.FitRun` also uses for checkpoints during a fit).
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Optional, TypeVar, Union

import torch
from torch import Tensor, nn

from ..data.recording import Recording, session_blocks, steps_within
from ..infer import load_checkpoint, save_checkpoint
from ..infer.local_params import module_local_params
from .placement import PlacedEstimator, saved_dtype

__all__ = ["Estimator", "module_local", "modules_local_to"]

PathLike = Union[str, os.PathLike]
EstimatorT = TypeVar("EstimatorT", bound="Estimator")
MethodT = TypeVar("MethodT", bound=Callable)


def module_local(method: MethodT) -> MethodT:
    """Decorator of an estimator method: run it with Pyro's module-local parameters over the estimator's modules
    (``_placed_modules()``; :func:`~pyro_neurodyn.infer.local_params.module_local_params`), so that it neither
    reads nor writes Pyro's global param store."""

    @functools.wraps(method)
    def local(self, *args, **kwargs):
        with module_local_params(*self._placed_modules()):
            return method(self, *args, **kwargs)

    return local  # type: ignore[return-value]


def modules_local_to(fitted: Any) -> AbstractContextManager:
    """What :func:`module_local` does for a method, for a function that takes an estimator (``posterior_predictive``,
    ``compare_models``): a block with Pyro's module-local parameters over an :class:`Estimator`'s modules; for any
    other object (a Pyro model of the user's, an adapter), a block that changes nothing."""
    return module_local_params(*fitted._placed_modules()) if isinstance(fitted, Estimator) else nullcontext()


class Estimator(PlacedEstimator):
    """Base of the estimators (see the module docstring)."""

    kind: str = ""
    config: Any  # a dataclass of estimators/configs.py
    losses: list

    # ----- what a subclass implements -----------------------------------------------------------------
    def validate(self, y: Any, u: Any = None) -> tuple[Tensor, Optional[Tensor]]:
        """Check recordings ``y (trials, T, D)`` and inputs ``u (trials, T, M)`` against the model and convert
        them to its device and dtype; a ValueError naming what is wrong otherwise."""
        raise NotImplementedError

    def check_fitted(self, action: str) -> None:
        """RuntimeError saying that ``action`` needs a fitted (or loaded) model, unless it is one."""
        raise NotImplementedError

    def log_evidence(self, y: Any, u: Any = None, *, num_particles: Optional[int] = None, seed: Optional[int] = None) -> Tensor:
        """Per-trial estimates of ``log p(y | u)``, shape ``(trials,)``."""
        raise NotImplementedError

    def _checkpoint_contents(self) -> tuple[dict, dict, dict]:
        """``(config, state_dict, extra)`` of a checkpoint (extra: losses and whatever else restores the estimator)."""
        raise NotImplementedError

    def _restore_checkpoint(self, payload: dict) -> None:
        """Set parameters, losses and the rest from a loaded checkpoint ``payload``."""
        raise NotImplementedError

    def _modules_by_name(self) -> dict[str, nn.Module]:
        """Its modules by the stable names their parameters carry in saved optimizer states (``<name>.<path>``,
        :mod:`~pyro_neurodyn.infer.optimizer_state`)."""
        raise NotImplementedError

    # ----- shared --------------------------------------------------------------------------------------
    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        """Write config, parameters and loss history (and what a subclass adds, e.g. optimizer moments) to
        ``path`` atomically; refuses to overwrite an existing file unless ``overwrite=True``, and refuses
        an unfitted model."""
        self.check_fitted("save")
        config, state_dict, extra = self._checkpoint_contents()
        save_checkpoint(path, self.kind, config, state_dict, overwrite=overwrite, **extra)

    @classmethod
    def load(cls: type[EstimatorT], path: PathLike) -> EstimatorT:
        """Rebuild an estimator written by :meth:`save` (or a checkpoint of a fit in progress), on the CPU in
        the saved dtype; tensors only are read (``torch.load(..., weights_only=True)``)."""
        payload = load_checkpoint(path, cls.kind)
        estimator = cls(**payload["config"]).to(dtype=saved_dtype(payload["state_dict"]))
        estimator._restore_checkpoint(payload)
        return estimator

    def recording_arrays(self, y: Any, u: Any = None, **validate_options) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """``(y, u, mask, lengths)`` for the model: from a :class:`~pyro_neurodyn.data.Recording` (which carries its
        own inputs: ``u`` must then be None) ``y (B, T_max, D)``, ``u``, ``mask (B, T_max, D)``, ``lengths (B,)``;
        from arrays, :meth:`validate`'s ``(y, u)`` and None, None. Converted to the model's device and dtype.
        ``validate_options`` go to :meth:`validate` (the SRNN's forecast passes ``min_steps=1``)."""
        if not isinstance(y, Recording):
            return (*self.validate(y, u, **validate_options), None, None)
        if u is not None:
            raise ValueError("u: a Recording carries its own inputs (Recording.u); pass u=None")
        recording = y.to(device=self.device, dtype=self.dtype)
        y, u = self.validate(recording.y, recording.u, **validate_options)
        mask = None if bool(recording.mask.all()) else recording.mask  # complete data: the arrays' exact path
        lengths = None if bool((recording.lengths == y.shape[1]).all()) else recording.lengths
        return y, u, mask, lengths

    @staticmethod
    def recording_blocks(data: Any, mask: Optional[Tensor]) -> Optional[list[tuple[Tensor, Tensor]]]:
        """``[(trials, channels), ...]`` of each session when ``data`` is a Recording of sessions that recorded disjoint
        channels (``Recording.from_sessions`` without matching; :func:`~pyro_neurodyn.data.recording.session_blocks`),
        None otherwise. ``mask (trials, T, D)``: the data's mask as :meth:`recording_arrays` gives it (its device)."""
        if not isinstance(data, Recording) or mask is None:
            return None
        return session_blocks(data.session.to(mask.device), mask)

    def complete_recording(self, recording: Recording, u: Any = None) -> tuple[Tensor, Optional[Tensor]]:
        """``(y, u)`` of a Recording for a method that does not take masks yet: accepted when it is complete and of
        equal-length trials, a ValueError naming the model otherwise."""
        y, u, mask, lengths = self.recording_arrays(recording, u)
        if mask is not None or lengths is not None:
            raise ValueError(
                f"this method of {type(self).__name__} does not take missing entries or ragged trials yet: give a complete "
                "Recording of equal-length trials, or arrays"
            )
        return y, u

    @module_local
    def posterior_predictive(self, y: Any, num_samples: int = 100, u: Any = None, **options: Any):
        """Posterior draws given ``y (trials, T, D)`` (inputs ``u (trials, T, M)``) and replicated recordings:
        ``latents (S, trials, T, P)``, ``y_rep (S, trials, T, D)``, ... (S = ``num_samples``); see
        :func:`pyro_neurodyn.predictive.posterior_predictive` (``options``: ``num_particles``, ``seed``)."""
        from ..predictive import posterior_predictive  # the predictive layer sits above the estimators

        return posterior_predictive(self, y, num_samples, u, **options)


def mark_padding(values: Tensor, lengths: Optional[Tensor], fill: float, sample_dims: int = 0) -> Tensor:
    """``values (*S, B, T, ...)`` (``sample_dims`` leading sample dims) with the steps ``t >= lengths[b]`` of padded
    trials set to ``fill`` (NaN for float outputs, -1 for state labels), so that padding cannot pass for a result."""
    if lengths is None:
        return values
    num_steps = values.shape[sample_dims + 1]
    within = steps_within(lengths.to(values.device), num_steps)  # (B, T)
    within = within.reshape(within.shape + (1,) * (values.dim() - sample_dims - 2))
    return torch.where(within, values, torch.full((), fill, dtype=values.dtype, device=values.device))
