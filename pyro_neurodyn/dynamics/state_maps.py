"""One state's map of a dynamics bank, on its own: what flow fields and fixed-point plots draw."""

from __future__ import annotations

from typing import Callable

from torch import Tensor


class StateMaps:
    """Mixin of a bank of K maps ``forward(h (..., P), u (..., M) or None) -> (..., K, P)`` with an ``input_dim``
    attribute (:class:`~.RNNBank`, :class:`~.ResidualMLPBank`, :class:`~.LowRankBank`)."""

    def state_map(self, state: int) -> Callable[[Tensor], Tensor]:
        """The k-th map alone, ``h (..., P) -> (..., P)``, autonomous (zero input), e.g. for flow fields."""
        return lambda h: self.forward(h, None if not self.input_dim else h.new_zeros(h.shape[:-1] + (self.input_dim,)))[..., state, :]
