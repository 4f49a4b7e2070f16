"""Reconstruction MSE and R^2 on hand-computed cases, and their channel reductions."""

import numpy as np
import pytest

from pyro_neurodyn.metrics import mean_squared_error, r2_score

# (time, channels): channel 0 is off by 1 at one point; channel 1 is predicted by its mean.
Y_TRUE = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 2.0], [3.0, 2.0]])
Y_PRED = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
# by hand: SS_res = (1, 4), SS_tot = (5, 4) around the channel means (1.5, 1), 4 points per channel
MSE = np.array([1 / 4, 4 / 4])
R2 = np.array([1 - 1 / 5, 1 - 4 / 4])


def test_hand_computed_values_and_reductions():
    np.testing.assert_allclose(mean_squared_error(Y_TRUE, Y_PRED, multioutput="raw_values"), MSE)
    assert mean_squared_error(Y_TRUE, Y_PRED) == pytest.approx(MSE.mean())
    np.testing.assert_allclose(r2_score(Y_TRUE, Y_PRED, multioutput="raw_values"), R2)
    assert r2_score(Y_TRUE, Y_PRED) == pytest.approx(R2.mean())
    assert r2_score(Y_TRUE, Y_PRED, multioutput="variance_weighted") == pytest.approx(1 - (1 + 4) / (5 + 4))


def test_trials_and_time_are_pooled():
    """Splitting the 4 time points into 2 trials of 2 changes nothing: means are over trials and time."""
    as_trials = lambda a: a.reshape(2, 2, 2)  # noqa: E731
    np.testing.assert_allclose(r2_score(as_trials(Y_TRUE), as_trials(Y_PRED), "raw_values"), R2)
    np.testing.assert_allclose(mean_squared_error(as_trials(Y_TRUE), as_trials(Y_PRED), "raw_values"), MSE)


def test_perfect_and_variance_weighting_identity():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 50, 4)) * np.array([1.0, 2.0, 0.5, 5.0])
    assert mean_squared_error(y, y) == 0.0 and r2_score(y, y) == 1.0
    pred = y + rng.normal(size=y.shape)
    # scikit-learn's definition: the variance-weighted mean of the per-channel R^2
    variances = y.reshape(-1, 4).var(0)
    weighted = (variances * r2_score(y, pred, "raw_values")).sum() / variances.sum()
    assert r2_score(y, pred, "variance_weighted") == pytest.approx(weighted)


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        r2_score(np.zeros((2, 5, 3)), np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"constant in channel\(s\) \[1\]"):
        r2_score(Y_TRUE * [1, 0], Y_PRED)
    with pytest.raises(ValueError, match="multioutput must be one of"):
        mean_squared_error(Y_TRUE, Y_PRED, multioutput="variance_weighted")
    with pytest.raises(ValueError, match="y_pred contains 1 NaN"):
        mean_squared_error(Y_TRUE, np.where(Y_TRUE == 3, np.nan, Y_PRED))
