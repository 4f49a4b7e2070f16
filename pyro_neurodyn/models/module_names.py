"""Unique names for top-level PyroModules.

PyroModule parameters live in Pyro's global param store under their module path. Two instances of
the same model class with the same (default, empty) name therefore share parameters: a freshly built
model silently picks up the trained values of an earlier one. Every top-level model of the suite is
created with ``super().__init__(name=unique_module_name("srnn"))`` so that cannot happen, while
``state_dict`` keys stay name-free and checkpoints load into any instance.
"""

import itertools

_counter = itertools.count()


def unique_module_name(prefix: str) -> str:
    """``f"{prefix}_{n}"`` with n unique in this process."""
    return f"{prefix}_{next(_counter)}"
