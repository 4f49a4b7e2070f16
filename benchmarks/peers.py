"""The switching baselines of ``switching_baselines.py``, fit by their reference implementations.

The same comparison as ``benchmarks/switching_baselines.py`` (its data sets, its split: trial 0
held out, trials 1-15 fit; its scores: held-out Hungarian state accuracy of the Viterbi path via
``metrics.state_accuracy``, k-step forecast R^2 / MSE for k = 1, 5, 10, 20 via
``metrics.k_step_forecast`` at origins 49, 59, ..., 179, D_stsp against 50 generated trials, fit wall
time), run for the peer packages that are installed in the environment this script is started in.
The data loading, the scoring and the table cells are imported from ``switching_baselines.py``.
Peers that are absent are skipped with a note on how to install them. Two states throughout.

Peers (rows of the tables):

* ``ssm ARHMM``        lindermanlab/ssm ``HMM(K, D, observations="ar")`` (lag 1, full noise
  covariance), ``fit(method="em", num_iters=100)``; Viterbi ``most_likely_states``. Forecast: the
  exact mean ``E[y_{t+h} | y_{1:t}]`` from its parameters (``state_belief_ar_forecast`` below) with
  the filtered belief ``p(z_t | y_{1:t})`` = the last row of ``expected_states(prefix)``.
* ``ssm rSLDS``        ``SLDS(D, K, P, transitions="recurrent_only", dynamics="diagonal_gaussian",
  emissions="gaussian_orthog")`` (``--ssm-transitions`` / ``--ssm-dynamics`` / ``--ssm-emissions`` change
  them; ssm's orthogonal readout needs D > P, so 3-D Lorenz with P = 3 gets ``"gaussian_id"``,
  x observed in Gaussian noise; with ``"gaussian"``, a free PCA-initialized readout, its Laplace EM
  stopped on a non-finite expected log joint on Lorenz seed 0), initialized
  as ssm recommends (``initialize``: PCA of y, then 50 EM steps of an ARHMM on the PCA latents), then
  ``fit(method="laplace_em", variational_posterior="structured_meanfield", initialize=False,
  num_iters=100, alpha=0.0)`` (``--ssm-iters``). States: ``approximate_posterior`` on the held-out
  trial (parameters fixed), then ``most_likely_states(q_mean_x, y)``. Forecast: per origin,
  ``approximate_posterior`` on the prefix (its last time step is the filtering marginal), 100 draws
  of ``(z_t, x_t)`` from that posterior (``q.sample()``), ``sample(k, prefix=...)`` of the latent
  continuation, the emission mean ``C x + d`` of each, averaged. Sampling for D_stsp: ``sample(200)``.
* ``dynamax GaussianEmissionHMM``  ``dynamax.hidden_markov_model.GaussianEmissionHMM``, k-means ``initialize``,
  ``fit_em(num_iters=100)``; Viterbi ``most_likely_states``; forecast the exact predictive mean
  (filtered belief at the origin times P^h, times the state means), as for the library's HMM.
* ``dynamax ARHMM``    ``LinearAutoregressiveHMM(K, D, num_lags=1)``, k-means ``initialize``,
  ``fit_em(num_iters=100)`` on ``compute_inputs`` lagged inputs; Viterbi ``most_likely_states``;
  forecast the exact mean from its parameters and ``filter(...).filtered_probs[-1]`` (dynamax has no
  forecaster). Sampling for D_stsp: ``sample(params, key, 200)``.

Setting up the peers (keep them out of the project's own ``.venv``; ssm needs a compiler)::

    python3 -m venv /tmp/peers-venv && . /tmp/peers-venv/bin/activate
    pip install torch==2.13.0          # the local CPU wheel; unpinned torch pulls a CUDA build
    pip install -e /path/to/pyro_neurodyn
    pip install dynamax                # brings jax / jaxlib (CPU)
    # ssm is not on PyPI: fetch the source (the lindermanlab/ssm repository), then
    pip install cython wheel setuptools    # ssm's master (eb6c8aa) built and ran against numpy 2.4.6
    cd ssm && pip install --no-build-isolation --use-pep517 -e .
    # Without --use-pep517 the editable build falls back to `setup.py develop`, which reinvokes pip with
    # build isolation and fails on "No module named numpy". A "numpy<2" venv for ssm cannot hold
    # pyro_neurodyn (its arviz-stats 0.8 needs numpy>=2), so ssm goes into the same venv as the rest.

    python benchmarks/peers.py [--datasets rotation lorenz ...] [--seeds 0 1] [--peers ...] \
        [--ssm-iters 100] [--json out.json]

One thread throughout (torch, BLAS, numba, XLA). A peer whose fit or scoring fails is reported as
such, and the rest goes on.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from switching_baselines import (  # noqa: E402  (the benchmarks folder is on sys.path only now)
    DATASETS,
    FORECAST_SAMPLES,
    LORENZ_FILE,
    NUM_STATES,
    Fitted,
    Split,
    d_stsp,
    load_split,
    score,
    table,
)

try:
    import ssm
except ImportError:
    ssm = None
try:
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    jax.config.update("jax_enable_x64", True)
    from dynamax.hidden_markov_model import GaussianHMM as DynamaxGaussianHMM
    from dynamax.hidden_markov_model import LinearAutoregressiveHMM
except ImportError:
    jax = None

PEERS = ("ssm ARHMM", "ssm rSLDS", "dynamax GaussianEmissionHMM", "dynamax ARHMM")
INSTALL = {
    "ssm": "ssm is not installed: it is not on PyPI; get the source of the lindermanlab/ssm repository, then in this "
    "venv `pip install cython wheel setuptools` and, in the clone, `pip install --no-build-isolation --use-pep517 -e .` "
    "(see this script's docstring)",
    "dynamax": "dynamax is not installed: `pip install dynamax` (brings jax; use a separate venv, see the docstring)",
}
EM_ITERS = 100


def available(peer: str) -> Optional[str]:
    """None when ``peer``'s package imports, else the note saying how to install it."""
    package = peer.split()[0]
    present = ssm is not None if package == "ssm" else jax is not None
    return None if present else INSTALL[package]


def as_numpy(y) -> np.ndarray:
    return np.asarray(torch.as_tensor(y).detach().cpu(), dtype=np.float64)


def as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.array(x), dtype=torch.get_default_dtype())  # a copy: jax arrays are read-only


# ----- exact mean forecasts from parameters -----------------------------------------------------------
def hmm_mean_forecast(belief: np.ndarray, trans: np.ndarray, means: np.ndarray, k: int) -> np.ndarray:
    """``E[y_{t+h} | y_{1:t}] = p(z_t | y_{1:t}) P^h mu`` for h = 1..k, ``(k, D)``."""
    out = []
    for _ in range(k):
        belief = belief @ trans
        out.append(belief @ means)
    return np.stack(out)


def state_belief_ar_forecast(belief, trans, weight, bias, y_last, k: int) -> np.ndarray:
    """Exact mean of a lag-1 ARHMM ``y_t = A_z y_{t-1} + b_z + eps``, ``(k, D)``.

    ``m^k_h = E[y_{t+h} 1{z_{t+h} = k}]`` obeys ``m^k_h = A_k sum_j P_{jk} m^j_{h-1} + b_k p_h(k)`` from
    ``m^j_0 = y_t p(z_t = j | y_{1:t})``, ``p_h = p_{h-1} P``; the forecast is ``sum_k m^k_h`` (the same
    recursion as the library's ``AutoregressiveHMM.predict``).
    """
    moments = belief[:, None] * y_last[None, :]  # (K, D)
    out = []
    for _ in range(k):
        mixed = trans.T @ moments  # (K, D): sum_j P_jk m^j
        belief = belief @ trans
        moments = np.einsum("kde,ke->kd", weight, mixed) + bias * belief[:, None]
        out.append(moments.sum(0))
    return np.stack(out)


# ----- lindermanlab/ssm ----------------------------------------------------------------------------------
def fit_ssm_arhmm(data: Split, seed: int, args) -> Fitted:
    np.random.seed(seed)
    obs_dim = data.y_train.shape[-1]
    arhmm = ssm.HMM(NUM_STATES, obs_dim, observations="ar")
    arhmm.fit(list(as_numpy(data.y_train)), method="em", num_iters=EM_ITERS, verbose=0)
    weight, bias = arhmm.observations.As, arhmm.observations.bs

    def states(y):
        return torch.as_tensor(np.stack([arhmm.most_likely_states(trial) for trial in as_numpy(y)]))

    def forecast(prefix, k):
        trans = arhmm.transitions.transition_matrix
        means = []
        for trial in as_numpy(prefix):
            belief = arhmm.expected_states(trial)[0][-1]  # smoothed at the last step = filtered
            means.append(state_belief_ar_forecast(belief, trans, weight, bias, trial[-1], k))
        return as_tensor(np.stack(means)[None])

    def sample(n, t):
        return as_tensor(np.stack([arhmm.sample(t)[1] for _ in range(n)]))

    return Fitted(states, forecast, sample)


def fit_ssm_rslds(data: Split, seed: int, args) -> Fitted:
    np.random.seed(seed)
    obs_dim, latent_dim = data.y_train.shape[-1], data.latent_dim
    emissions = args.ssm_emissions
    if emissions == "auto":  # ssm's orthogonal readout needs obs_dim > latent_dim (not so for 3-D Lorenz, P = 3)
        emissions = "gaussian_orthog" if obs_dim > latent_dim else "gaussian_id" if obs_dim == latent_dim else "gaussian"
    rslds = ssm.SLDS(obs_dim, NUM_STATES, latent_dim, transitions=args.ssm_transitions, dynamics=args.ssm_dynamics,
                     emissions=emissions, single_subspace=True)
    ys = list(as_numpy(data.y_train))
    rslds.initialize(ys, num_init_iters=50)  # PCA, then an ARHMM on the PCA latents
    rslds.fit(ys, method="laplace_em", variational_posterior="structured_meanfield", initialize=False,
              num_iters=args.ssm_iters, alpha=0.0, verbose=0)

    def posterior(trial):
        return rslds.approximate_posterior([trial], method="laplace_em", variational_posterior="structured_meanfield",
                                           num_iters=args.ssm_posterior_iters, verbose=0)[1]

    def states(y):
        paths = []
        for trial in as_numpy(y):
            q = posterior(trial)
            paths.append(rslds.most_likely_states(q.mean_continuous_states[0], trial))
        return torch.as_tensor(np.stack(paths))

    def forecast(prefix, k):
        means = []
        no_input = np.zeros((k, 0))
        for trial in as_numpy(prefix):
            q = posterior(trial)
            total = np.zeros((k, obs_dim))
            for _ in range(FORECAST_SAMPLES):
                z_path, x_path = q.sample()[0]
                z_last, x_last = np.array([int(z_path[-1])]), x_path[-1:]
                _, x_next, _ = rslds.sample(k, prefix=(z_last, x_last, trial[-1:]))
                total += rslds.emissions.forward(x_next, no_input, None)[:, 0, :]
            means.append(total / FORECAST_SAMPLES)
        return as_tensor(np.stack(means)[None])

    def sample(n, t):
        return as_tensor(np.stack([rslds.sample(t)[2] for _ in range(n)]))

    return Fitted(states, forecast, sample)


# ----- dynamax ---------------------------------------------------------------------------------------
def fit_dynamax(autoregressive: bool, data: Split, seed: int, args) -> Fitted:
    obs_dim = data.y_train.shape[-1]
    key_init, key_sample = jr.split(jr.PRNGKey(seed))
    y_train = jnp.asarray(as_numpy(data.y_train))
    if autoregressive:
        model = LinearAutoregressiveHMM(NUM_STATES, obs_dim, num_lags=1)
        lagged = jax.vmap(model.compute_inputs)  # zeros before the first step, as dynamax does
        params, props = model.initialize(key_init, method="kmeans", emissions=y_train.reshape(-1, obs_dim))
        params, _ = model.fit_em(params, props, y_train, inputs=lagged(y_train), num_iters=EM_ITERS, verbose=False)
    else:
        model, lagged = DynamaxGaussianHMM(NUM_STATES, obs_dim), lambda y: None
        params, props = model.initialize(key_init, method="kmeans", emissions=y_train.reshape(-1, obs_dim))
        params, _ = model.fit_em(params, props, y_train, num_iters=EM_ITERS, verbose=False)
    trans = np.asarray(params.transitions.transition_matrix)

    def inputs_of(trial):
        return None if not autoregressive else model.compute_inputs(trial)

    def states(y):
        return torch.as_tensor(np.stack([np.asarray(model.most_likely_states(params, trial, inputs_of(trial)))
                                         for trial in jnp.asarray(as_numpy(y))]))

    def forecast(prefix, k):
        means = []
        for trial in jnp.asarray(as_numpy(prefix)):
            belief = np.asarray(model.filter(params, trial, inputs_of(trial)).filtered_probs[-1])
            if autoregressive:
                e = params.emissions
                means.append(state_belief_ar_forecast(belief, trans, np.asarray(e.weights), np.asarray(e.biases),
                                                      np.asarray(trial[-1]), k))
            else:
                means.append(hmm_mean_forecast(belief, trans, np.asarray(params.emissions.means), k))
        return as_tensor(np.stack(means)[None])

    def sample(n, t):
        keys = jr.split(key_sample, n)
        return as_tensor(jax.vmap(lambda key: model.sample(params, key, t)[1])(keys))

    return Fitted(states, forecast, sample)


FITTERS: dict[str, Callable] = {
    "ssm ARHMM": fit_ssm_arhmm,
    "ssm rSLDS": fit_ssm_rslds,
    "dynamax GaussianEmissionHMM": lambda data, seed, args: fit_dynamax(False, data, seed, args),
    "dynamax ARHMM": lambda data, seed, args: fit_dynamax(True, data, seed, args),
}


def run_peer(peer: str, data: Split, seed: int, args) -> dict:
    """Fit and score one peer; a failure is returned as ``{"error": ...}``."""
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    try:
        start = time.perf_counter()
        fitted = FITTERS[peer](data, seed, args)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        result = {**score(fitted, data, seed), "fit_s": fit_seconds}
        result["score_s"] = time.perf_counter() - start
        return result
    except Exception as error:  # report and go on with the other peers
        traceback.print_exc(file=sys.stderr)
        where = traceback.extract_tb(error.__traceback__)[-1]
        return {"error": f"{type(error).__name__}: {error or ''} ({Path(where.filename).name}:{where.lineno} {where.name})"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS), metavar="PEER",
                        help=f"any of {', '.join(repr(p) for p in PEERS)} (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ssm-iters", type=int, default=100, help="Laplace-EM iterations of the ssm rSLDS fit")
    parser.add_argument("--ssm-posterior-iters", type=int, default=25,
                        help="Laplace-EM iterations (parameters fixed) of each ssm rSLDS posterior for states / forecasts")
    parser.add_argument("--ssm-transitions", default="recurrent_only", choices=("recurrent_only", "recurrent", "standard"))
    parser.add_argument("--ssm-dynamics", default="diagonal_gaussian", choices=("diagonal_gaussian", "gaussian"))
    parser.add_argument("--ssm-emissions", default="auto", choices=("auto", "gaussian_orthog", "gaussian", "gaussian_id"),
                        help="auto: gaussian_orthog when obs_dim > latent_dim (ssm requires it), gaussian_id when equal, else gaussian")
    parser.add_argument("--json", default=None, help="write all numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    peers, skipped = [], {}
    for peer in args.peers:
        note = available(peer)
        if note is None:
            peers.append(peer)
        else:
            skipped.setdefault(note, []).append(peer)
    notes = [f"{', '.join(names)}: skipped; {note}" for note, names in skipped.items()]
    for note in notes:
        print(note, flush=True)
    report = {"command": " ".join(sys.argv), "settings": vars(args), "skipped": notes, "results": {}}
    for seed in args.seeds:
        for name in args.datasets:
            data = load_split(name, seed)
            if data is None:
                print(f"### {name}, seed {seed}: skipped ({LORENZ_FILE} not found)\n", flush=True)
                continue
            results = {peer: run_peer(peer, data, seed, args) for peer in peers}
            floor = d_stsp(data.y_test, data.y_train)
            report["results"][f"{name}/seed{seed}"] = {"peers": results, "d_stsp_training_trials": floor}
            print(table(f"{name}, seed {seed} (peers)", results, floor, row_label="peer", notes=notes), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
