"""The state of one particle-filter pass: particle tensors, per-pass constants, per-step memos, a lock.

Models and guides in the ``init(state, ...)`` / ``step(state, t, ...)`` protocol of Pyro's
:class:`~pyro.infer.SMCFilter` receive ``state``, a dict. :class:`~pyro_neurodyn.infer.VSMC_ELBO` passes a
:class:`ParticleState`, a ``dict`` subclass with three kinds of storage, each with its own lifetime:

* the items, ``state[key]``: tensors ``(S, *plates, *event)`` (``S`` particles) that depend on sampled
  values. The model writes them; resampling gathers every item by ancestor.
* ``state.constants``: ``{owner: value}``, values that depend only on the parameters and the data (a
  covariance factorization, a proposal's Kalman gains, an encoder's output over the whole ``y``),
  computed once per pass by the module ``owner`` (:func:`pass_constant`). Resampling leaves them alone.
* ``state.memo``: ``{key: value}``, values derived from the current items (the prior of ``x_t``, which
  the guide and then the model ask for): :func:`step_memo`. Cleared at the start of every step
  (:meth:`ParticleState.begin_step`) and whenever an item is written, so an entry never outlives the
  particles it was computed from.

While the guide runs, VSMC_ELBO locks the items (:meth:`ParticleState.read_only`): a guide proposes
through ``pyro.sample`` and must not move the particles (Pyro's ``SMCState`` has the same lock).
``constants`` and ``memo`` stay writable, so a proposal may fill its own entries.

A model called with a plain dict (Pyro's ``SMCFilter`` passes its own ``SMCState``; a hand-written loop
may pass ``{}``) still works: :func:`pass_constant` and :func:`step_memo` then compute the value on
every call instead of storing it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator, Optional

__all__ = ["ParticleState", "ReadOnlyStateError", "pass_constant", "step_memo"]


class ReadOnlyStateError(RuntimeError):
    """A guide (proposal) wrote a particle tensor of the state while it was locked."""


class ParticleState(dict):
    """The particle tensors of one pass (the dict's items) with ``constants`` and ``memo`` beside them.

    See the module docstring for the three lifetimes. ``dict(...)`` arguments fill the items.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.constants: dict[Hashable, Any] = {}
        self.memo: dict[Hashable, Any] = {}
        self._reader: Optional[str] = None  # who holds the lock, e.g. "the guide's step 3"

    # --- lifetimes -------------------------------------------------------------------------------
    def begin_step(self) -> None:
        """Forget the memos of the previous step (VSMC_ELBO calls this before every step's guide)."""
        self.memo.clear()

    @contextmanager
    def read_only(self, reader: str = "the guide") -> Iterator["ParticleState"]:
        """Within the block, writing an item raises :class:`ReadOnlyStateError` naming ``reader``."""
        self._reader = reader
        try:
            yield self
        finally:
            self._reader = None

    # --- writes of items: checked against the lock, and they invalidate the memos -----------------
    def _writing(self, key: Any) -> None:
        if self._reader is not None:
            raise ReadOnlyStateError(
                f"{self._reader} wrote state[{key!r}]: the state's tensors are the particles, which only the model "
                "writes (as in Pyro's SMCFilter); a guide proposes through pyro.sample and may keep values of its own "
                "in state.constants (per pass) or state.memo (per step)"
            )
        self.memo.clear()

    def __setitem__(self, key, value) -> None:
        self._writing(key)
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self._writing(key)
        super().__delitem__(key)

    def update(self, *args, **kwargs) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key, *default):
        self._writing(key)
        return super().pop(key, *default)

    def popitem(self):
        self._writing("<any key>")
        return super().popitem()

    def clear(self) -> None:
        self._writing("<every key>")
        super().clear()

    def __ior__(self, other):
        self.update(other)
        return self


def pass_constant(state: dict, owner: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``, computed once per pass: kept in ``state.constants[owner]`` of a :class:`ParticleState`
    (recomputed on every call for a plain dict)."""
    return _kept(state.constants if isinstance(state, ParticleState) else None, owner, compute)


def step_memo(state: dict, key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``, computed once per step and state: kept in ``state.memo[key]`` of a :class:`ParticleState`
    until the next step or the next write of an item (recomputed on every call for a plain dict).
    By convention ``key`` starts with the owning module, e.g. ``(module, t)``."""
    return _kept(state.memo if isinstance(state, ParticleState) else None, key, compute)


def _kept(store: Optional[dict], key: Hashable, compute: Callable[[], Any]) -> Any:
    if store is None:
        return compute()
    if key not in store:
        store[key] = compute()
    return store[key]
