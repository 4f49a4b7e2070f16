r"""Recordings from Neurodata Without Borders (NWB) files, binned into a :class:`~pyro_neurodyn.data.Recording`.

    rec = load_nwb("session.nwb", bin_size=0.02)                         # spike counts of the units table
    rec = load_nwb(path, 0.02, align_to="go_cue_time", window=(0.5, 1.0)) # trials cut around an event
    rec = load_nwb(path, 1 / 160, series="EEG")                          # a named (Electrical)TimeSeries
    rec = load_nwb_sessions([path_1, path_2], 0.02)                      # several sessions, channels apart

What is read (NWB times are seconds from the session start):

* ``y``: with ``series=None`` the spike times of every unit of the ``units`` table counted in bins of
  ``bin_size`` seconds. A unit with ``obs_intervals`` is observed only in bins lying wholly inside one
  of them; its other bins are masked. With ``series=NAME``, the ``TimeSeries`` (``ElectricalSeries``,
  calcium ``RoiResponseSeries``, ...) of that name anywhere in the file, its samples averaged within
  each bin; a bin without a (finite) sample is masked.
* trials: the ``trials`` table cut into ragged trials ``[start_time, stop_time)``, or, with ``align_to``
  (a column of event times) and ``window=(before, after)``, into ``[event - before, event + after)``.
  Without a trials table (or with ``use_trials=False``) the whole session is one trial. A trial has
  ``floor(duration / bin_size)`` bins (an incomplete last bin is dropped). Every scalar column of the
  trials table becomes ``trial_info``, with ``window_start`` the time of each trial's first bin.
* ``inputs=NAME``: a behavioural ``TimeSeries`` averaged into the same bins (a bin without a sample
  holds the previous bin's value) as the inputs ``u``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from .recording import Recording
from .validation import check_positive

__all__ = ["load_nwb", "load_nwb_sessions"]

Source = Union[str, Path, Any]  # a path or a pynwb.NWBFile


def load_nwb(
    source: Source,
    bin_size: float,
    *,
    series: Optional[str] = None,
    use_trials: bool = True,
    align_to: Optional[str] = None,
    window: Optional[tuple[float, float]] = None,
    inputs: Optional[str] = None,
    dtype: Optional[torch.dtype] = None,
) -> Recording:
    """Read one NWB file (a path or an open ``pynwb.NWBFile``) into a :class:`Recording` (see the module docstring).

    Returns a recording with ``y (trials, T_max, D)``: D units (counts) or the series' channels.
    """
    bin_size = check_positive(bin_size, "bin_size")
    if align_to is not None and window is None:
        raise ValueError("align_to needs window=(seconds before, seconds after) the event")
    if window is not None and (len(window) != 2 or min(window) < 0 or sum(window) <= 0):
        raise ValueError(f"window must be (before, after) in seconds, both >= 0 and not both 0, got {window}")
    with _opened(source) as nwbfile:
        reader = _SeriesReader(_find_series(nwbfile, series)) if series is not None else _UnitsReader(nwbfile)
        starts, stops, info = _trial_windows(nwbfile, reader.time_range(), use_trials, align_to, window)
        edges = [_bin_edges(start, stop, bin_size) for start, stop in zip(starts, stops)]
        if min(len(e) for e in edges) < 2:
            raise ValueError(f"bin_size = {bin_size} s is longer than a trial (shortest {min(stops - starts):.4g} s)")
        values, masks = reader.binned(edges)
        u = None if inputs is None else [_hold_gaps(*_SeriesReader(_find_series(nwbfile, inputs)).binned([e])[0:2]) for e in edges]
        info["window_start"] = np.asarray(starts, dtype=float)
        return Recording.from_trials(values, masks=masks, inputs=u, bin_size=bin_size, channel_names=reader.channel_names,
                                     trial_info=info, dtype=dtype)  # fmt: skip


def load_nwb_sessions(sources: Sequence[Source], bin_size: float, *, match_channels: bool = False, **options: Any) -> Recording:
    """Several NWB files (one per session) as one :class:`Recording`: trials of all sessions, ``session`` their
    file's index. Channels: by default each session's own, side by side (``D = sum of D_s``; names
    ``session{s}/...``), each masked in the other sessions' trials; with ``match_channels=True`` a channel is
    identified by its name (``unit{id}`` for units, ``SERIES[c]`` for series), so sessions that recorded the
    same units share their columns (the union of names, in order of first appearance). ``options`` as in
    :func:`load_nwb`."""
    recordings = [load_nwb(source, bin_size, **options) for source in sources]
    if not recordings:
        raise ValueError("sources is empty: give at least one NWB file")
    return Recording.from_sessions(recordings, match_channels=match_channels)


# ----- reading ------------------------------------------------------------------------------------------
EDGE_TOLERANCE = 1e-6  # in bins: a sample this close before an edge belongs to the bin that the edge starts


def _bin_edges(start: float, stop: float, bin_size: float) -> np.ndarray:
    """Edges of the whole bins of ``[start, stop)``, shifted back by ``EDGE_TOLERANCE`` bins, so that a sample at
    ``start + k * bin_size`` (up to round-off) falls in bin k."""
    num_bins = int(np.floor((stop - start) / bin_size + EDGE_TOLERANCE))
    return start + bin_size * (np.arange(num_bins + 1) - EDGE_TOLERANCE)
class _opened:
    """Context manager: an open ``NWBFile`` from a path (closed afterwards) or as given."""

    def __init__(self, source: Source):
        self.source, self.io = source, None

    def __enter__(self):
        if isinstance(self.source, (str, Path)):
            from pynwb import NWBHDF5IO

            if not Path(self.source).exists():
                raise FileNotFoundError(f"no NWB file at {self.source}")
            self.io = NWBHDF5IO(str(self.source), "r")
            return self.io.read()
        return self.source

    def __exit__(self, *exc):
        if self.io is not None:
            self.io.close()


def _find_series(nwbfile, name: str):
    from pynwb import TimeSeries

    found = [obj for obj in nwbfile.objects.values() if isinstance(obj, TimeSeries) and obj.name == name]
    if not found:
        names = sorted({obj.name for obj in nwbfile.objects.values() if isinstance(obj, TimeSeries)})
        raise ValueError(f"no TimeSeries named {name!r} in the file; it has {names}")
    return found[0]


class _UnitsReader:
    """Spike counts of the units table, masked outside each unit's ``obs_intervals``."""

    def __init__(self, nwbfile):
        units = nwbfile.units
        if units is None or len(units) == 0:
            raise ValueError("the file has no units table: give series=NAME to read a TimeSeries instead")
        self.spikes = [np.sort(np.asarray(units["spike_times"][i], dtype=np.float64)) for i in range(len(units))]
        has_intervals = "obs_intervals" in units.colnames
        self.intervals = [np.asarray(units["obs_intervals"][i], dtype=np.float64).reshape(-1, 2) if has_intervals else None
                          for i in range(len(units))]  # fmt: skip
        self.channel_names = tuple(f"unit{int(i)}" for i in units.id[:])

    def time_range(self) -> tuple[float, float]:
        last = max((s[-1] for s in self.spikes if len(s)), default=0.0)
        stops = [iv[:, 1].max() for iv in self.intervals if iv is not None and len(iv)]
        return 0.0, float(max([last] + stops))

    def binned(self, edges: list) -> tuple[list, list]:
        """Counts ``(n_i, D)`` float32 and observed ``(n_i, D)`` bool for each trial's edges ``(n_i + 1,)``."""
        pieces, masks = [], []
        for e in edges:
            num_bins = len(e) - 1
            bin_size = (e[-1] - e[0]) / num_bins
            counts = np.zeros((num_bins, len(self.spikes)), dtype=np.float32)
            for unit, spikes in enumerate(self.spikes):
                first, last = np.searchsorted(spikes, [e[0], e[-1]], side="left")
                index = ((spikes[first:last] - e[0]) / bin_size).astype(np.int64)
                counts[:, unit] = np.bincount(np.minimum(index, num_bins - 1), minlength=num_bins)
            pieces.append(counts)
            masks.append(np.stack([_inside(intervals, e) for intervals in self.intervals], -1))
        return pieces, masks


def _inside(intervals: Optional[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """``(len(edges) - 1,)`` bool: bin ``[e_k, e_k+1)`` lies wholly in one of ``intervals (n, 2)`` (all True if None)."""
    if intervals is None:
        return np.ones(len(edges) - 1, dtype=bool)
    slack = 2 * EDGE_TOLERANCE * (edges[-1] - edges[0]) / (len(edges) - 1)  # the edges' shift, and round-off
    order = np.argsort(intervals[:, 0])
    begins, ends = intervals[order, 0], intervals[order, 1]
    which = np.searchsorted(begins, edges[:-1] + slack, side="right") - 1
    return (which >= 0) & (ends[np.clip(which, 0, None)] >= edges[1:] - slack)


class _SeriesReader:
    """A TimeSeries averaged within bins (NaN samples ignored; bins without a sample masked)."""

    def __init__(self, series):
        self.series = series
        data_shape = series.data.shape
        self.num_channels = 1 if len(data_shape) == 1 else int(np.prod(data_shape[1:]))
        self.channel_names = tuple(f"{series.name}[{c}]" for c in range(self.num_channels))
        if series.timestamps is not None:
            self.times = np.asarray(series.timestamps[:], dtype=np.float64)
        else:
            self.times = float(series.starting_time or 0.0) + np.arange(data_shape[0]) / float(series.rate)

    def time_range(self) -> tuple[float, float]:
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0
        return float(self.times[0]), float(self.times[-1] + step)

    def binned(self, edges: list) -> tuple[list, list]:
        means, masks = [], []
        for e in edges:
            first, last = np.searchsorted(self.times, [e[0], e[-1]], side="left")
            chunk = np.asarray(self.series.data[first:last], dtype=np.float64).reshape(last - first, self.num_channels)
            valid = np.isfinite(chunk)
            sums = np.concatenate([np.zeros((1, self.num_channels)), np.cumsum(np.where(valid, chunk, 0.0), 0)])
            numbers = np.concatenate([np.zeros((1, self.num_channels)), np.cumsum(valid, 0)])
            index = np.searchsorted(self.times[first:last], e, side="left")
            total, count = np.diff(sums[index], axis=0), np.diff(numbers[index], axis=0)
            means.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
            masks.append(count > 0)
        return means, masks


def _hold_gaps(values: list, masks: list) -> np.ndarray:
    """A binned input series with its empty bins filled by the previous bin's value (the next one at the start)."""
    value, mask = values[0], masks[0]
    if not mask.any(0).all():
        raise ValueError("the inputs series has no sample in a whole trial")
    out = value.copy()
    for c in range(out.shape[1]):
        seen = np.flatnonzero(mask[:, c])
        source = seen[np.clip(np.searchsorted(seen, np.arange(len(out)), side="right") - 1, 0, None)]
        out[:, c] = value[source, c]
    return out


def _trial_windows(nwbfile, time_range, use_trials: bool, align_to: Optional[str], window) -> tuple[np.ndarray, np.ndarray, dict]:
    """Start and stop times (s) of every trial, and the trials table's scalar columns."""
    table = nwbfile.trials if use_trials else None
    if table is None or len(table) == 0:
        if align_to is not None:
            raise ValueError(f"align_to={align_to!r} needs a trials table, and the file has none")
        return np.array([time_range[0]]), np.array([time_range[1]]), {}
    columns = {name: table[name].data[:] for name in table.colnames}
    info = {name: np.asarray(value) for name, value in columns.items() if np.asarray(value).ndim == 1}
    if align_to is None:
        return np.asarray(columns["start_time"], dtype=float), np.asarray(columns["stop_time"], dtype=float), info
    if align_to not in columns:
        raise ValueError(f"align_to: the trials table has no column {align_to!r}; it has {sorted(columns)}")
    events = np.asarray(columns[align_to], dtype=float)
    return events - window[0], events + window[1], info
