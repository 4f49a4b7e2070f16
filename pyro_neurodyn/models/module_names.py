"""Unique Pyro names for the suite's top-level PyroModules, for Pyro's *global* param store.

The suite's own fits and methods run with module-local parameters (:mod:`pyro_neurodyn.infer.local_params`)
and need no names. A user's own Pyro code with the global store does: ``pyro.infer.SVI`` with ``pyro.optim``
finds a PyroModule's parameters there by the module's Pyro name, so two instances of one class with the same
(default, empty) name would share them: a freshly built model would silently be trained as, or take the
values of, an earlier one. Every top-level model and proposal of the suite is therefore created with
``super().__init__(name=unique_module_name("srnn"))``. The names appear only in the global store and in the
``"param"`` sites of traces, never in ``state_dict`` keys or checkpoints, so files load into any instance.
"""

import itertools

_counter = itertools.count()


def unique_module_name(prefix: str) -> str:
    """``f"{prefix}_{n}"`` with n unique in this process."""
    return f"{prefix}_{next(_counter)}"
