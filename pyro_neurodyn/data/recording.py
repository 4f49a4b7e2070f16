r"""A recording as it arrives: ragged trials, missing values, several sessions, padded into one tensor.

    rec = Recording.from_trials([y_1, y_2, ...], bin_size=0.01)   # y_i (T_i, D); NaN = not observed
    rec.y, rec.mask, rec.lengths                                   # (B, T_max, D), (B, T_max, D) bool, (B,)
    train, test = rec.split(0.2, seed=0)                           # trials, at random
    held_in, targets = test.hold_out_channels([3, 7])              # co-smoothing: hide channels 3 and 7

``mask[b, t, d]`` is True where ``y[b, t, d]`` was observed. It is False on the trailing padding of a trial
shorter than ``T_max`` (``t >= lengths[b]``), on missing bins (NaN in the input, a unit outside its
observation intervals), on channels a session did not record, and on held-out channels. Masked
entries of ``y`` hold 0 and are never read by a likelihood: a masked entry contributes nothing, and a
time step with no observed channel leaves only the dynamics (a step of the prior). Inputs ``u`` have no
mask: they are known at every step of a trial (zeros on the padding).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .validation import check_positive

__all__ = ["Recording", "equal_length_windows", "observed_entries", "session_blocks", "steps_within"]

Index = Union[int, slice, Sequence[int], np.ndarray, Tensor]


def steps_within(lengths: Tensor, num_steps: int) -> Tensor:
    """``(..., num_steps)`` bool: True at the steps ``t < lengths`` of each (padded) trial, ``lengths (...)``."""
    return torch.arange(num_steps, device=lengths.device) < lengths.unsqueeze(-1)


def observed_entries(y: Tensor, mask: Optional[Tensor], lengths: Optional[Tensor]) -> Optional[Tensor]:
    """``(trials, T, D)`` bool: ``mask`` and, with ``lengths (trials,)``, only the steps ``t < lengths`` (None: all)."""
    if lengths is None:
        return mask
    within = steps_within(lengths.to(y.device), y.shape[-2]).unsqueeze(-1)
    return within.expand(y.shape) if mask is None else mask & within


def equal_length_windows(y: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """The steps within each ragged trial of ``y (B, T_max, D)`` (``t < lengths[b]``) cut into consecutive windows
    of the shortest trial's length W, the remainder of each trial dropped: ``(N, W, D)``. A start for an
    initialization written for equal-length trials; ``y`` itself when ``lengths`` is None."""
    if lengths is None:
        return y
    width = int(lengths.min())
    windows = [y[b, start : start + width] for b in range(y.shape[0]) for start in range(0, int(lengths[b]) - width + 1, width)]
    return torch.stack(windows)


def session_blocks(session: Optional[Tensor], mask: Optional[Tensor]) -> Optional[list[tuple[Tensor, Tensor]]]:
    """``[(trials of session s, channels it recorded), ...]`` when several sessions recorded disjoint channel sets
    (``Recording.from_sessions`` without matching), None otherwise. ``session (trials,)``, ``mask (trials, T, D)``."""
    if session is None or mask is None or len(torch.unique(session)) < 2:
        return None
    blocks = []
    for s in torch.unique(session):
        trials = torch.nonzero(session == s).flatten()
        blocks.append((trials, torch.nonzero(mask[trials].flatten(0, 1).any(0)).flatten()))
    channels = torch.cat([block[1] for block in blocks])
    return blocks if len(torch.unique(channels)) == len(channels) else None


@dataclass(frozen=True)
class Recording:
    """Padded trials with their observation mask (see the module docstring).

    Attributes:
        y: ``(B, T_max, D)`` float, finite, 0 where ``mask`` is False.
        mask: ``(B, T_max, D)`` bool, True = observed.
        lengths: ``(B,)`` int64, the time steps of each trial (``1 <= lengths <= T_max``).
        u: ``(B, T_max, M)`` inputs, or None.
        session: ``(B,)`` int64 session of each trial (0 for a single session).
        bin_size: seconds per time step.
        channel_names: ``D`` names.
        trial_info: per-trial table, ``{column: array (B,)}`` (conditions, event times in seconds, ...).
    """

    y: Tensor
    mask: Tensor
    lengths: Tensor
    u: Optional[Tensor] = None
    session: Optional[Tensor] = None
    bin_size: float = 1.0
    channel_names: tuple = ()
    trial_info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not (isinstance(self.y, Tensor) and self.y.dim() == 3 and self.y.is_floating_point()):
            raise ValueError(f"y must be a float tensor (trials, T_max, channels), got {_describe(self.y)}")
        num_trials, max_length, num_channels = self.y.shape
        if not (isinstance(self.mask, Tensor) and self.mask.dtype == torch.bool and self.mask.shape == self.y.shape):
            raise ValueError(f"mask must be a bool tensor of y's shape {tuple(self.y.shape)}, got {_describe(self.mask)}")
        lengths = torch.as_tensor(self.lengths, dtype=torch.int64)
        if lengths.shape != (num_trials,) or bool((lengths < 1).any()) or bool((lengths > max_length).any()):
            raise ValueError(f"lengths must be (trials,) = ({num_trials},) integers in [1, {max_length}], got {lengths.tolist()}")
        object.__setattr__(self, "lengths", lengths.to(self.y.device))
        if self.u is not None and (self.u.dim() != 3 or self.u.shape[:2] != self.y.shape[:2]):
            raise ValueError(f"u must be (trials, T_max, inputs) matching y's {tuple(self.y.shape[:2])}, got {tuple(self.u.shape)}")
        session = torch.zeros(num_trials, dtype=torch.int64) if self.session is None else torch.as_tensor(self.session, dtype=torch.int64)
        if session.shape != (num_trials,) or bool((session < 0).any()):
            raise ValueError(f"session must hold (trials,) = ({num_trials},) non-negative integer ids, got shape {tuple(session.shape)}")
        object.__setattr__(self, "session", session.to(self.y.device))
        object.__setattr__(self, "bin_size", check_positive(self.bin_size, "bin_size"))
        names = tuple(self.channel_names) or tuple(f"ch{d}" for d in range(num_channels))
        if len(names) != num_channels:
            raise ValueError(f"channel_names must have one name per channel ({num_channels}), got {len(names)}")
        object.__setattr__(self, "channel_names", names)
        info = {key: np.asarray(value) for key, value in self.trial_info.items()}
        for key, value in info.items():
            if value.shape[:1] != (num_trials,):
                raise ValueError(f"trial_info[{key!r}] must have one entry per trial ({num_trials}), got shape {value.shape}")
        object.__setattr__(self, "trial_info", info)
        self._check_observed()

    def _check_observed(self) -> None:
        if bool((self.mask & ~self.time_mask.unsqueeze(-1)).any()):
            raise ValueError("mask marks entries after the end of their trial (t >= lengths) as observed")
        if not bool(torch.isfinite(self.y).all()):
            raise ValueError("y holds NaN or infinite values (a missing entry is 0 in y and False in mask)")
        empty = (~self.mask.flatten(1).any(1)).nonzero().flatten()
        if len(empty):
            raise ValueError(f"trial {int(empty[0])} has no observed bin ({len(empty)} such trial(s)): drop it or unmask it")

    # ----- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_trials(
        cls,
        trials: Sequence[Any],
        *,
        inputs: Optional[Sequence[Any]] = None,
        masks: Optional[Sequence[Any]] = None,
        session: Any = None,
        bin_size: float = 1.0,
        channel_names: Sequence[str] = (),
        trial_info: Optional[dict] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> "Recording":
        """Pad a list of trials ``y_i (T_i, D)`` (NaN = not observed) into a :class:`Recording`.

        ``inputs``: a list of ``(T_i, M)`` arrays; ``masks``: a list of ``(T_i, D)`` bool arrays (False =
        not observed, combined with the NaNs); ``session``: ``(B,)`` ids; ``dtype``: of ``y`` and ``u``
        (default torch's)."""
        arrays = [_as_2d(trial, f"trials[{i}]") for i, trial in enumerate(trials)]
        if not arrays:
            raise ValueError("trials is empty: give at least one (T, D) array")
        num_channels = arrays[0].shape[1]
        for i, array in enumerate(arrays):
            if array.shape[1] != num_channels:
                raise ValueError(f"trials[{i}] has {array.shape[1]} channels, trials[0] has {num_channels}")
        lengths = [array.shape[0] for array in arrays]
        given_masks = [None] * len(arrays) if masks is None else [np.asarray(m, dtype=bool) for m in masks]
        if len(given_masks) != len(arrays):
            raise ValueError(f"masks has {len(given_masks)} entries for {len(arrays)} trials")
        for i, (array, mask) in enumerate(zip(arrays, given_masks)):
            if mask is not None and mask.shape != array.shape:
                raise ValueError(f"masks[{i}] has shape {mask.shape}, trials[{i}] has {array.shape}")
        observed = [~np.isnan(a) if m is None else (~np.isnan(a) & m) for a, m in zip(arrays, given_masks)]
        y = _pad([np.where(o, a, 0.0) for a, o in zip(arrays, observed)], max(lengths), dtype)
        mask = _pad(observed, max(lengths), torch.bool)
        u = None
        if inputs is not None:
            u_arrays = [_as_2d(x, f"inputs[{i}]") for i, x in enumerate(inputs)]
            if [x.shape[0] for x in u_arrays] != lengths or np.isnan(np.concatenate([x.ravel() for x in u_arrays])).any():
                raise ValueError("inputs must be one finite (T_i, M) array per trial, with the trials' lengths")
            u = _pad(u_arrays, max(lengths), dtype)
        return cls(y, mask, torch.tensor(lengths), u, None if session is None else torch.as_tensor(session), bin_size,
                   tuple(channel_names), dict(trial_info or {}))  # fmt: skip

    @classmethod
    def from_sessions(cls, sessions: Sequence["Recording"], *, match_channels: bool = False) -> "Recording":
        """Several sessions' Recordings as one: all their trials, ``session`` each trial's index in ``sessions``.

        Channels: by default each session's own, side by side (``D = sum of D_s``; names ``session{s}/{name}``),
        masked in the other sessions' trials, so a model's readout and encoder input weights of those columns
        are that session's alone while its dynamics are shared; with ``match_channels=True`` a channel is
        identified by its name (``channel_names``, or its index when a session has none), so sessions that
        recorded the same channels share their columns (the union of names, in order of first appearance).
        Inputs must be present in every session or in none; ``trial_info`` keeps the keys all sessions have."""
        sessions = list(sessions)
        if not sessions:
            raise ValueError("sessions is empty: give at least one Recording")
        for index, rec in enumerate(sessions):
            if not isinstance(rec, Recording):
                raise TypeError(f"sessions[{index}] must be a Recording, got {type(rec).__name__}")
        if len({rec.u is None for rec in sessions}) > 1:
            raise ValueError("inputs were found in some sessions and not in others")
        columns, names = [], []
        for index, rec in enumerate(sessions):
            own = list(rec.channel_names) or [str(d) for d in range(rec.num_channels)]
            own = own if match_channels else [f"session{index}/{name}" for name in own]
            names.extend(name for name in own if name not in names)
            columns.append(torch.tensor([names.index(name) for name in own]))
        length = max(int(rec.y.shape[1]) for rec in sessions)
        wide = [rec.y.new_zeros(rec.num_trials, length, len(names)) for rec in sessions]
        wide_mask = [torch.zeros(rec.num_trials, length, len(names), dtype=torch.bool, device=rec.y.device) for rec in sessions]
        for rec, y, mask, column in zip(sessions, wide, wide_mask, columns):
            y[:, : rec.y.shape[1], column] = rec.y
            mask[:, : rec.y.shape[1], column] = rec.mask
        u = None
        if sessions[0].u is not None:
            u = torch.cat([torch.nn.functional.pad(rec.u, (0, 0, 0, length - rec.u.shape[1])) for rec in sessions])
        info_keys = set.intersection(*(set(rec.trial_info) for rec in sessions))
        info = {key: np.concatenate([np.asarray(rec.trial_info[key]) for rec in sessions]) for key in sorted(info_keys)}
        session = torch.cat([torch.full((rec.num_trials,), index, dtype=torch.int64) for index, rec in enumerate(sessions)])
        return cls(torch.cat(wide), torch.cat(wide_mask), torch.cat([rec.lengths for rec in sessions]), u, session,
                   sessions[0].bin_size, tuple(names), info)  # fmt: skip

    # ----- views ----------------------------------------------------------------------------------------
    @property
    def num_trials(self) -> int:
        return self.y.shape[0]

    @property
    def num_channels(self) -> int:
        return self.y.shape[2]

    @property
    def time_mask(self) -> Tensor:
        """``(B, T_max)`` bool: True within each trial (``t < lengths[b]``), False on the padding."""
        return steps_within(self.lengths, self.y.shape[1])

    def __len__(self) -> int:
        return self.num_trials

    def __getitem__(self, index: Index) -> "Recording":
        """The trials at ``index`` (int, slice, indices or bool mask), padded to their own longest trial."""
        rows = torch.arange(self.num_trials)[torch.as_tensor(index) if not isinstance(index, (int, slice)) else index]
        rows = rows.reshape(-1)
        if len(rows) == 0:
            raise ValueError("index selects no trial")
        keep = int(self.lengths[rows].max())
        pick = rows.to(self.y.device)
        return replace(
            self,
            y=self.y[pick, :keep],
            mask=self.mask[pick, :keep],
            lengths=self.lengths[pick],
            u=None if self.u is None else self.u[pick, :keep],
            session=self.session[pick],
            trial_info={key: value[rows.numpy()] for key, value in self.trial_info.items()},
        )

    def trial(self, index: int) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """Trial ``index`` without its padding: ``y (T_i, D)``, ``mask (T_i, D)``, ``u (T_i, M)`` or None."""
        length = int(self.lengths[index])
        return self.y[index, :length], self.mask[index, :length], None if self.u is None else self.u[index, :length]

    def split(self, test_fraction: float = 0.2, *, seed: Optional[int] = 0) -> tuple["Recording", "Recording"]:
        """``(train, test)`` trials, the test trials drawn at random (``seed``; None: the last trials); the
        indices are :meth:`split_indices`'s."""
        train, test = self.split_indices(test_fraction, seed=seed)
        return self[train], self[test]

    def split_indices(self, test_fraction: float = 0.2, *, seed: Optional[int] = 0) -> tuple[np.ndarray, np.ndarray]:
        """Sorted trial indices ``(train, test)`` of :meth:`split`."""
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        num_test = int(round(test_fraction * self.num_trials))
        if not 0 < num_test < self.num_trials:
            raise ValueError(f"test_fraction = {test_fraction} of {self.num_trials} trials leaves an empty train or test set")
        order = np.arange(self.num_trials) if seed is None else np.random.default_rng(seed).permutation(self.num_trials)
        test = np.sort(order[self.num_trials - num_test :])
        return np.setdiff1d(np.arange(self.num_trials), test), test

    def hold_out_channels(self, channels: Sequence[int]) -> tuple["Recording", Tensor]:
        """Hide ``channels`` (indices into D) in every trial: ``(held_in, targets)``, the recording with those
        channels masked, and ``targets (B, T_max, D)`` bool, the observed entries that were hidden (what a
        co-smoothing score evaluates)."""
        channels = torch.as_tensor(list(channels), dtype=torch.int64)
        if len(channels) == 0 or bool((channels < 0).any()) or bool((channels >= self.num_channels).any()):
            raise ValueError(f"channels must be indices in [0, {self.num_channels}), got {channels.tolist()}")
        hidden = torch.zeros(self.num_channels, dtype=torch.bool, device=self.y.device)
        hidden[channels.to(self.y.device)] = True
        if bool(hidden.all()):
            raise ValueError("holding out every channel leaves nothing to predict from")
        targets = self.mask & hidden
        return replace(self, y=torch.where(targets, torch.zeros_like(self.y), self.y), mask=self.mask & ~hidden), targets

    def to(self, device: Any = None, dtype: Optional[torch.dtype] = None) -> "Recording":
        """The same recording with ``y`` and ``u`` in ``dtype`` and every tensor on ``device``."""
        return replace(
            self,
            y=self.y.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            lengths=self.lengths.to(device=device),
            u=None if self.u is None else self.u.to(device=device, dtype=dtype),
            session=self.session.to(device=device),
        )


def _describe(value: Any) -> str:
    return f"{type(value).__name__} of shape {tuple(value.shape)}, dtype {value.dtype}" if isinstance(value, Tensor) else repr(type(value))


def _as_2d(data: Any, name: str) -> np.ndarray:
    array = np.asarray(data.detach().cpu() if isinstance(data, Tensor) else data)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a (T, channels) array with T >= 1, got shape {array.shape}")
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values (NaN marks a missing value; inf is an error)")
    return array


def _pad(arrays: list, length: int, dtype: Optional[torch.dtype]) -> Tensor:
    """Stack ``(T_i, C)`` arrays into ``(B, length, C)``, zeros (False) after each trial's end."""
    dtype = dtype or torch.get_default_dtype()
    out = torch.zeros((len(arrays), length, arrays[0].shape[1]), dtype=dtype)
    for i, array in enumerate(arrays):
        out[i, : array.shape[0]] = torch.as_tensor(array, dtype=dtype)
    return out


