"""Agreement between true and inferred discrete states, up to a relabelling of the states.

Inferred state indices are arbitrary, so they are first matched one-to-one to true states with the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``). The inferred number of states may
exceed the true one (and vice versa): an inferred state left unmatched counts as wrong everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..data.validation import as_state_labels

__all__ = ["confusion_matrix", "match_states", "state_accuracy", "balanced_state_error"]

MAX_LABEL = 4096  # labels below it: a (K_true, K_pred) matrix of at most 2^24 int64 counts (128 MiB)


def _paired_labels(true_states: Any, pred_states: Any) -> tuple[np.ndarray, np.ndarray]:
    true = as_state_labels(true_states, "true_states", device="cpu").numpy().ravel()
    pred = as_state_labels(pred_states, "pred_states", device="cpu").numpy().ravel()
    if true.shape != pred.shape:
        raise ValueError(
            f"true_states and pred_states must have the same shape, got {np.shape(true_states)} and {np.shape(pred_states)}"
        )
    return true, pred


def confusion_matrix(true_states: Any, pred_states: Any) -> np.ndarray:
    """Counts ``C[i, j] = #{(trial, t): true = i, pred = j}``, shape ``(K_true, K_pred)``.

    ``K_true = max(true) + 1`` and ``K_pred = max(pred) + 1``. Labels: int arrays ``(trials, time)``
    or ``(time,)`` of equal shape, below ``MAX_LABEL = 4096`` (a ValueError otherwise: a label like 10^12
    is a state identifier to renumber, not a count of states).
    """
    true, pred = _paired_labels(true_states, pred_states)
    for name, labels in (("true_states", true), ("pred_states", pred)):
        if labels.max() >= MAX_LABEL:
            raise ValueError(
                f"{name} has label {labels.max()}: labels must number the states 0..K-1 (at most {MAX_LABEL - 1}), "
                "relabel them (e.g. numpy.unique(labels, return_inverse=True))"
            )
    counts = np.zeros((true.max() + 1, pred.max() + 1), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def _assignment(scores: np.ndarray) -> dict[int, int]:
    """Inferred state -> true state, one-to-one, maximizing the summed ``scores[true, pred]``."""
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return {int(pred): int(true) for true, pred in zip(rows, cols)}


def match_states(true_states: Any, pred_states: Any) -> dict[int, int]:
    """One-to-one map from inferred to true state labels that maximizes the number of agreements.

    Inferred states without a partner (when K_pred > K_true) are absent from the map. Labels as
    :func:`confusion_matrix`: int arrays ``(trials, time)`` or ``(time,)`` of equal shape.
    """
    return _assignment(confusion_matrix(true_states, pred_states))


def state_accuracy(true_states: Any, pred_states: Any) -> float:
    """Fraction of time points whose inferred state, relabelled by :func:`match_states`, is correct.

    ``accuracy = max_{one-to-one m} sum_i C[i, m(i)] / sum C``, C the :func:`confusion_matrix`. Labels: int
    arrays ``(trials, time)`` or ``(time,)`` of equal shape.
    """
    counts = confusion_matrix(true_states, pred_states)
    mapping = _assignment(counts)
    return float(sum(counts[true, pred] for pred, true in mapping.items()) / counts.sum())


def balanced_state_error(true_states: Any, pred_states: Any) -> float:
    """``1 - balanced accuracy``: one minus the mean over true states of their recall.

    ``recall_i = C[i, m(i)] / sum_j C[i, j]``, with the one-to-one relabelling m chosen to maximize the
    summed recall (Hungarian on the row-normalized confusion matrix), so a rare state weighs as much as
    a frequent one. This is the error the SRNN paper reports (Zhang & Saxena 2024). A true state with
    no matched inferred state has recall 0. Labels: int arrays ``(trials, time)`` or ``(time,)`` of equal shape.
    """
    counts = confusion_matrix(true_states, pred_states)
    present = counts.sum(1) > 0
    recall = counts[present] / counts[present].sum(1, keepdims=True)
    mapping = _assignment(recall)
    return float(1.0 - sum(recall[true, pred] for pred, true in mapping.items()) / present.sum())
