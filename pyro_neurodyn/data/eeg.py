"""A real recording: 64-channel scalp EEG (PhysioNet EEG Motor Movement/Imagery Dataset, session S001R01).

The package ships the preprocessed copy used by Pals et al. (NeurIPS 2024) for their EEG experiments
(``pyro_neurodyn/data/eeg/``, with its attribution in ``README.md`` there): a float32 array of
9640 time points by 64 channels. What is known of its preprocessing:

- source: Schalk et al. 2004 (BCI2000), distributed by PhysioNet (Goldberger et al. 2000) under the
  Open Data Commons Attribution License 1.0; run 1 of subject 1 (one minute of baseline, eyes open);
- sampled at 160 Hz (:data:`EEG_SAMPLING_RATE`), so the 9640 points span about 60 s;
- smoothed over time (the exact filter is not documented with the file), then z-scored per channel
  over the whole recording: each channel has mean 0 and standard deviation 1 over all 9640 points.

Because that z-scoring used the whole recording, a held-out part is not strictly unseen in scale;
:func:`load_eeg` can re-standardise with the statistics of a leading (training) part only.

    >>> y = load_eeg()                                  # (9640, 64) float32 tensor
    >>> train, test = split_heldout(y, 0.2)             # first 80 % / last 20 % of the time points
    >>> windows = random_windows(train, 500, 50, seed=0)  # (500, 50, 64) training windows
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

from .validation import as_trials, check_count

__all__ = ["EEG_FILE", "EEG_SAMPLING_RATE", "load_eeg", "random_windows", "save_eeg_as_nwb", "split_heldout"]

EEG_FILE = Path(__file__).resolve().parent / "eeg" / "eeg_physionet_S001R01_smoothed.npy"
EEG_SAMPLING_RATE = 160.0  # Hz, the rate of the PhysioNet EEG Motor Movement/Imagery recordings
EEG_SHAPE = (9640, 64)


def load_eeg(
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    zscore: bool = False,
    reference_steps: Optional[int] = None,
) -> Tensor:
    """The EEG recording as a float32 tensor ``(time, channels)`` (the shipped file: ``(9640, 64)``).

    Args:
        path: an ``.npy`` file holding a 2-D ``(time, channels)`` array; default: the shipped recording.
        zscore: standardise every channel, ``y_c <- (y_c - m_c) / s_c``, with the mean ``m_c`` and
            standard deviation ``s_c`` of its first ``reference_steps`` points (all points by default).
            The shipped file is already z-scored over all points, so this matters only with
            ``reference_steps`` (e.g. the training part) or another file.
        reference_steps: how many leading time points give the z-scoring statistics (>= 2).

    Raises:
        ValueError: the file is missing, not 2-D, holds NaN/inf, or a channel is constant over the
            reference points; ``reference_steps`` without ``zscore`` or beyond the recording.
    """
    file = EEG_FILE if path is None else Path(path)
    if not file.is_file():
        raise ValueError(f"path {str(file)!r} is not a file")
    if reference_steps is not None and not zscore:
        raise ValueError("reference_steps is only used with zscore=True")
    try:
        array = np.load(file, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"path {str(file)!r} could not be read as a .npy array: {error}") from error
    if array.ndim != 2:
        raise ValueError(f"path {str(file)!r} must hold a 2-D (time, channels) array, got shape {array.shape}")
    y = as_trials(array, "EEG recording", dtype=torch.float32)[0]
    if zscore:
        steps = y.shape[0] if reference_steps is None else check_count(reference_steps, "reference_steps", minimum=2)
        if steps > y.shape[0]:
            raise ValueError(f"reference_steps = {steps} exceeds the recording's {y.shape[0]} time points")
        reference = y[:steps].double()
        mean, std = reference.mean(0), reference.std(0)
        if bool((std == 0).any()):
            raise ValueError(f"channel(s) {(std == 0).nonzero().flatten().tolist()} are constant over the reference points")
        y = ((y.double() - mean) / std).float()
    return y


def split_heldout(y: Any, heldout_fraction: float = 0.2) -> tuple[Tensor, Tensor]:
    """Split a recording ``(time, channels)`` in time: the first part and the last ``heldout_fraction``.

    The held-out part has ``round(heldout_fraction * T)`` points (at least 2 in each part), so
    ``heldout_fraction = 0.2`` on the shipped recording gives 7712 training and 1928 held-out points.
    """
    y = _recording(y)
    if not isinstance(heldout_fraction, (int, float)) or isinstance(heldout_fraction, bool) or not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be a number in (0, 1), got {heldout_fraction!r}")
    heldout = int(round(heldout_fraction * y.shape[0]))
    if heldout < 2 or y.shape[0] - heldout < 2:
        raise ValueError(f"heldout_fraction = {heldout_fraction} leaves fewer than 2 points in a part of T = {y.shape[0]}")
    return y[:-heldout], y[-heldout:]


def random_windows(y: Any, num_windows: int, length: int, seed: Optional[int] = 0) -> Tensor:
    """``num_windows`` windows of ``length`` consecutive points, at uniformly drawn starts: ``(num_windows, length, channels)``.

    How Pals et al. train on one long recording: every epoch sees ``num_windows`` windows (500 of
    T = 50 for the EEG) cut from the training part; the windows overlap and are drawn once, from
    ``torch.Generator().manual_seed(seed)`` (torch's global generator when ``seed`` is None).
    """
    y = _recording(y)
    num_windows, length = check_count(num_windows, "num_windows"), check_count(length, "length", minimum=2)
    if length > y.shape[0]:
        raise ValueError(f"length = {length} exceeds the recording's {y.shape[0]} time points")
    generator = None if seed is None else torch.Generator().manual_seed(check_count(seed, "seed", minimum=0))
    starts = torch.randint(0, y.shape[0] - length + 1, (num_windows,), generator=generator)
    return y[starts[:, None] + torch.arange(length)]


def _recording(y: Any) -> Tensor:
    """Validate one recording ``(time, channels)``."""
    tensor = as_trials(y, "y")
    if tensor.shape[0] != 1:
        raise ValueError(f"y must be one recording (time, channels), got shape {tuple(tensor.shape)}")
    return tensor[0]


def save_eeg_as_nwb(path: Union[str, os.PathLike], *, overwrite: bool = False) -> Path:
    """Write the shipped EEG as an NWB file: an ``ElectricalSeries`` named ``"EEG"`` ``(9640, 64)`` at 160 Hz
    over 64 electrodes, so that ``load_nwb(path, 1 / 160, series="EEG")`` reads it back (one trial) like
    any user's recording. Refuses to overwrite an existing file unless ``overwrite=True``."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
    nwbfile = NWBFile(
        session_description="PhysioNet EEG Motor Movement/Imagery, subject 1 run 1 (baseline, eyes open), smoothed and z-scored",
        identifier="physionet-eegmmidb-S001R01",
        session_start_time=datetime(2009, 9, 9, tzinfo=timezone.utc),  # the dataset's publication; the real time is not shipped
    )
    device = nwbfile.create_device("BCI2000 64-channel cap")
    group = nwbfile.create_electrode_group("scalp", description="64 scalp electrodes (10-10 system)", location="scalp", device=device)
    for _ in range(EEG_SHAPE[1]):
        nwbfile.add_electrode(group=group, location="scalp")
    electrodes = nwbfile.create_electrode_table_region(list(range(EEG_SHAPE[1])), "all electrodes")
    data = np.load(EEG_FILE)
    nwbfile.add_acquisition(ElectricalSeries(name="EEG", data=data, electrodes=electrodes, rate=EEG_SAMPLING_RATE, starting_time=0.0))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path
