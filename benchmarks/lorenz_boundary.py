"""Where the switching-Lorenz lobe label and the models' own likelihood disagree: the switch at each crossing.

Switching Lorenz labels a step by the lobe it is in, the sign of x (``pyro_neurodyn.data.switching_lorenz``).
A two-state dynamics model finds the lobes, but the held-out accuracy of every model fit by its likelihood
stops at 0.945-0.98: the errors sit at the lobe crossings, mostly one step *early* (the model is in the new
lobe's state while x still has the old sign). This script measures whether that is a failure of the fit or a
property of the objective, by giving the models the true labels.

For each data seed (``switching_lorenz(16, 200, seed)``, trial 0 held out, trials 1-15 fit):

* ARHMM (``AutoregressiveHMM(2, 3, covariance="full")``, the SRNN's default labeller), exact EM:
  ``default``: the default start (k-means and restarts); ``EM from truth``: EM started from the true training
  labels; ``MLE given truth``: one M step from the true labels, i.e. the parameters that are the maximum
  likelihood estimate *given* the true segmentation. Printed: ``log p(y_train)`` (exact), held-out accuracy of the
  Viterbi path, and its training errors split into ``early`` / ``late`` (within 3 steps before / at or after a
  crossing) and ``other``.
* With ``--srnn``: the SRNN with default ``fit(y)`` (ARHMM labels for the first ``LABEL_WARM_UP_STEPS`` = 200
  steps); with ARHMM labels for all 1000 steps (``label_steps=1000``, the default before); with the true labels
  for all steps (``init=truth, label_steps=1000``); and with the true labels for the first 200 steps only
  (``init=truth``). Printed: held-out accuracy and the importance-weighted log evidence (``log_evidence``, 100
  particles) of the training trials and of the held-out trial.

    python benchmarks/lorenz_boundary.py [--seeds 0 1 2 3 4] [--srnn] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pyro_neurodyn.data import switching_lorenz
from pyro_neurodyn.demo import relabel
from pyro_neurodyn.estimators import SRNN
from pyro_neurodyn.metrics import state_accuracy
from pyro_neurodyn.models import AutoregressiveHMM

NEAR_CROSSING = 3  # an error this many steps or fewer from a crossing counts as early / late
SRNN_STEPS = 1000  # fit's default num_steps


def crossing_errors(truth: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Errors of ``pred (trials, T)`` (matched to ``truth``) by their place relative to the nearest crossing:
    ``early`` before it (already in the new state), ``late`` at or after it, ``other`` farther than
    ``NEAR_CROSSING`` steps."""
    counts = {"early": 0, "late": 0, "other": 0}
    for true_trial, pred_trial in zip(truth, pred):
        crossings = np.flatnonzero(np.diff(true_trial)) + 1  # first step in the new lobe
        for step in np.flatnonzero(true_trial != pred_trial):
            distance = crossings - step
            nearest = distance[np.argmin(np.abs(distance))] if len(distance) else None
            if nearest is None or abs(nearest) > NEAR_CROSSING:
                counts["other"] += 1
            else:
                counts["early" if nearest > 0 else "late"] += 1
    return counts


def arhmm_rows(y_train, truth_train, y_test, truth_test) -> dict[str, dict]:
    """The three ARHMM variants' log p(y_train), held-out accuracy and training crossing errors."""
    variants = {
        "default": {},
        "EM from truth": {"init": truth_train, "num_restarts": 1},
        "MLE given truth": {"init": truth_train, "num_restarts": 1, "num_iters": 1},
    }
    rows = {}
    for label, options in variants.items():
        arhmm = AutoregressiveHMM(2, y_train.shape[-1], covariance="full")
        arhmm.fit_em(y_train, seed=0, **options)
        train_states = arhmm.most_likely_states(y_train)
        rows[label] = {
            "log_p_train": float(arhmm.log_likelihood(y_train).sum()),
            "accuracy": state_accuracy(truth_test, arhmm.most_likely_states(y_test)),
            "train_accuracy": state_accuracy(truth_train, train_states),
            **crossing_errors(truth_train.numpy(), relabel(train_states.numpy(), truth_train.numpy())),
        }
    return rows


def srnn_rows(y_train, truth_train, y_test, truth_test) -> dict[str, dict]:
    """The SRNN anchored to ARHMM labels or to the truth, as a warm-up (the default) or for the whole fit."""
    variants = {
        "default": {},
        "ARHMM, all steps": {"label_steps": SRNN_STEPS},
        "truth, all steps": {"init": truth_train, "label_steps": SRNN_STEPS},
        "truth, warm-up": {"init": truth_train},
    }
    rows = {}
    for label, options in variants.items():
        model = SRNN(num_states=2, latent_dim=3, obs_dim=y_train.shape[-1])
        start = time.perf_counter()
        model.fit(y_train, progress=False, **options)
        with torch.no_grad():
            rows[label] = {
                "accuracy": state_accuracy(truth_test, model.most_likely_states(y_test)),
                "log_evidence_train": float(model.log_evidence(y_train, num_particles=100, seed=0).sum()),
                "log_evidence_test": float(model.log_evidence(y_test, num_particles=100, seed=0).sum()),
                "fit_s": time.perf_counter() - start,
            }
    return rows


def print_rows(title: str, rows: dict[str, dict]) -> None:
    print(title)
    for label, row in rows.items():
        cells = "  ".join(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}" for key, value in row.items())
        print(f"  {label:18s} {cells}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--srnn", action="store_true", help="also fit the four SRNN variants (about 40 s each)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for seed in args.seeds:
        data = switching_lorenz(16, 200, seed=seed)
        y, states = data.y, data.states
        split = (y[1:], states[1:], y[:1], states[:1])
        results[seed] = {"ARHMM": arhmm_rows(*split)}
        print_rows(f"data seed {seed}, ARHMM", results[seed]["ARHMM"])
        if args.srnn:
            results[seed]["SRNN"] = srnn_rows(*split)
            print_rows(f"data seed {seed}, SRNN", results[seed]["SRNN"])
    if args.json:
        with open(args.json, "x") as handle:
            json.dump(results, handle, indent=1)
    return results


if __name__ == "__main__":
    main()
