"""Recordings in: ragged trials and missing values (Recording), NWB files written here with pynwb (load_nwb).

Ground truth: spike counts against numpy's histogram of the same spike times, bin means against the
samples averaged by hand, obs_intervals against the bins they cover, the shipped EEG read back from NWB
against the array it was written from.
"""

from datetime import datetime, timezone

import numpy as np
import pytest
import torch

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile, TimeSeries  # noqa: E402
from pynwb.ecephys import ElectricalSeries  # noqa: E402

from pyro_neurodyn.data import Recording, load_eeg, load_nwb, load_nwb_sessions, save_eeg_as_nwb  # noqa: E402

DURATIONS = [1.0, 1.3, 1.6, 1.9]  # four ragged trials, 2 s apart
UNIT_INTERVALS = [[[0.0, 4.0], [6.0, 10.0]], [[0.0, 10.0]], [[0.0, 10.0]]]  # unit 0 unobserved in (4, 6)


def write_session(path, seed=0, num_units=3, eeg_channels=2):
    rng = np.random.default_rng(seed)
    nwbfile = NWBFile(session_description="simulated", identifier=f"sim{seed}", session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    spikes = [np.sort(rng.uniform(0, 10, 60)) for _ in range(num_units)]
    for unit in range(num_units):
        nwbfile.add_unit(spike_times=spikes[unit], obs_intervals=UNIT_INTERVALS[unit % 3])
    nwbfile.add_trial_column("go_cue_time", "time of the go cue (s)")
    nwbfile.add_trial_column("condition", "reach direction")
    for k, duration in enumerate(DURATIONS):
        nwbfile.add_trial(start_time=2.0 * k, stop_time=2.0 * k + duration, go_cue_time=2.0 * k + 0.5, condition=k % 2)
    device = nwbfile.create_device("probe")
    group = nwbfile.create_electrode_group("shank", description="shank", location="ctx", device=device)
    for _ in range(eeg_channels):
        nwbfile.add_electrode(group=group, location="ctx")
    region = nwbfile.create_electrode_table_region(list(range(eeg_channels)), "all")
    lfp = rng.normal(size=(1000, eeg_channels))
    lfp[10, 0] = np.nan  # one missing sample
    nwbfile.add_acquisition(ElectricalSeries(name="LFP", data=lfp, electrodes=region, rate=100.0, starting_time=0.0))
    behavior = nwbfile.create_processing_module("behavior", "behaviour")
    speed = rng.normal(size=500)
    behavior.add(TimeSeries(name="speed", data=speed, unit="m/s", rate=50.0))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return spikes, lfp, speed


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    return path, write_session(path)


def test_spike_counts_match_numpy_histograms_and_obs_intervals_mask(session):
    path, (spikes, _, _) = session
    rec = load_nwb(path, 0.1)
    assert rec.lengths.tolist() == [10, 13, 16, 19] and rec.y.shape == (4, 19, 3)
    for trial, duration in enumerate(DURATIONS):
        edges = 2.0 * trial + 0.1 * np.arange(int(round(duration / 0.1)) + 1)
        for unit in range(3):
            expected, _ = np.histogram(spikes[unit], edges)
            observed = rec.mask[trial, : len(edges) - 1, unit].numpy()
            np.testing.assert_array_equal(rec.y[trial, : len(edges) - 1, unit].numpy()[observed], expected[observed])
            covered = np.array([any(a <= lo and hi <= b for a, b in UNIT_INTERVALS[unit]) for lo, hi in zip(edges[:-1], edges[1:])])
            np.testing.assert_array_equal(observed, covered)
    assert not rec.mask[2, :, 0].any() and rec.mask[2, :16, 1].all()  # trial 2 (4.0-5.6 s) lies in unit 0's gap
    assert not rec.mask[0, 10:].any()  # padding
    np.testing.assert_array_equal(rec.trial_info["condition"], [0, 1, 0, 1])


def test_series_bins_are_sample_means_and_inputs_are_aligned(session):
    path, (_, lfp, speed) = session
    rec = load_nwb(path, 0.05, series="LFP", align_to="go_cue_time", window=(0.2, 0.3), inputs="speed")
    assert rec.lengths.tolist() == [10] * 4 and rec.u.shape == (4, 10, 1)
    np.testing.assert_allclose(rec.trial_info["window_start"], 2.0 * np.arange(4) + 0.3)
    for trial in range(4):
        first = int(round((2.0 * trial + 0.3) * 100))
        expected = lfp[first : first + 50].reshape(10, 5, 2)
        means = np.nanmean(expected, 1)
        np.testing.assert_allclose(rec.y[trial].numpy(), means, rtol=1e-6, atol=1e-6)
        s0 = int(round((2.0 * trial + 0.3) * 50))  # speed at 50 Hz: bin j holds the samples i with 2.5 j <= i < 2.5 (j + 1)
        bounds = np.ceil(2.5 * np.arange(11)).astype(int)
        expected_speed = [speed[s0 + lo : s0 + hi].mean() for lo, hi in zip(bounds[:-1], bounds[1:])]
        np.testing.assert_allclose(rec.u[trial, :, 0].numpy(), expected_speed, rtol=1e-6, atol=1e-6)
    whole = load_nwb(path, 0.05, series="LFP", use_trials=False)
    assert whole.y.shape == (1, 200, 2) and whole.mask.sum() == 400  # the NaN sample leaves 4 of 5 in its bin


def test_sessions_keep_their_channels_apart(tmp_path):
    paths = [tmp_path / "a.nwb", tmp_path / "b.nwb"]
    write_session(paths[0], seed=0, num_units=3)
    write_session(paths[1], seed=1, num_units=2)
    rec = load_nwb_sessions(paths, 0.1)
    assert rec.y.shape == (8, 19, 5) and rec.session.tolist() == [0] * 4 + [1] * 4
    assert not rec.mask[:4, :, 3:].any() and not rec.mask[4:, :, :3].any()
    assert rec.channel_names[3] == "session1/unit0"
    np.testing.assert_array_equal(rec.y[4:, :, 3:].numpy(), load_nwb(paths[1], 0.1).y.numpy())
    matched = load_nwb_sessions(paths, 0.1, match_channels=True)  # unit ids 0-2 and 0-1: the same names
    assert matched.channel_names == ("unit0", "unit1", "unit2") and matched.mask[4:, :, :2].any() and not matched.mask[4:, :, 2].any()
    np.testing.assert_array_equal(matched.y[4:, :, :2].numpy(), load_nwb(paths[1], 0.1).y.numpy())


def test_the_shipped_eeg_reads_back_from_nwb(tmp_path):
    path = save_eeg_as_nwb(tmp_path / "eeg.nwb")
    rec = load_nwb(path, 1 / 160, series="EEG", dtype=torch.float32)
    assert rec.y.shape == (1, 9640, 64) and bool(rec.mask.all())
    torch.testing.assert_close(rec.y[0], load_eeg(), rtol=0, atol=0)
    with pytest.raises(FileExistsError):
        save_eeg_as_nwb(path)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"series": "EMG"}, r"no TimeSeries named 'EMG' in the file; it has \['LFP', 'speed'\]"),
        ({"bin_size": 0.0}, r"bin_size must be finite and > 0"),
        ({"align_to": "reward_time", "window": (0.1, 0.1)}, r"align_to: the trials table has no column 'reward_time'"),
        ({"align_to": "go_cue_time"}, r"align_to needs window"),
        ({"bin_size": 5.0}, r"bin_size = 5.0 s is longer than a trial"),
    ],
)
def test_bad_nwb_arguments_are_named(session, options, message):
    path, _ = session
    options = {"bin_size": 0.1, **options}
    with pytest.raises(ValueError, match=message):
        load_nwb(path, options.pop("bin_size"), **options)


def test_a_file_without_units_needs_a_series(tmp_path):
    nwbfile = NWBFile(session_description="empty", identifier="e", session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ValueError, match="no units table"):
        load_nwb(nwbfile, 0.1)


def test_recording_from_ragged_trials_with_missing_values():
    rng = np.random.default_rng(0)
    trials = [rng.normal(size=(t, 3)) for t in (5, 8, 3)]
    trials[1][2, 1] = np.nan
    rec = Recording.from_trials(trials, bin_size=0.01, trial_info={"condition": [0, 1, 0]})
    assert rec.y.shape == (3, 8, 3) and rec.lengths.tolist() == [5, 8, 3]
    assert int(rec.mask.sum()) == 3 * 16 - 1 and not bool(rec.mask[1, 2, 1]) and rec.y[1, 2, 1] == 0
    sub = rec[[0, 2]]
    assert sub.y.shape == (2, 5, 3) and sub.trial_info["condition"].tolist() == [0, 0]
    train, test = rec.split(1 / 3, seed=0)
    assert len(train) == 2 and len(test) == 1
    held_in, targets = rec.hold_out_channels([1])
    assert not held_in.mask[..., 1].any() and int(targets.sum()) == 15 and bool((held_in.y[..., 1] == 0).all())
    y, mask, u = rec.trial(2)
    assert y.shape == (3, 3) and mask.all() and u is None


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Recording.from_trials([np.full((3, 2), np.nan)]), r"trial 0 has no observed bin"),
        (lambda: Recording.from_trials([np.zeros((3, 2)), np.zeros((3, 4))]), r"trials\[1\] has 4 channels"),
        (lambda: Recording.from_trials([np.zeros((3, 2))], bin_size=-1), r"bin_size must be finite and > 0"),
        (lambda: Recording.from_trials([np.zeros((3, 2))], masks=[np.ones((2, 2))]), r"masks\[0\] has shape \(2, 2\)"),
        (lambda: Recording(torch.zeros(2, 3, 1), torch.ones(2, 3, 2, dtype=torch.bool), torch.tensor([3, 3])), r"mask must be a bool tensor"),
        (lambda: Recording(torch.zeros(1, 3, 1), torch.ones(1, 3, 1, dtype=torch.bool), torch.tensor([2])), r"after the end of their trial"),
        (lambda: Recording.from_trials([np.array([[1.0, np.inf]])]), r"infinite"),
    ],
)
def test_bad_recordings_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
