"""The shipped EEG recording, its loader and helpers, and the EEG benchmark pipeline end to end (tiny settings)."""

import json
import math

import numpy as np
import pytest
import torch

from benchmarks import eeg_lowrank
from pyro_neurodyn.data import EEG_FILE, load_eeg, random_windows, split_heldout


pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


# --------------------------------------------------------------------------------------------------
# the loader


def test_shipped_recording_loads_as_documented():
    y = load_eeg()
    assert y.shape == (9640, 64) and y.dtype == torch.float32
    raw = np.load(EEG_FILE)
    np.testing.assert_array_equal(y.numpy(), raw)
    # documented preprocessing: z-scored per channel over the whole recording (float32 rounding only)
    np.testing.assert_allclose(raw.astype(np.float64).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(raw.astype(np.float64).std(0), 1.0, atol=1e-5)
    assert (EEG_FILE.parent / "README.md").is_file()  # the attribution travels with the data


def test_zscore_uses_the_reference_points_only():
    y = load_eeg(zscore=True, reference_steps=7712).double().numpy()
    raw = np.load(EEG_FILE).astype(np.float64)
    mean, std = raw[:7712].mean(0), raw[:7712].std(0, ddof=1)
    np.testing.assert_allclose(y, (raw - mean) / std, atol=1e-5)
    np.testing.assert_allclose(y[:7712].mean(0), 0.0, atol=1e-5)
    assert np.abs(y[7712:].mean(0)).max() > 1e-2  # the held-out part is transformed, not re-standardised


def test_loader_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="path"):
        load_eeg(tmp_path / "missing.npy")
    np.save(tmp_path / "cube.npy", np.zeros((4, 5, 6)))
    with pytest.raises(ValueError, match="2-D"):
        load_eeg(tmp_path / "cube.npy")
    bad = np.ones((10, 3))
    bad[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        load_eeg(tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", np.ones((10, 3)))
    with pytest.raises(ValueError, match="constant"):
        load_eeg(tmp_path / "flat.npy", zscore=True)
    with pytest.raises(ValueError, match="reference_steps"):
        load_eeg(reference_steps=100)
    with pytest.raises(ValueError, match="reference_steps"):
        load_eeg(zscore=True, reference_steps=10_000)


def test_split_keeps_the_last_fraction_out():
    y = load_eeg()
    train, test = split_heldout(y, 0.2)
    assert (train.shape[0], test.shape[0]) == (7712, 1928)
    torch.testing.assert_close(torch.cat([train, test]), y, rtol=0, atol=0)
    for bad in (0.0, 1.0, -0.1, "0.2", True):
        with pytest.raises(ValueError, match="heldout_fraction"):
            split_heldout(y, bad)
    with pytest.raises(ValueError, match="y"):
        split_heldout(y[None].expand(2, -1, -1), 0.2)


def test_random_windows_are_contiguous_slices():
    y = torch.arange(300.0).reshape(100, 3)  # row t holds 3t, 3t+1, 3t+2: a window's start is readable
    windows = random_windows(y, 40, 7, seed=1)
    assert windows.shape == (40, 7, 3)
    starts = (windows[:, 0, 0] / 3).long()
    assert int(starts.min()) >= 0 and int(starts.max()) <= 100 - 7
    for window, start in zip(windows, starts.tolist()):
        torch.testing.assert_close(window, y[start : start + 7], rtol=0, atol=0)
    torch.testing.assert_close(random_windows(y, 40, 7, seed=1), windows, rtol=0, atol=0)  # seeded
    with pytest.raises(ValueError, match="length"):
        random_windows(y, 5, 101)
    with pytest.raises(ValueError, match="num_windows"):
        random_windows(y, 0, 5)


# --------------------------------------------------------------------------------------------------
# the benchmark pipeline


def test_authors_smoothing_is_a_hann_convolution_then_zscore():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 200, 3))
    out = eeg_lowrank.authors_smoothing(y)
    window = np.hanning(15)  # 0.5 - 0.5 cos(2 pi n / 14), n = 0..14, as in the authors' evaluation
    direct = np.array([[np.convolve(y[n, :, c], window, mode="valid") for c in range(3)] for n in range(2)]).transpose(0, 2, 1)
    # away from the ends (no boundary handling) the output is the convolution up to the z-scoring, an
    # increasing affine map: the correlation is 1 to rounding
    for n in range(2):
        for c in range(3):
            assert np.corrcoef(direct[n, :, c], out[n, 7:-7, c])[0, 1] > 1 - 1e-12
    np.testing.assert_allclose(out.mean(1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(1), 1.0, atol=1e-12)


def test_free_run_summary_reads_amplitude_drift_and_alpha_power():
    rate, steps = 160.0, 320  # the EEG's sampling rate; 2 s per held-out length, bins of 0.5 Hz
    time = np.arange(steps) / rate
    rng = np.random.default_rng(1)
    heldout = rng.normal(size=(steps, 2))  # white noise: 8-15 Hz holds 15 of the 161 frequency bins
    tone = np.sqrt(2.0) * np.sin(2 * np.pi * 10.0 * time)[:, None].repeat(2, 1)  # 10 Hz, standard deviation 1
    generated = np.concatenate([tone, 3.0 * tone], 0)[None]  # one run of two held-out lengths, amplitude x3
    summary = eeg_lowrank.free_run_summary(heldout, generated)
    # a 10 Hz tone over a whole number of cycles: all of its power sits in the 10 Hz bin
    assert summary["alpha_fraction_generated"] == pytest.approx(1.0, abs=1e-12)
    assert summary["peak_hz_generated"] == 10.0
    assert summary["std_generated_first_chunk"] == pytest.approx(1.0, abs=1e-12)
    assert summary["std_generated_last_chunk"] == pytest.approx(3.0, abs=1e-12)
    # white noise: an expected 15 / 161 of the power (the 0 and Nyquist bins carry half weight:
    # within 0.03 of it for 2 x 320 points, where one bin's share has a relative sd of 1)
    assert summary["alpha_fraction_data"] == pytest.approx(15 / 161, abs=0.03)
    assert summary["std_data"] == pytest.approx(1.0, abs=0.1)  # sd of a sample sd of 320 draws: 0.04


def test_pipeline_diagnosis_with_a_fixed_decay():
    argv = ["--diagnose", "--fix-decay", "--decay", "0.8", "--recording-steps", "600", "--units", "16",
            "--windows", "20", "--epochs", "1", "--particles", "4", "--trajectories", "2", "--chunks", "2",
            "--filter-steps", "40"]
    summary = eeg_lowrank.main(argv)
    assert summary["decay"] == pytest.approx(0.8, rel=1e-6)  # held through the initialization and the fit
    assert 0.0 <= summary["d_h_authors"] <= 1.0 and summary["std_generated_last_chunk"] > 0
    with pytest.raises(SystemExit):
        eeg_lowrank.main(["--diagnose", "--decay", "1.5"])


def test_pipeline_fits_generates_and_scores_a_small_slice(tmp_path):
    output = tmp_path / "run"
    argv = ["--output", str(output), "--recording-steps", "600", "--units", "16", "--windows", "20",
            "--epochs", "2", "--particles", "4", "--trajectories", "2", "--chunks", "2", "--filter-steps", "40"]
    results = eeg_lowrank.main(argv)
    assert results["data"] == {"train_steps": 480, "heldout_steps": 120, "channels": 64}
    for row in list(results["metrics"].values()) + [results["data_vs_data_reference"]]:
        assert math.isfinite(row["d_stsp"]) and row["d_stsp_stderr"] > 0
        assert 0.0 <= row["d_h"] <= 1.0
    assert math.isfinite(results["final_bound_nats_per_step"])
    for name in ("metrics.json", "model.pt", "traces.png", "spectra.png", "loss.png", "generated.npy"):
        assert (output / name).is_file(), name
    assert json.loads((output / "metrics.json").read_text())["metrics"] == results["metrics"]
    assert np.load(output / "generated.npy").shape == (2, 2 * 120, 64)
    with pytest.raises(SystemExit, match="not empty"):  # never overwrites a non-empty folder silently
        eeg_lowrank.main(argv)


def test_checkpoint_selection_keeps_the_best_scored_parameters_without_changing_the_fit():
    """The selector restores the fit's random state (the losses equal a fit without selection, step for
    step), keeps the epoch with the lowest criterion, and the restored parameters score that criterion
    again (generation is seeded, so a re-evaluation of the same parameters is exact)."""
    args = eeg_lowrank.parse_args(["--diagnose", "--fix-decay", "--units", "16", "--windows", "20", "--epochs", "3",
                                   "--particles", "4", "--trajectories", "2", "--filter-steps", "40", "--select-every", "1"])
    fit_part, validation = split_heldout(load_eeg()[:600], 0.2)
    plain, _ = eeg_lowrank.fit_model(fit_part, args)
    selected, timing = eeg_lowrank.fit_model(fit_part, args, validation, run_steps=240)
    assert selected.losses == plain.losses
    history = timing["selection"]["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    best = min(history, key=lambda row: row["criterion"])
    assert timing["selection"]["epoch"] == best["epoch"]
    # measured: epoch 0 (the data initialization) is kept here, so the check below tells restored
    # parameters (criterion 1.245) from the last epoch's (1.653)
    assert best["epoch"] != history[-1]["epoch"]
    again = eeg_lowrank.CheckpointSelector(selected, fit_part, validation, args, run_steps=240)
    again.evaluate(best["epoch"])
    assert again.history[0]["criterion"] == pytest.approx(best["criterion"], rel=1e-6)
