"""The points of a sweep's grid and its seeds, checked before anything runs.

A grid is either a mapping ``{argument: [values, ...]}`` of ``build``'s keyword arguments, whose points
are every combination (the last argument varying fastest, as ``itertools.product``)::

    grid_points({"num_states": [1, 2], "latent_dim": [2, 3]})
    # [{"num_states": 1, "latent_dim": 2}, {"num_states": 1, "latent_dim": 3}, {"num_states": 2, ...}, ...]

or a sequence of such dicts, the points themselves (for grids that are not products). Each point is
fit once per seed: ``build(**point, seed=seed)``.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_seeds", "grid_points", "point_label"]


def grid_points(grid: Any) -> list[dict]:
    """The points of ``grid`` (see the module docstring) as a list of dicts; a ValueError naming ``grid``
    for an empty grid, an empty value list, a ``seed`` entry (seeds are given apart) or a repeated point."""
    if isinstance(grid, Mapping):
        if not grid:
            raise ValueError("grid is empty: give at least one argument with its values, e.g. {'num_states': [1, 2, 3]}")
        names = list(grid)
        for name in names:
            values = grid[name]
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise ValueError(f"grid[{name!r}] must be a list of values, got {values!r}")
            if len(values) == 0:
                raise ValueError(f"grid[{name!r}] is empty: give at least one value")
        points = [dict(zip(names, combination)) for combination in itertools.product(*(grid[name] for name in names))]
    elif isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)):
        if len(grid) == 0:
            raise ValueError("grid is empty: give at least one point (a dict of build's keyword arguments)")
        for index, point in enumerate(grid):
            if not isinstance(point, Mapping):
                raise ValueError(f"grid[{index}] must be a dict of build's keyword arguments, got {point!r}")
        points = [dict(point) for point in grid]
    else:
        raise ValueError(f"grid must be a dict {{argument: [values]}} or a list of dicts, got {type(grid).__name__}")
    for point in points:
        for name in point:
            if not isinstance(name, str):
                raise ValueError(f"grid: argument names must be strings, got {name!r}")
        if "seed" in point:
            raise ValueError("grid must not set 'seed': every point is fit once per entry of seeds")
    labels = [point_label(point) for point in points]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"grid has repeated points: {repeated}")
    return points


def point_label(point: Mapping) -> str:
    """A grid point's name in tables and comparisons: ``"num_states=2, latent_dim=3"`` (``"default"`` for ``{}``)."""
    return ", ".join(f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}" for name, value in point.items()) or "default"


def check_seeds(seeds: Any) -> list[int]:
    """``seeds`` as a list of distinct ints; a ValueError (TypeError for a non-integer) naming ``seeds``."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ValueError(f"seeds must be a list of integers, got {seeds!r}")
    if len(seeds) == 0:
        raise ValueError("seeds is empty: give at least one seed, e.g. seeds=[0, 1, 2]")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seeds must hold integers, got {seed!r}")
    seeds = [int(seed) for seed in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds
