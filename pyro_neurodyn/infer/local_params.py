"""Module-local parameters: Pyro programs that leave Pyro's global param store alone.

By default a :class:`~pyro.nn.PyroModule` puts its parameters into Pyro's *global* param store, under
its Pyro name, whenever one of its methods runs; ``pyro.infer.SVI`` and ``pyro.optim`` find them there.
With Pyro's setting ``module_local_params`` on (``pyro.settings``; see ``pyro/nn/module.py``) the
parameters stay in the module: its methods still announce every parameter to Pyro's handlers (a
``poutine.trace`` records them as ``"param"`` sites) but write nothing to the store. Such parameters are
trained with a ``torch.optim`` optimizer over the modules' parameters, as Pyro's ``ELBOModule`` does
(``torch.optim.Adam(Trace_ELBO()(model, guide).parameters())``); :func:`~pyro_neurodyn.infer.fit_svi`
does that.

:func:`module_local_params` turns the setting on for one block and restores the caller's setting after
it, so code outside the block (a user's own ``pyro.infer.SVI`` with the global store) is unaffected. Two
modules of the same Pyro name share nothing inside the block.

A limit of Pyro 1.9 it works around: a PyroModule keeps its local store in its Pyro context
(``module._pyro_context.param_state``), which Pyro creates only if the setting is on when the module is
built; a module built with the setting off raises ``AttributeError`` when it runs with the setting on.
``module_local_params(*modules)`` gives each PyroModule in ``modules`` (and below) without one the empty
local store it would have had. The setting is process-wide (``pyro.settings``): Pyro code running in
another thread during the block sees it too.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import pyro
from pyro.nn import PyroModule
from pyro.poutine.messenger import Messenger
from torch import nn

__all__ = ["module_local_params", "pyro_modules"]


@contextmanager
def module_local_params(*modules: Optional[nn.Module]) -> Iterator[None]:
    """Run the block with ``pyro.settings`` ``module_local_params=True``, then restore the caller's setting.

    Args:
        modules: the modules the block runs (None entries are skipped); each PyroModule among them and
            their submodules that was built with the setting off gets an empty local param store first
            (see the module docstring), so it runs in the block.
    """
    for module in modules:
        if module is None:
            continue
        for part in module.modules():
            if isinstance(part, PyroModule) and not hasattr(part._pyro_context, "param_state"):
                part._pyro_context.param_state = {"params": {}, "constraints": {}}
    with pyro.settings.context(module_local_params=True):
        yield


def pyro_modules(*functions: Callable) -> list[PyroModule]:
    """The PyroModules behind models and guides: a PyroModule itself, the module of a bound method
    (``srnn.model``), either seen through Pyro handlers wrapped around it (``poutine.scale(fn, s)``).
    Plain functions contribute none. Each module once, in order."""
    found: dict[int, PyroModule] = {}
    for fn in functions:
        while isinstance(fn, functools.partial) and len(fn.args) == 2 and isinstance(fn.args[0], Messenger):
            fn = fn.args[1]  # a handler applied with poutine.<handler>(fn, ...)
        owner = fn if isinstance(fn, PyroModule) else getattr(fn, "__self__", None)
        if isinstance(owner, PyroModule):
            found.setdefault(id(owner), owner)
    return list(found.values())
