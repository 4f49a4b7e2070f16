"""What a sweep returns: one row per trial, the comparison of grid points, and the fitted models.

The comparison. Every trial scores each held-out trial b with an estimate of its log evidence under the
model fitted to the training trials, ``elpd_b = log p(y_b^test | theta_hat)`` (latents and states
marginalized; see :mod:`pyro_neurodyn.predictive.comparison`). For each grid point the seed with the
largest sum over test trials is kept (fits from different seeds end in different local optima; the best
one stands for the grid point), and the grid points are ranked by ``arviz_stats.compare`` on those
pointwise values: ``elpd`` is the sum, ``se`` its standard error over test trials, ``elpd_diff`` and ``dse``
the difference to the best point and its standard error, paired over the same test trials. Two caveats,
stated rather than hidden: choosing the seed on the test trials makes each point's elpd optimistic by
the spread of its seeds (the same selection for every point, so the ranking suffers less than the
values); and each ``elpd_b`` is a Monte Carlo estimate whose exponential is unbiased, so it is biased
down by about half its variance (every trial uses the same ``num_particles``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .grid import point_label
from .trial import MODEL_FILE

__all__ = ["SweepResult", "collect_results", "describe"]

FINISHED, FAILED, UNFINISHED = "finished", "failed", "unfinished"


@dataclass
class SweepResult:
    """A sweep's results.

    Attributes:
        table: ``pandas.DataFrame``, one row per (grid point, seed) in grid order: ``point`` (its label),
            one column per grid argument, ``seed``, ``status`` (``"finished"``, ``"failed"`` after every
            retry, ``"unfinished"``), ``heldout_log_evidence`` (sum over test trials, nats),
            ``heldout_per_trial`` (its mean), ``best_seed`` (the row stands for its grid point in the
            comparison), ``final_loss``, ``fit_steps``, ``fit_seconds``, ``error``, ``model`` (path of the
            saved estimator).
        comparison: ``arviz_stats.compare``'s DataFrame over grid points, best first (see the module
            docstring); None when fewer than two grid points have a finished trial.
        points: the grid points (dicts of build's arguments). classes: the estimator class of each point.
        log_evidence: ``{(point index, seed): array (test trials,)}`` of the finished trials.
    """

    table: Any
    comparison: Any
    points: list
    classes: list
    log_evidence: dict

    @property
    def complete(self) -> bool:
        """Whether every trial has finished."""
        return bool((self.table["status"] == FINISHED).all())

    def best(self) -> Any:
        """The table's row of the best model: the best seed of the best grid point (largest held-out sum)."""
        finished = self.table[self.table["best_seed"]]
        if finished.empty:
            raise ValueError("no trial of this sweep has finished with a finite held-out log evidence")
        return finished.loc[finished["heldout_log_evidence"].idxmax()]

    def load_best(self) -> Any:
        """The best model (see :meth:`best`), loaded with its class's ``load``."""
        row = self.best()
        return self.load(int(row["point_index"]), int(row["seed"]))

    def load(self, point: Union[int, Mapping], seed: int) -> Any:
        """The fitted estimator of grid point ``point`` (its index, or the dict itself) and ``seed``."""
        index = self._point_index(point)
        rows = self.table[(self.table["point_index"] == index) & (self.table["seed"] == seed)]
        if rows.empty:
            raise ValueError(f"seed {seed} is not one of this sweep's seeds {sorted(set(self.table['seed']))}")
        row = rows.iloc[0]
        if row["status"] != FINISHED:
            raise ValueError(f"the trial ({row['point']}, seed {seed}) has not finished (status {row['status']!r})")
        return self.classes[index].load(row["model"])

    def _point_index(self, point: Union[int, Mapping]) -> int:
        if isinstance(point, Mapping):
            matches = [index for index, candidate in enumerate(self.points) if candidate == dict(point)]
            if not matches:
                raise ValueError(f"point {dict(point)} is not one of the grid's points {[point_label(p) for p in self.points]}")
            return matches[0]
        if isinstance(point, bool) or not isinstance(point, int) or not 0 <= point < len(self.points):
            raise ValueError(f"point must be a grid point (dict) or an index in [0, {len(self.points)}), got {point!r}")
        return point


def collect_results(results: Any, points: Sequence[dict], seeds: Sequence[int], classes: Sequence[type], num_particles: int) -> SweepResult:
    """A :class:`SweepResult` from Tune's ``ResultGrid`` of a sweep (trials reported by :mod:`.trial`)."""
    import pandas as pd

    # Tune's own count of trials that reached an end (retries spent included); fewer after an interruption,
    # when a trial that raised may still be waiting for its retry: that one is unfinished, not failed
    ended = results.num_terminated + results.num_errors == len(results)
    by_trial = {}
    for result in results:
        config = result.config or {}
        by_trial[(int(config["point"]), int(config["seed"]))] = result
    names = list(dict.fromkeys(name for point in points for name in point))
    rows, log_evidence = [], {}
    for index, point in enumerate(points):
        for seed in seeds:
            result = by_trial.get((index, seed))
            metrics = (result.metrics or {}) if result is not None else {}
            error = None if result is None or result.error is None else f"{type(result.error).__name__}: {result.error}"
            done = "heldout_log_evidence" in metrics and result.checkpoint is not None
            status = FINISHED if done else FAILED if error and ended else UNFINISHED
            row = {"point": point_label(point), "point_index": index, **{name: point.get(name) for name in names}, "seed": seed, "status": status}
            if done:
                values = np.asarray(metrics["log_evidence_per_trial"], dtype=np.float64)
                log_evidence[(index, seed)] = values
                row.update(heldout_log_evidence=float(values.sum()), heldout_per_trial=float(values.mean()), final_loss=metrics["final_loss"],
                           fit_steps=metrics["fit_steps"], fit_seconds=metrics["fit_seconds"], model=str(Path(result.checkpoint.path) / MODEL_FILE))  # fmt: skip
            rows.append({**row, "error": error})
    table = pd.DataFrame(rows)
    for column in ("heldout_log_evidence", "heldout_per_trial", "final_loss", "fit_seconds"):
        table[column] = table.get(column, pd.Series(dtype=float)).astype(float)
    table["fit_steps"] = table.get("fit_steps", pd.Series(dtype=float)).astype("Int64")
    table["model"] = table.get("model", pd.Series(dtype=object)).astype(object)
    table["best_seed"] = _best_seeds(table)
    columns = ["point", "point_index", *names, "seed", "status", "heldout_log_evidence", "heldout_per_trial", "best_seed",
               "final_loss", "fit_steps", "fit_seconds", "error", "model"]  # fmt: skip
    table = table[columns]
    comparison = _compare(table, log_evidence, num_particles)
    return SweepResult(table, comparison, [dict(point) for point in points], list(classes), log_evidence)


def _best_seeds(table: Any) -> Any:
    """Bool column: True on each grid point's finished row of largest finite held-out log evidence."""
    eligible = (table["status"] == FINISHED) & np.isfinite(table["heldout_log_evidence"].to_numpy(dtype=float, na_value=np.nan))
    best = np.zeros(len(table), dtype=bool)
    for _, group in table[eligible].groupby("point_index"):
        best[table.index.get_loc(group["heldout_log_evidence"].idxmax())] = True
    return best


def _compare(table: Any, log_evidence: dict, num_particles: int) -> Optional[Any]:
    """``arviz_stats.compare`` over the best seed of each grid point (None with fewer than two such points)."""
    from arviz_stats import compare

    from ..predictive.comparison import heldout_elpd

    chosen = table[table["best_seed"]]
    missing = sorted(set(table["point"]) - set(chosen["point"]))
    if missing:
        warnings.warn(f"grid points without a finished, finite trial are left out of the comparison: {missing}", stacklevel=3)
    if len(chosen) < 2:
        return None
    elpd = {row.point: heldout_elpd(log_evidence[(row.point_index, row.seed)], num_particles) for row in chosen.itertuples()}
    # "BB-pseudo-BMA" weights work for log densities of any size ("stacking" underflows past ~700 nats a trial)
    return compare(elpd, method="BB-pseudo-BMA")


def describe(result: SweepResult, columns: Optional[Sequence[str]] = None) -> str:
    """A plain-text summary of ``result``: the table (``columns``), the comparison and the best model."""
    shown = list(columns) if columns is not None else [c for c in result.table.columns if c not in ("point_index", "error", "model")]
    lines = [result.table[shown].to_string(index=False, float_format=lambda v: f"{v:.6g}")]
    if result.comparison is not None:
        lines += ["", "comparison of grid points (best seed each, held-out log evidence):",
                  result.comparison.to_string(float_format=lambda v: f"{v:.4g}")]  # fmt: skip
    failed = result.table[result.table["status"] == FAILED]
    for row in failed.itertuples():
        lines.append(f"failed: {row.point}, seed {row.seed}: {row.error}")
    if result.table["best_seed"].any():
        best = result.best()
        lines += ["", f"best: {best['point']}, seed {best['seed']}: {best['heldout_log_evidence']:.6g} nats over the test trials; "
                      f"model in {best['model']}"]  # fmt: skip
    return "\n".join(lines)
