"""State accuracy with Hungarian matching, and balanced error, on cases with known answers."""

import numpy as np
import pytest

from pyro_neurodyn.metrics import balanced_state_error, confusion_matrix, match_states, state_accuracy


def test_relabelled_states_are_perfect():
    true = np.array([[0, 0, 1, 1, 2, 2], [2, 2, 2, 0, 0, 1]])
    pred = np.array([2, 0, 1])[true]  # a permutation of the labels
    assert state_accuracy(true, pred) == 1.0
    assert balanced_state_error(true, pred) == 0.0
    assert match_states(true, pred) == {2: 0, 0: 1, 1: 2}


def test_known_accuracy_with_extra_inferred_states():
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([5, 5, 5, 3, 1, 1, 1, 3])  # K_pred = 6 > K_true = 2
    # best one-to-one match: 5 -> 0 (3 hits), 1 -> 1 (3 hits); state 3 is unmatched: 6 / 8
    assert state_accuracy(true, pred) == pytest.approx(6 / 8)
    assert match_states(true, pred) == {5: 0, 1: 1}
    assert confusion_matrix(true, pred).shape == (2, 6)


def test_balanced_error_weights_rare_states_equally():
    true = np.array([0] * 90 + [1] * 10)
    pred = np.zeros(100, dtype=int)  # always the frequent state
    assert state_accuracy(true, pred) == pytest.approx(0.9)
    # recall 1 for state 0, 0 for state 1 (no inferred state left for it): balanced accuracy 0.5
    assert balanced_state_error(true, pred) == pytest.approx(0.5)
    pred = np.array([0] * 80 + [1] * 10 + [1] * 10)
    # recalls 80/90 and 10/10
    assert balanced_state_error(true, pred) == pytest.approx(1 - (80 / 90 + 1.0) / 2)


def test_hungarian_beats_greedy():
    """Greedy matching would give pred 0 to true 0 (4 hits) and leave true 1 with 1 hit; optimum is 3 + 3."""
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 1, 0, 0, 0, 1, 1])
    confusion = confusion_matrix(true, pred)
    brute = max(confusion[0, a] + confusion[1, 1 - a] for a in (0, 1)) / confusion.sum()
    assert state_accuracy(true, pred) == pytest.approx(brute)


def test_bad_labels():
    with pytest.raises(ValueError, match="same shape"):
        state_accuracy(np.zeros(5, dtype=int), np.zeros(6, dtype=int))
    with pytest.raises(ValueError, match="pred_states must hold non-negative"):
        state_accuracy(np.zeros(3, dtype=int), np.array([0, -1, 0]))
