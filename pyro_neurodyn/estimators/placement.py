"""Where an estimator's tensors live: the device and float dtype of its torch modules.

Every estimator keeps its parameters in a few torch modules (``SRNN.module``; ``LowRankRNN.model`` and
``.guide``; ``SwitchingLowRankRNN.module`` and ``.proposal``). The mixin :class:`PlacedEstimator` gives it

    estimator.to(device=None, dtype=None) -> estimator     # moves every module, like nn.Module.to
    estimator.device, estimator.dtype                       # read from a parameter

and the estimator converts the data given to its public methods to that device and dtype after
validation (``as_trials(y, ..., dtype=self.dtype, device=self.device)``), so a float32 array given to a
float64 model is fit in float64 and the outputs come back in float64. State labels stay int64 (on the
model's device).
"""

from __future__ import annotations

from itertools import chain
from typing import Iterable, Mapping, NamedTuple, Optional, TypeVar, Union

import torch
from torch import Tensor, nn

__all__ = ["DeviceLike", "Placement", "PlacedEstimator", "module_placement", "saved_dtype"]

DeviceLike = Union[str, torch.device, int, None]
PlacedT = TypeVar("PlacedT", bound="PlacedEstimator")


class Placement(NamedTuple):
    """A ``device`` and a floating ``dtype`` (the keyword arguments of ``Tensor.to`` / ``torch.zeros``)."""

    device: torch.device
    dtype: torch.dtype


def module_placement(modules: Iterable[Optional[nn.Module]], default: Optional[Placement] = None) -> Placement:
    """The device and dtype of the first floating parameter (or buffer) of ``modules`` (None entries skipped);
    ``default`` (else the CPU and torch's default dtype) when they hold none."""
    modules = [module for module in modules if module is not None]
    tensors = chain((p for m in modules for p in m.parameters()), (b for m in modules for b in m.buffers()))
    for tensor in tensors:
        if tensor.is_floating_point():
            return Placement(tensor.device, tensor.dtype)
    return default if default is not None else Placement(torch.device("cpu"), torch.get_default_dtype())


def saved_dtype(state_dict: Mapping[str, Tensor]) -> Optional[torch.dtype]:
    """The dtype of the first floating tensor of a saved ``state_dict`` (None if it has none): ``load``
    rebuilds an estimator in the dtype it was saved in."""
    return next((value.dtype for value in state_dict.values() if torch.is_tensor(value) and value.is_floating_point()), None)


class PlacedEstimator:
    """Mixin: ``to``, ``device`` and ``dtype`` for an estimator whose modules :meth:`_placed_modules` lists.

    A module that does not exist yet (an SRNN before its first fit, when ``obs_dim`` is unknown) is None
    in that list; the requested placement is remembered (:meth:`_requested_placement`), and the estimator
    applies it when it builds the module.
    """

    def _placed_modules(self) -> list[Optional[nn.Module]]:
        raise NotImplementedError

    def to(self: PlacedT, device: DeviceLike = None, dtype: Optional[torch.dtype] = None) -> PlacedT:
        """Move every parameter and buffer of the estimator's modules to ``device`` and/or cast its floating
        ones to ``dtype`` (None: keep it), in place; return the estimator itself.

        Data given afterwards to ``fit``, the decoding methods, ``sample`` etc. is converted to the same
        device and dtype, so ``SRNN(...).to(dtype=torch.float64).fit(y)`` runs in float64 end to end
        whatever ``y``'s dtype. Call it before ``fit`` or between fits (optimizer moments that a later
        ``fit`` keeps, as ``LowRankRNN``'s, are cast to the parameters' dtype and device when loaded).
        """
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float64), got {dtype!r}")
        requested = dict(self._requested_placement())
        if device is not None:
            requested["device"] = torch.device(device)
        if dtype is not None:
            requested["dtype"] = dtype
        self._placement_request = requested
        for module in self._placed_modules():
            if module is not None:
                module.to(**requested)
        return self

    def _requested_placement(self) -> dict:
        """``{"device": ..., "dtype": ...}`` asked of :meth:`to` so far (keys absent when never asked)."""
        return getattr(self, "_placement_request", {})

    def _placement(self) -> Placement:
        requested = self._requested_placement()
        default = Placement(requested.get("device", torch.device("cpu")), requested.get("dtype", torch.get_default_dtype()))
        return module_placement(self._placed_modules(), default)

    @property
    def device(self) -> torch.device:
        """The device of the parameters (where data given to the estimator is moved)."""
        return self._placement().device

    @property
    def dtype(self) -> torch.dtype:
        """The float dtype of the parameters (what data given to the estimator is converted to)."""
        return self._placement().dtype
