"""Every kind of bad input is rejected with an error that names the argument."""

import numpy as np
import pytest
import torch

from pyro_neurodyn.data import as_inputs, as_state_labels, as_trials, check_count, check_positive


def test_accepts_numpy_torch_lists_and_single_trials():
    y = np.random.default_rng(0).normal(size=(4, 10, 3))
    out = as_trials(y)
    assert out.shape == (4, 10, 3) and out.dtype == torch.get_default_dtype()
    assert torch.equal(as_trials(torch.as_tensor(y)), out)
    assert as_trials(y[0]).shape == (1, 10, 3)
    assert as_trials(y[0].tolist()).shape == (1, 10, 3)
    assert as_trials(y, dtype=torch.float64).dtype == torch.float64
    counts = as_trials(np.ones((2, 5, 3), dtype=np.int64), "spikes", counts=True)
    assert counts.dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    "data, kwargs, error, message",
    [
        (np.zeros((2, 3, 4, 5)), {}, ValueError, r"y must be 3-D \(trials, time, channels\).*shape \(2, 3, 4, 5\)"),
        (np.zeros(5), {}, ValueError, "y must be 3-D"),
        (np.zeros((0, 5, 3)), {}, ValueError, "zero trials"),
        (np.zeros((2, 5, 0)), {}, ValueError, "zero channels"),
        (np.zeros((2, 1, 3)), {}, ValueError, "at least T = 2 time steps, got T = 1"),
        (np.array([[[1.0, np.nan], [0.0, 1.0]]]), {}, ValueError, r"y contains 1 NaN or infinite value\(s\), the first at index \(0, 0, 1\)"),
        (np.array([[[1.0, np.inf], [0.0, 1.0]]]), {}, ValueError, "NaN or infinite"),
        (np.array([[[1.0, -1.0], [0.0, 1.0]]]), {"counts": True}, ValueError, "non-negative counts"),
        (np.array([[[1.0, 0.5], [0.0, 1.0]]]), {"counts": True}, ValueError, "integer counts"),
        (np.array([["a", "b"], ["c", "d"]]), {}, TypeError, "y must be numeric"),
        ([[1.0, 2.0], [3.0]], {}, ValueError, "could not be read as an array"),
        (np.ones((2, 3)) * 1j, {}, TypeError, "real-valued"),
    ],
)
def test_as_trials_rejects(data, kwargs, error, message):
    with pytest.raises(error, match=message):
        as_trials(data, **kwargs)


def test_error_names_the_argument():
    with pytest.raises(ValueError, match="^spikes needs at least"):
        as_trials(np.zeros((1, 1, 2)), "spikes")


def test_inputs_must_match_recording():
    y = as_trials(np.zeros((3, 10, 2)))
    assert as_inputs(None, y) is None
    assert as_inputs(np.ones((3, 10, 1)), y).shape == (3, 10, 1)
    assert as_inputs(np.ones((10, 4)), y).shape == (3, 10, 4)  # one input sequence shared by all trials
    with pytest.raises(ValueError, match=r"u must match y in trials and time: u has shape \(3, 9, 1\)"):
        as_inputs(np.ones((3, 9, 1)), y)
    with pytest.raises(ValueError, match="u must match y"):
        as_inputs(np.ones((2, 10, 1)), y)
    with pytest.raises(ValueError, match="u contains 30 NaN"):
        as_inputs(np.array([[[np.nan]] * 10] * 3), y)


def test_state_labels():
    assert as_state_labels([0, 1, 1]).shape == (1, 3)
    assert as_state_labels(np.array([[0, 2], [1, 1]])).dtype == torch.int64
    with pytest.raises(ValueError, match="non-negative"):
        as_state_labels([0, -1])
    with pytest.raises(ValueError, match="integer"):
        as_state_labels([0.5, 1.0])
    with pytest.raises(ValueError, match="below num_states = 2, found label 2"):
        as_state_labels([0, 2], num_states=2)
    with pytest.raises(ValueError, match="2-D"):
        as_state_labels(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        as_state_labels(np.zeros((1, 0)))


def test_scalar_checks():
    assert check_count(3, "num_states") == 3
    assert check_count(np.int64(2), "num_states") == 2
    assert check_count(2.0, "num_states") == 2
    with pytest.raises(ValueError, match="num_states must be >= 1, got 0"):
        check_count(0, "num_states")
    with pytest.raises(TypeError, match="num_states must be an integer"):
        check_count(2.5, "num_states")
    with pytest.raises(TypeError, match="num_states must be an integer"):
        check_count(True, "num_states")
    assert check_positive(0.1, "lr") == 0.1
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr must be finite and > 0"):
            check_positive(bad, "lr")
    with pytest.raises(TypeError, match="lr must be a positive number"):
        check_positive("0.1", "lr")
