"""Fit checkpoints and a saved model written by pyro_neurodyn before torch.optim (commit 141a21b), whose
optimizer state is pyro.optim's: one torch state dict per parameter, keyed by param-store names.

    PYTHONPATH=. python tests/data/legacy_optimizer_state/make_legacy_files.py tests/data/legacy_optimizer_state

(from the repository root at commit 141a21b, one torch thread; later code has no pyro.optim state to write).
"""

import os
import sys
from pathlib import Path

import torch

import pyro_neurodyn
from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
from pyro_neurodyn.infer import svi_loop


class Stop(Exception):
    """Raised in place of an SVI step: the fit ends there, its file holding the last periodic checkpoint."""


def interrupted(path: Path, fit, num_steps: int) -> None:
    """``fit(checkpoint=path, checkpoint_every=4)`` stopped after ``num_steps`` SVI steps (over all phases)."""
    original, count = svi_loop.GuardedSVI.step, [0]

    def step(self, *args, **kwargs):
        if count[0] == num_steps:
            raise Stop
        count[0] += 1
        return original(self, *args, **kwargs)

    svi_loop.GuardedSVI.step = step
    try:
        fit(checkpoint=path, checkpoint_every=4)
    except Stop:
        pass
    finally:
        svi_loop.GuardedSVI.step = original


def srnn_fit(**options):
    y = switching_lorenz(4, 30, seed=1).y  # labels 6 steps, free 6 steps, filter 6 steps
    SRNN(2, 3, 3, encoder_hidden=8, seed=7).fit(y, num_steps=12, label_steps=6, filter_steps=6, init="kmeans", seed=11, progress=False, **options)


def lowrank_fit(num_steps: int = 14, **options):
    y = gaussian_oscillator_data(12, 20, seed=3).y  # 2 steps per epoch of 5-trial batches
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7)
    return rnn.fit(y, num_particles=4, num_steps=num_steps, batch_size=5, optimizer="radam", seed=11, progress=False, **options)


def switching_fit(**options):
    y = switching_lowrank_data(4, 30, seed=0).y
    SwitchingLowRankRNN(20, 2, 2, 8, encoder_hidden=8, seed=7).fit(y, "vsmc", num_steps=10, num_particles=4, seed=11, **options)


def main(folder: Path) -> None:
    assert pyro_neurodyn.__file__.startswith(os.getcwd()), f"run from the repository root with PYTHONPATH=.: imported {pyro_neurodyn.__file__}"
    torch.set_num_threads(1)
    interrupted(folder / "srnn_free_phase.ckpt", srnn_fit, 11)  # checkpoint at the free phase's step 4
    interrupted(folder / "srnn_filter_phase.ckpt", srnn_fit, 17)  # checkpoint at the filter phase's step 4
    interrupted(folder / "lowrank_rnn.ckpt", lowrank_fit, 10)  # checkpoint at step 8, inside the 4th epoch
    lowrank_fit(num_steps=6).save(folder / "lowrank_rnn_model.ckpt")  # with the moments a later fit continues from
    interrupted(folder / "switching_lowrank_rnn.ckpt", switching_fit, 6)  # checkpoint at step 4


if __name__ == "__main__":
    main(Path(sys.argv[1]))
