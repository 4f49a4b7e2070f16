"""What the switching RNN (SRNN) buys over linear switching baselines, on data where those fail.

For each data set (trial 0 held out, trials 1-15 fit) six two-state models are fit:

* ``GaussianEmissionHMM``  Gaussian HMM on y, Baum-Welch (``fit_em`` defaults);
* ``ARHMM``        autoregressive HMM (lag 1, diagonal noise), exact EM (``fit_em`` defaults);
* ``SLDS``         the library's ``SLDS`` module (linear dynamics, stationary switches);
* ``rSLDS``        the library's ``RSLDS`` module (linear dynamics, switches driven by h_{t-1});
* ``SRNN``         ``SRNN(num_states=2, latent_dim=P, obs_dim=D).fit(y_train)``, all defaults;
* ``SRNN-mlp``     ``SRNN(..., dynamics="mlp").fit(y_train, num_steps=2000, warm_start=500)``: residual MLP maps
  per state, started at the PCA latents (``MLP_STEPS``, ``MLP_WARM_START``).

The library has no estimator for SLDS / rSLDS, only the Pyro modules. They are fit here by the
SRNN estimator's own schedule (:class:`LinearSwitching`: the same anchoring labels, PCA start of
the readout, label term, 1000 + 333 SVI steps, the same bidirectional-LSTM guide of width 32, and a
causal encoder trained afterwards for filtering), so SLDS / rSLDS / SRNN differ only in the dynamics
and transitions, not in the inference. The latent dimension P is 3 for Lorenz, 2 for the simulators.

Measured per model, on the held-out trial:

* ``acc``: state accuracy after Hungarian matching (``metrics.state_accuracy``) of the Viterbi path;
* ``R2@k``, ``MSE@k``: k-step forecasts for k = 1, 5, 10, 20 (``metrics.k_step_forecast`` with
  k = 20 and origins 49, 59, ..., 179, so every horizon is scored from the same 14 origins). SRNN,
  SLDS, rSLDS: ``forecast(prefix, k, num_samples=100)`` (causal encoder, then ancestral simulation);
  ARHMM: the exact mean ``predict(prefix, k)``; GaussianEmissionHMM: filtered state belief at the origin
  propagated by the transition matrix, times the state means (its exact predictive mean);
* ``D_stsp``: ``metrics.state_space_divergence`` of the held-out trial against 50 freely generated
  trials of 200 steps (histogram KL for 3-D Lorenz, Gaussian-mixture KL for the 10-D simulators).
  ``sample`` for SRNN / SLDS / rSLDS; a small ancestral sampler here for the HMM and the ARHMM.
  The line under each table gives the same D_stsp for the 15 training trials (the data's own floor);
* ``fit s``: wall time of the fit (CPU, ``--threads``).

The last lines of each table are each SRNN's 10-step MSE over the lowest among the linear and mixture models run.

Data sets (``--datasets``): ``lorenz`` (``switching_lorenz(16, 200, seed)``), ``lorenz_file`` (the
SRNN paper's file, skipped if absent; lobe state ``y[..., 0] > 0.5 / 15``), ``rotation``,
``limit_cycle``, ``recurrent`` (``pyro_neurodyn.data`` simulators, 16 x 200 x 10, Gaussian readout,
one call per seed so the held-out trial shares the readout).

    python benchmarks/switching_baselines.py [--datasets lorenz rotation ...] [--seeds 0 1] \
        [--threads 1] [--srnn-steps 20] [--init hmm] [--label-steps 2000] [--models SRNN ARHMM] [--json out.json]

``--srnn-steps`` replaces the SVI step count of SRNN, SLDS and rSLDS (quick runs; default: the
SRNN's default, 1000); ``--init hmm`` (or ``arhmm``, ``kmeans``) replaces their anchoring labels
(default: the SRNN's, autoregressive-HMM Viterbi labels; Gaussian-HMM labels are at chance on the
simulators, where the regimes differ only in their dynamics); ``--label-steps`` how many of their SVI steps carry
the label term (default: the first 200; ``--label-steps 2000`` keeps it on for SRNN-mlp's whole fit). A model whose
fit or scoring fails is reported as such, and the rest goes on.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
import pyro
import torch
from pyro.nn.module import to_pyro_module_
from torch import Tensor

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import limit_cycle_switching_data, recurrent_switching_data, rotation_switching_data, switching_lorenz
from pyro_neurodyn.distributions import switching_filter
from pyro_neurodyn.guides.encoders import RecurrentEncoder
from pyro_neurodyn.metrics import k_step_forecast, state_accuracy, state_space_divergence
from pyro_neurodyn.models import RSLDS, SLDS, AutoregressiveHMM, GaussianEmissionHMM

NUM_STATES = 2
HORIZONS = (1, 5, 10, 20)
FIRST_ORIGIN, ORIGIN_EVERY = 49, 10
FORECAST_SAMPLES = 100
GENERATED_TRIALS = 50
MODELS = ("GaussianEmissionHMM", "ARHMM", "SLDS", "rSLDS", "SRNN", "SRNN-mlp")
MLP_STEPS, MLP_WARM_START = 2000, 500  # SRNN-mlp: residual MLP maps, warm start, twice the default SVI steps
DATASETS = ("lorenz", "lorenz_file", "rotation", "limit_cycle", "recurrent")
LORENZ_FILE = Path("/work/shared/data/lorenz_srnn_reference.npy")
SIMULATORS = {"rotation": rotation_switching_data, "limit_cycle": limit_cycle_switching_data, "recurrent": recurrent_switching_data}


# ----- data ------------------------------------------------------------------------------------------
class Split(NamedTuple):
    """Trials 1.. for fitting, trial 0 held out (with its true states); P the models' latent dim."""

    y_train: Tensor
    y_test: Tensor
    states_test: Tensor
    latent_dim: int


def split(y: Tensor, states: Tensor, latent_dim: int) -> Split:
    y = y.to(torch.get_default_dtype())
    return Split(y[1:], y[:1], states[:1].long(), latent_dim)


def load_split(name: str, seed: int) -> Optional[Split]:
    """The data set ``name`` for data seed ``seed``; None when the paper's file is absent."""
    if name == "lorenz":
        data = switching_lorenz(16, 200, seed=seed)
        return split(data.y, data.states, 3)
    if name == "lorenz_file":
        if not LORENZ_FILE.exists():
            return None
        y = torch.as_tensor(np.load(LORENZ_FILE))
        return split(y, y[..., 0] > 0.5 / 15, 3)
    data = SIMULATORS[name](16, 200, 10, "gaussian", seed)
    return split(data.y, data.states, 2)


# ----- the SVI models --------------------------------------------------------------------------------
class LinearSwitching(SRNN):
    """The SRNN estimator's fitting schedule and decoding helpers around the library's SLDS / rSLDS module,
    with a causal encoder (as the SRNN's) added for :meth:`forecast`."""

    kind = "LinearSwitching"

    def __init__(self, recurrent: bool, num_states: int, latent_dim: int, obs_dim: int):
        self.recurrent = recurrent
        super().__init__(num_states, latent_dim, obs_dim, transitions="recurrent" if recurrent else "stationary")

    def _build(self, obs_dim: int) -> None:
        c = self.config
        c.obs_dim = obs_dim
        cls = RSLDS if self.recurrent else SLDS
        module = cls(c.num_states, c.latent_dim, obs_dim, encoder_hidden=c.encoder_hidden)
        causal = RecurrentEncoder(obs_dim, c.latent_dim, hidden_dim=c.encoder_hidden, causal=True)
        to_pyro_module_(causal)
        module.filter_encoder = causal
        self.module = module


class Fitted(NamedTuple):
    """What the scoring needs from a fit model."""

    states: Callable[[Tensor], Tensor]  # y (trials, T, D) -> Viterbi states (trials, T)
    forecast: Callable[[Tensor, int], Tensor]  # (prefix, k) -> (samples, trials, k, D)
    sample: Callable[[int, int], Tensor]  # (trials, T) -> generated y (trials, T, D)


def fit_svi_model(name: str, data: Split, fit_options: dict) -> Fitted:
    """Fit SRNN / SRNN-mlp / SLDS / rSLDS with ``fit_options`` (the command line's replacements of fit's defaults)."""
    latent_dim, obs_dim = data.latent_dim, data.y_train.shape[-1]
    options = dict(fit_options)
    if name == "SRNN":
        model = SRNN(num_states=NUM_STATES, latent_dim=latent_dim, obs_dim=obs_dim)
    elif name == "SRNN-mlp":
        model = SRNN(num_states=NUM_STATES, latent_dim=latent_dim, obs_dim=obs_dim, dynamics="mlp")
        options = {"num_steps": MLP_STEPS, "warm_start": MLP_WARM_START} | options
    else:
        model = LinearSwitching(name == "rSLDS", NUM_STATES, latent_dim, obs_dim)
    model.fit(data.y_train, progress=False, **options)
    return Fitted(
        model.most_likely_states,
        lambda prefix, k: model.forecast(prefix, k, num_samples=FORECAST_SAMPLES),
        lambda n, t: model.sample(n, t).y,
    )


# ----- the exact-EM models ---------------------------------------------------------------------------
def sample_chain(init_logits: Tensor, trans_logits: Tensor, num_trials: int, num_steps: int) -> Tensor:
    """Markov chain paths ``(trials, T)`` from initial and (K, K) transition logits."""
    log_trans = trans_logits.log_softmax(-1)
    z = [torch.distributions.Categorical(logits=init_logits).sample((num_trials,))]
    for _ in range(num_steps - 1):
        z.append(torch.distributions.Categorical(logits=log_trans[z[-1]]).sample())
    return torch.stack(z, 1)


@torch.no_grad()
def sample_hmm(hmm: GaussianEmissionHMM, num_trials: int, num_steps: int) -> Tensor:
    z = sample_chain(hmm.init_logits, hmm.transitions(), num_trials, num_steps)
    return hmm.loc[z] + hmm.log_scale.exp()[z] * torch.randn(z.shape + hmm.loc.shape[-1:])


@torch.no_grad()
def hmm_forecast(hmm: GaussianEmissionHMM, prefix: Tensor, k: int) -> Tensor:
    """Exact predictive mean: filtered belief at the origin times P^j, times the state means."""
    factors = hmm.factors(prefix)
    belief, trans = switching_filter(*factors)[:, -1], factors.trans_logits.softmax(-1)
    means = []
    for _ in range(k):
        belief = belief @ trans
        means.append(belief @ hmm.loc)
    return torch.stack(means, 1).unsqueeze(0)


@torch.no_grad()
def sample_arhmm(arhmm: AutoregressiveHMM, num_trials: int, num_steps: int) -> Tensor:
    """Ancestral samples of ``y_t = A_z [y_{t-1}, .., y_{t-L}] + b_z + L_z eps`` after L initial Gaussians."""
    lags, dim = arhmm.lags, arhmm.obs_dim
    z = sample_chain(arhmm.init_logits, arhmm.transitions(), num_trials, num_steps)
    head = z[:, :lags]
    ys = list((arhmm.init_loc[head] + arhmm.init_log_scale.exp()[head] * torch.randn(head.shape + (dim,))).unbind(1))
    tril = arhmm.scale_tril()
    for t in range(lags, num_steps):
        lagged = torch.cat([ys[t - l] for l in range(1, lags + 1)], -1)
        mean = torch.einsum("ndp,np->nd", arhmm.weight[z[:, t]], lagged) + arhmm.bias[z[:, t]]
        ys.append(mean + torch.einsum("nij,nj->ni", tril[z[:, t]], torch.randn(num_trials, dim)))
    return torch.stack(ys, 1)


def fit_em_model(name: str, data: Split) -> Fitted:
    obs_dim = data.y_train.shape[-1]
    if name == "GaussianEmissionHMM":
        hmm = GaussianEmissionHMM(NUM_STATES, obs_dim)
        hmm.fit_em(data.y_train)
        return Fitted(hmm.most_likely_states, lambda p, k: hmm_forecast(hmm, p, k), lambda n, t: sample_hmm(hmm, n, t))
    arhmm = AutoregressiveHMM(NUM_STATES, obs_dim)
    arhmm.fit_em(data.y_train)
    return Fitted(arhmm.most_likely_states, lambda p, k: arhmm.predict(p, k).unsqueeze(0), lambda n, t: sample_arhmm(arhmm, n, t))


# ----- scoring ---------------------------------------------------------------------------------------
def d_stsp(y_test: Tensor, generated: Tensor) -> float:
    """D_stsp, or inf when generated trajectories left the floats (a diverging linear model)."""
    if not bool(torch.isfinite(generated).all()):
        return math.inf
    return state_space_divergence(y_test, generated)


def score(fitted: Fitted, data: Split, seed: int) -> dict:
    """Held-out accuracy, k-step forecast R^2 / MSE and D_stsp of one fit model."""
    pyro.set_rng_seed(seed)
    num_steps = data.y_test.shape[1]
    origins = np.arange(FIRST_ORIGIN, num_steps - max(HORIZONS), ORIGIN_EVERY)
    with torch.no_grad():
        accuracy = state_accuracy(data.states_test, fitted.states(data.y_test))
        scores = k_step_forecast(data.y_test, fitted.forecast, max(HORIZONS), origins)
        generated = fitted.sample(GENERATED_TRIALS, num_steps)
    result = {"accuracy": accuracy, "d_stsp": d_stsp(data.y_test, generated)}
    for k in HORIZONS:
        result[f"r2@{k}"], result[f"mse@{k}"] = float(scores.r2[k - 1]), float(scores.mse[k - 1])
    return result


def run_model(name: str, data: Split, seed: int, fit_options: dict) -> dict:
    """Fit and score one model; a failure is returned as ``{"error": ...}``."""
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    try:
        start = time.perf_counter()
        fitted = fit_svi_model(name, data, fit_options) if name in ("SLDS", "rSLDS", "SRNN", "SRNN-mlp") else fit_em_model(name, data)
        fit_seconds = time.perf_counter() - start
        return {**score(fitted, data, seed), "fit_s": fit_seconds}
    except Exception as error:  # report and go on with the other models
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(error).__name__}: {error}"}


# ----- report ----------------------------------------------------------------------------------------
COLUMNS = ["accuracy"] + [f"r2@{k}" for k in HORIZONS] + [f"mse@{k}" for k in HORIZONS] + ["d_stsp", "fit_s"]
HEADER = ["acc"] + [f"R2@{k}" for k in HORIZONS] + [f"MSE@{k}" for k in HORIZONS] + ["D_stsp", "fit s"]


def cell(column: str, value: float) -> str:
    if column == "fit_s":
        return f"{value:.1f}"
    if column.startswith("mse") or column == "d_stsp":
        return f"{value:.3g}"
    return f"{value:.3f}"


def mse_ratio(results: dict, srnn: str = "SRNN") -> Optional[tuple[float, str]]:
    """The SRNN variant ``srnn``'s 10-step MSE over the lowest 10-step MSE among the linear and mixture models,
    and that model's name."""
    baselines = {m: r["mse@10"] for m, r in results.items() if not m.startswith("SRNN") and "mse@10" in r}
    if "mse@10" not in results.get(srnn, {}) or not baselines:
        return None
    best = min(baselines, key=baselines.get)
    return results[srnn]["mse@10"] / baselines[best], best


def table(title: str, results: dict, floor: float, row_label: str = "model", notes: Sequence[str] = ()) -> str:
    """A markdown table of ``results`` (one row per model), the data's D_stsp floor, ``notes`` and, when
    an SRNN is among the rows, its 10-step MSE over the best other model's."""
    lines = [f"### {title}", "", f"| {row_label} | " + " | ".join(HEADER) + " |", "|---" * (len(HEADER) + 1) + "|"]
    for model, r in results.items():
        cells = [r["error"][:80]] + [""] * (len(HEADER) - 1) if "error" in r else [cell(c, r[c]) for c in COLUMNS]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"D_stsp of the 15 training trials against the held-out trial (the data's floor): {floor:.3g}")
    lines.extend(notes)
    for srnn in ("SRNN", "SRNN-mlp"):
        ratio = mse_ratio(results, srnn)
        if ratio is not None:
            lines.append(f"{srnn} 10-step MSE / best baseline's ({ratio[1]}): {ratio[0]:.3f}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--srnn-steps", type=int, default=None, help="SVI steps of SRNN / SLDS / rSLDS (default: SRNN's 1000)")
    parser.add_argument("--init", default=None, choices=("hmm", "arhmm", "kmeans"),
                        help="state labels anchoring SRNN / SLDS / rSLDS (default: the SRNN's default, arhmm)")
    parser.add_argument("--label-steps", type=int, default=None,
                        help="SVI steps with the label term, SRNN / SLDS / rSLDS (default: fit's, the first 200)")
    parser.add_argument("--json", default=None, help="write all numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    chosen = {"num_steps": args.srnn_steps, "init": args.init, "label_steps": args.label_steps}
    fit_options = {key: value for key, value in chosen.items() if value is not None}
    report = {"command": " ".join(sys.argv), "settings": vars(args), "results": {}}
    for seed in args.seeds:
        for name in args.datasets:
            data = load_split(name, seed)
            if data is None:
                print(f"### {name}, seed {seed}: skipped ({LORENZ_FILE} not found)\n", flush=True)
                continue
            results = {model: run_model(model, data, seed, fit_options) for model in args.models}
            floor = d_stsp(data.y_test, data.y_train)
            report["results"][f"{name}/seed{seed}"] = {
                "models": results, "d_stsp_training_trials": floor, "srnn_mse10_ratio": mse_ratio(results), "srnn_mlp_mse10_ratio": mse_ratio(results, "SRNN-mlp")
            }
            labels = "" if args.init is None else f", SVI models anchored to {args.init} labels"
            labels += "" if args.label_steps is None else f" for {args.label_steps} steps"
            print(table(f"{name}, seed {seed}{labels}", results, floor), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
