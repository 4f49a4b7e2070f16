"""What every estimator (``SRNN``, ``LowRankRNN``, ``SwitchingLowRankRNN``) shares: the user-facing contract.

    est = Estimator(...)                     # a validated ``config`` dict (what save writes, load rebuilds from)
    est.fit(y, ...) -> est                   # losses of every step in est.losses (a later fit extends them)
    est.validate(y, u=None) -> (y, u)        # the checks and conversions every public method applies
    est.log_evidence(y, ...) -> (trials,)    # estimates of log p(y)
    est.posterior_predictive(y, ...)         # pyro_neurodyn.predictive.PosteriorPredictive
    est.save(path); Estimator.load(path)     # weights only, atomic; refuses to overwrite unless asked
    est.to(device, dtype), est.device, est.dtype

A subclass sets ``kind`` (the checkpoint's kind) and implements ``validate``, ``check_fitted``,
``log_evidence`` and the checkpoint hooks ``_checkpoint_contents`` / ``_restore_checkpoint`` /
``_module_prefixes`` (which :class:`~pyro_neurodyn.infer.FitRun` also uses for checkpoints during a fit).
"""

from __future__ import annotations

import os
from typing import Any, Optional, TypeVar, Union

from torch import Tensor

from ..infer import load_checkpoint, save_checkpoint
from .placement import PlacedEstimator, saved_dtype

__all__ = ["Estimator"]

PathLike = Union[str, os.PathLike]
EstimatorT = TypeVar("EstimatorT", bound="Estimator")


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

    def _module_prefixes(self) -> dict[str, str]:
        """Pyro parameter-name prefix of each module (unique per process) -> its stable name in checkpoints."""
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

    def posterior_predictive(self, y: Any, num_samples: int = 100, u: Any = None, **options: Any):
        """Posterior draws given ``y (trials, T, D)`` (inputs ``u (trials, T, M)``) and replicated recordings:
        ``latents (S, trials, T, P)``, ``y_rep (S, trials, T, D)``, ... (S = ``num_samples``); see
        :func:`pyro_neurodyn.predictive.posterior_predictive` (``options``: ``num_particles``, ``seed``)."""
        from ..predictive import posterior_predictive  # the predictive layer sits above the estimators

        return posterior_predictive(self, y, num_samples, u, **options)
