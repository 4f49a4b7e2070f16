# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Your own recording: from NWB files to states, flow fields and checks
#
# Real recordings arrive as Neurodata Without Borders (NWB) files: spike times of sorted units, a trials
# table with event times, trials of different lengths, units that were not isolated for the whole session,
# and several sessions that saw different neurons of the same circuit. This tutorial writes two such
# sessions from a simulated experiment, reads them back with `load_nwb_sessions`, and fits one SRNN to both:
# shared dynamics, each session's neurons read out by their own rows of the readout (the other session's
# neurons are masked in its trials). Then: states, each state's flow field, posterior predictive checks,
# and co-smoothing (rates of held-out neurons predicted from the others, in bits per spike).

# %%
import os
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pynwb import NWBHDF5IO, NWBFile

from pyro_neurodyn import SRNN
from pyro_neurodyn.analysis import flow_field, pca_plane
from pyro_neurodyn.data import load_nwb_sessions, rotation_switching_data
from pyro_neurodyn.metrics import co_smoothing_bits_per_spike, state_accuracy
from pyro_neurodyn.plots import plot_flow_field, plot_ppc_rootogram
from pyro_neurodyn.predictive import posterior_predictive, to_arviz

FAST = os.environ.get("NEURODYN_TUTORIAL_FAST") == "1"
FIGURES = Path(os.environ.get("NEURODYN_TUTORIAL_OUTPUT", "figures")) / "06_your_own_recording"
FIGURES.mkdir(parents=True, exist_ok=True)
pyro.set_rng_seed(0)

# %% [markdown]
# ## A simulated experiment, written as NWB
#
# Thirty neurons fire with rates `softplus(C x_t + d)` driven by a 2-D latent that rotates clockwise in one
# regime and counter-clockwise in the other (the regimes differ only in their dynamics). Session A records
# neurons 0-19, session B neurons 10-29; every trial lasts 100-200 bins of 20 ms; in session A, neuron 0
# was lost for a while (its `obs_intervals` leave a gap). The spikes of a bin are placed at random times
# inside it, as a spike sorter would report them.

# %%
BIN = 0.02
num_trials = 10 if FAST else 48  # per session
experiment = rotation_switching_data(num_trials=2 * num_trials, num_steps=200, obs_dim=30, observation="poisson", seed=0)
rng = np.random.default_rng(0)
lengths = rng.integers(100, 201, size=2 * num_trials)


def write_session(path: Path, trials: range, neurons: range, gap: bool) -> None:
    nwbfile = NWBFile(session_description="simulated rotation task", identifier=path.stem,
                      session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))  # fmt: skip
    starts = np.cumsum(np.concatenate([[0.0], (lengths[list(trials)] * BIN + 1.0)[:-1]]))  # 1 s between trials
    nwbfile.add_trial_column("direction", "0: clockwise first, 1: counter-clockwise first (the true first state)")
    for start, b in zip(starts, trials):
        nwbfile.add_trial(start_time=start, stop_time=start + lengths[b] * BIN, direction=int(experiment.states[b, 0]))
    session_end = starts[-1] + lengths[trials[-1]] * BIN + 1.0
    for neuron in neurons:
        spike_times = []
        for start, b in zip(starts, trials):
            counts = experiment.y[b, : lengths[b], neuron].numpy().astype(int)
            bins = np.repeat(np.arange(lengths[b]), counts)
            spike_times.append(start + (bins + rng.random(len(bins))) * BIN)
        lost = gap and neuron == neurons[0]  # unit lost for the middle third of the session
        intervals = [[0.0, session_end / 3], [2 * session_end / 3, session_end]] if lost else [[0.0, session_end]]
        nwbfile.add_unit(id=neuron, spike_times=np.sort(np.concatenate(spike_times)), obs_intervals=intervals)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


folder = FIGURES / "nwb"
folder.mkdir(exist_ok=True)
paths = [folder / "session_a.nwb", folder / "session_b.nwb"]
write_session(paths[0], range(0, num_trials), range(0, 20), gap=True)
write_session(paths[1], range(num_trials, 2 * num_trials), range(10, 30), gap=False)
print("wrote", [p.name for p in paths])

# %% [markdown]
# ## Reading it back
#
# `load_nwb_sessions` bins each file's units into counts (a unit outside its observation intervals is
# masked, not zero) and cuts the trials table into ragged trials. The two files give their units the ids of
# the array's neurons, so `match_channels=True` lines them up by name: 30 channels, neurons 10-19 seen in
# both sessions, the others masked where a session did not record them. (Without it, each session's
# channels stay apart; sessions that share no channel at all leave the latent space's orientation free
# per session, which no model can undo.)

# %%
recording = load_nwb_sessions(paths, BIN, match_channels=True)
print("y", tuple(recording.y.shape), " lengths", recording.lengths.min().item(), "-", recording.lengths.max().item(),
      f" observed {recording.mask.float().mean():.2f} of the padded entries", " sessions", recording.session.unique().tolist())  # fmt: skip
true_states = torch.cat([experiment.states[:num_trials], experiment.states[num_trials:]])  # trial order of the files
train_index, test_index = recording.split_indices(0.25, seed=0)
train, test = recording[train_index], recording[test_index]

# %% [markdown]
# ## One SRNN for both sessions
#
# The same call as for an array: `fit` takes the Recording, scores only observed entries, and runs each
# trial's dynamics to its own end. The default start labels come from an autoregressive HMM (here on
# interpolated, PCA-projected square-root counts of windows as long as the shortest trial).

# %%
model = SRNN(num_states=2, latent_dim=2, observation="poisson", seed=0)
model.fit(train, num_steps=200 if FAST else 1000, progress=False, seed=0)
states = model.most_likely_states(test)  # (trials, T_max), -1 on the padding
within = test.time_mask
accuracy = state_accuracy(true_states[test_index, : states.shape[1]][within], states[within])
print(f"held-out state accuracy (Hungarian-matched, observed steps): {accuracy:.3f}")

# %% [markdown]
# ## What each state does
#
# The flow field `f_k(h) - h` of each state's RNN on the plane of the posterior latents of a held-out trial,
# with the trial's path drawn where the model puts it in that state. (In the full run the encoder's mean path
# of that trial lies almost on one line, so the rotations the teacher has are hard to see on this plane: the
# states are told apart at 0.97 all the same. Reading a dynamics model's flow off a plane of its latents is
# only as good as the latents' spread.)

# %%
latents = model.posterior_latents(test)[0, : int(test.lengths[0])]
plane = pca_plane(latents)
coords = plane.project(latents).numpy()
span = float(np.abs(coords).max() * 1.3)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
shown = states[0, : int(test.lengths[0])].numpy()
for k, ax in enumerate(axes):
    field = flow_field(model.module.dynamics.state_map(k), plane, (-span, span, -span, span))
    plot_flow_field(ax, field, trajectories=[np.where((shown == k)[:, None], coords, np.nan)], title=f"RNN of state {k}")
fig.tight_layout()
fig.savefig(FIGURES / "flow_fields.png", dpi=110)

# %% [markdown]
# ## Posterior predictive checks
#
# Replicated recordings from the posterior given each held-out trial, compared with the recorded counts;
# missing entries and padding are NaN in the ArviZ tree and left out of the plot.

# %%
result = posterior_predictive(model, test, num_samples=20 if FAST else 100, seed=0)
tree = to_arviz(result, test, channel_names=test.channel_names)
fig = plot_ppc_rootogram(tree)
fig.savefig(FIGURES / "rootogram.png", dpi=110)

# %% [markdown]
# ## Co-smoothing
#
# The Neural Latents Benchmark's test of a latent model: hide some neurons in the held-out trials, infer
# the latents from the others, and score the rates predicted for the hidden ones (bits per spike over each
# neuron's mean rate; 0 = no better than a constant).

# %%
heldout = [2, 5, 14, 25]  # two of session A's own, one shared, one of session B's own
held_in, targets = test.hold_out_channels(heldout)
rates = model.reconstruct(held_in)  # (trials, T, 30), NaN on the padding
co_bps = co_smoothing_bits_per_spike(rates, test, heldout)
print(f"co-smoothing: {co_bps:.3f} bits per spike on {int(targets.sum())} held-out entries")

# %% [markdown]
# ## Headline numbers
#
# The SRNN recovers the rotation direction of held-out trials from two sessions of ragged, partly missing
# recordings (full run: accuracy 0.973, fast run 0.976; a mixture model without dynamics is at chance on
# such data: Gaussian-HMM and k-means labels of this recording score 0.50), and the full run predicts hidden
# neurons slightly better than their mean rate (co-bps 0.012; the fast run's shorter fit: -0.04).

# %%
# bounds: fast mode measured 0.976 / 0.961 / 0.971 over fit seeds 0 / 1 / 2, full mode 0.973 (seed 0); both leave a wide margin
assert accuracy >= (0.75 if FAST else 0.9), accuracy
if not FAST:  # a 200-step fit has not learned the held-out neurons' readout yet
    assert co_bps > 0.0, co_bps
print("ok")
