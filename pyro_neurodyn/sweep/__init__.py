"""Sweeps over model settings and seeds on Ray Tune, compared on held-out trials.

    result = run_sweep(build, {"num_states": [1, 2, 3]}, y_train, y_test, seeds=[0, 1, 2], storage="sweeps/k")

``run_sweep`` (:mod:`.ray_sweep`) runs one Tune trial per (grid point, seed) (:mod:`.trial`), keeps the
sweep's state in its storage folder (:mod:`.storage`), and returns a :class:`SweepResult`
(:mod:`.results`). ``neurodyn sweep CONFIG.toml`` runs one from a TOML file (:mod:`.config`).
Ray is imported only when a sweep runs.
"""

from .grid import grid_points, point_label
from .ray_sweep import SweepInterrupted, run_sweep
from .results import SweepResult

__all__ = ["SweepInterrupted", "SweepResult", "grid_points", "point_label", "run_sweep"]
