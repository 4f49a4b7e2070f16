"""Optimizer state in files: a torch optimizer's state (and its scheduler's) keyed by parameter names.

``optimizer.state_dict()`` identifies each parameter by its position in the optimizer. A checkpoint names
them instead, ``<module>.<path>`` (``srnn.encoder.rnn.weight_ih_l0``, ``model.transition.U``: a stable
name of the estimator's module and the parameter's path in it), so the file says what it holds and loads
into an optimizer built over the same parameters in any order::

    {"optimizer": {"state": {name: per-parameter state (moments, step)},
                   "param_groups": [{hyperparameters (lr, betas, ...), "params": [name, ...]}, ...]},
     "scheduler": the learning-rate scheduler's state_dict(), or None}

Checkpoints of format 1 and 2 (written with ``pyro.optim``) hold Pyro's layout instead: one torch optimizer
per parameter, ``{name: optimizer.state_dict()}``, or ``{name: {"scheduler": ..., "optimizer": ...}}``
with a scheduler, each with the one parameter at index 0, keyed by param-store names (``$$$`` between a
plain torch module and its parameter's path: ``model.transition$$$U``). :func:`from_pyro_optim_state`
converts that layout.
"""

from __future__ import annotations

import copy
from typing import Mapping, Optional, Sequence

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["from_pyro_optim_state", "load_named_state", "named_state", "parameter_names", "scaled_learning_rates"]

_PYRO_MODULE_DIVIDER = "$$$"  # pyro.params.param_store: "<module name>$$$<parameter path>"


def parameter_names(modules: Mapping[str, nn.Module]) -> dict[int, str]:
    """``id(parameter) -> "<name>.<path>"`` for every parameter of ``modules`` (stable name -> module); a
    parameter shared by two modules keeps the first name."""
    names: dict[int, str] = {}
    for prefix, module in modules.items():
        for path, parameter in module.named_parameters():
            names.setdefault(id(parameter), f"{prefix}.{path}")
    return names


def _group_names(optimizer: Optimizer, names: Mapping[int, str]) -> list[list[str]]:
    """The names of each parameter group's parameters, in the optimizer's order."""
    try:
        return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]
    except KeyError:
        raise ValueError("optimizer: it holds a parameter that is not one of the estimator's modules' parameters") from None


def named_state(optimizer: Optimizer, scheduler: Optional[LRScheduler], names: Mapping[int, str]) -> dict:
    """The state of ``optimizer`` (and ``scheduler``) in the named layout of the module docstring (a deep copy)."""
    indexed = optimizer.state_dict()
    flat = [name for group in _group_names(optimizer, names) for name in group]
    state = {flat[index]: value for index, value in indexed["state"].items()}
    groups = [{**group, "params": [flat[index] for index in group["params"]]} for group in indexed["param_groups"]]
    return copy.deepcopy({"optimizer": {"state": state, "param_groups": groups}, "scheduler": None if scheduler is None else scheduler.state_dict()})


def load_named_state(state: dict, optimizer: Optimizer, scheduler: Optional[LRScheduler], names: Mapping[int, str]) -> None:
    """Load a named state (module docstring) into ``optimizer`` and ``scheduler`` (a saved scheduler state of
    None leaves the scheduler as it is). The optimizer's parameter groups must hold the parameters of the saved
    groups (in any order): a ValueError otherwise."""
    saved = state["optimizer"]
    live = _group_names(optimizer, names)
    if len(saved["param_groups"]) != len(live) or any(set(g["params"]) != set(n) for g, n in zip(saved["param_groups"], live)):
        raise ValueError(
            "optimizer: the saved optimizer state is for the parameter groups "
            f"{[sorted(g['params']) for g in saved['param_groups']]}, but this optimizer has {[sorted(n) for n in live]}"
        )
    # torch maps the saved groups' "params" entries onto the live parameters by position: list them in the
    # live order; a group saved without hyperparameters (none of its parameters had been stepped) keeps the live ones
    groups = [
        {**{k: v for k, v in live_group.items() if k != "params"}, **group, "params": list(group_names)}
        for group, group_names, live_group in zip(saved["param_groups"], live, optimizer.param_groups)
    ]
    optimizer.load_state_dict({"state": copy.deepcopy(saved["state"]), "param_groups": copy.deepcopy(groups)})
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))


def scaled_learning_rates(state: dict, factor: float) -> dict:
    """A deep copy of ``{"optimizer": optimizer state, "scheduler": ...}`` (named or as ``state_dict()`` gives it)
    with every parameter group's learning rate times ``factor``."""
    scaled = copy.deepcopy(state)
    for group in scaled["optimizer"]["param_groups"]:
        group["lr"] *= factor
    return scaled


def from_pyro_optim_state(legacy: Mapping[str, dict], groups: Optional[Sequence[Sequence[str]]] = None) -> dict:
    """The named state of ``pyro.optim``'s per-parameter layout (module docstring), for an optimizer whose
    parameter groups hold the parameters named ``groups`` (default: one group of every saved parameter).

    Parameter names become torch's (``model.transition$$$U`` -> ``model.transition.U``). Each parameter keeps
    its saved moments and step count (none if it has no saved entry: never stepped). Each group continues
    with the hyperparameters (learning rate, ...) and the scheduler state of its most-stepped saved parameter,
    i.e. where the fit's schedule stood: ``pyro.optim`` decayed a parameter's learning rate only at the steps
    that saw it, so a parameter that some steps missed had fallen behind.
    """
    entries = {name.replace(_PYRO_MODULE_DIVIDER, "."): entry for name, entry in legacy.items()}
    groups = [list(entries)] if groups is None else [list(group) for group in groups]
    state, param_groups, schedulers = {}, [], []
    for group in groups:
        saved = {name: entries[name] for name in group if name in entries}
        optimizers = {name: entry.get("optimizer", entry) for name, entry in saved.items()}  # a scheduler's entry nests its optimizer's
        for name, optimizer_state in optimizers.items():
            if optimizer_state["state"]:
                state[name] = next(iter(optimizer_state["state"].values()))
        if not saved:  # no parameter of the group was ever stepped: it keeps the live hyperparameters
            param_groups.append({"params": group})
            schedulers.append(None)
            continue
        reference = max(saved, key=lambda name: _step_count(optimizers[name]))
        param_groups.append({**{k: v for k, v in optimizers[reference]["param_groups"][0].items() if k != "params"}, "params": group})
        schedulers.append(saved[reference].get("scheduler"))
    return {"optimizer": {"state": state, "param_groups": param_groups}, "scheduler": _merged_schedulers(schedulers)}


def _step_count(optimizer_state: dict) -> float:
    """How often a per-parameter optimizer stepped its parameter (0 if never)."""
    per_parameter = next(iter(optimizer_state["state"].values()), {})
    return float(per_parameter.get("step", 0))


def _merged_schedulers(states: list) -> Optional[dict]:
    """One scheduler state over the parameter groups from one per-parameter state per group (whose per-group
    lists, e.g. ``base_lrs``, have one entry), the first group's for the other entries; None without any."""
    present = [s for s in states if s is not None]
    if not present:
        return None
    if len(present) != len(states):
        raise ValueError("the saved optimizer state has a learning-rate scheduler for some parameter groups only")
    merged = dict(present[0])
    for key, value in present[0].items():
        if isinstance(value, list) and len(value) == 1:
            merged[key] = [s[key][0] for s in present]  # one entry per group
    return merged
