r"""Minibatches of random windows: fit a sequence model to long trials (an hour-long recording) W steps at a time.

Each step draws ``batch_size`` windows of ``window`` = W consecutive steps, uniformly among all windows
that lie inside a trial (trial b, of length L_b, holds ``L_b - W + 1`` of them), and gives the fit those
windows as if they were trials. A sequence model's ELBO on a window treats its first step as a start
(``p(z_1)``, ``p(h_1 | z_1)``): the usual approximation of training recurrent models on cut sequences
(the SRNN paper fits windows of its long trials), which costs a little at each window's first steps and
makes every step O(batch W) in time and memory, whatever T.

The model and guide are scaled by ``sum_b L_b / (batch_size W)``, the number of windows that tile the
data per window drawn, so the loss estimates the whole data's (up to the cuts). The draws come from
torch's global RNG, which a fit's checkpoints save and restore: a resumed fit draws the same windows.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..data.validation import check_count

__all__ = ["RandomWindows"]


class RandomWindows:
    """Random windows as minibatches, with the interface of ``fit_run.Minibatches`` (``next``, ``scale``, ``num_trials``).

    Args:
        lengths: ``(trials,)`` steps of each trial (all T for equal-length trials).
        window: W, steps per window; at most the shortest trial (a ValueError naming ``window`` otherwise).
        batch_size: windows per step.
    """

    def __init__(self, lengths: Tensor, window: int, batch_size: int):
        self.window = check_count(window, "window", minimum=2)
        self.batch_size = check_count(batch_size, "batch_size")
        lengths = torch.as_tensor(lengths, dtype=torch.int64)
        short = (lengths < self.window).nonzero().flatten()
        if len(short):
            raise ValueError(
                f"window ({self.window} steps) is longer than trial {int(short[0])} ({int(lengths[short[0]])} steps; "
                f"{len(short)} such trial(s)): choose window <= {int(lengths.min())} or drop the short trials"
            )
        self.lengths = lengths
        self.num_trials = len(lengths)
        self.starts_per_trial = (lengths - self.window + 1).to(torch.get_default_dtype())
        self.scale = float(lengths.sum()) / (self.batch_size * self.window)
        self.order, self.position = torch.zeros(0, dtype=torch.long), 0  # what a checkpoint stores of a Minibatches

    def draw(self) -> tuple[Tensor, Tensor]:
        """The next windows: ``trial (batch_size,)`` and ``start (batch_size,)`` int64, uniform over all windows."""
        trial = torch.multinomial(self.starts_per_trial, self.batch_size, replacement=True)
        start = (torch.rand(self.batch_size) * self.starts_per_trial[trial]).long()
        return trial, start

    def next(self, data: Sequence[Optional[Tensor]]) -> list[Optional[Tensor]]:
        """The arguments of the next step: every tensor of ``data`` with a time dim, ``(trials, T, ...)``, cut to the
        windows, ``(batch_size, W, ...)``; per-trial ``(trials,)`` entries (the lengths) become None, since every
        window lies inside its trial; None entries stay None."""
        trial, start = self.draw()
        steps = start.unsqueeze(-1) + torch.arange(self.window)  # (batch, W)
        out: list[Optional[Tensor]] = []
        for x in data:
            if x is None or x.dim() < 2:
                out.append(None)
            else:
                out.append(x[trial.to(x.device).unsqueeze(-1), steps.to(x.device)])
        return out
