"""Bad input at every public entry point: a clear error of the right type that names the argument.

The table below is the fuzz pass of the reliability issue (NaN/inf, wrong ndim or shape, negative or
non-integer counts, K < 1, T < 2, mismatched inputs, unfitted models, out-of-range options) plus the
validations that already existed. Each row is ``(callable, args, kwargs, exception type, regex)``;
the regex names the argument (or the method, for an unfitted model). Estimators are only constructed
and called with the bad input: every error must come before any work, so nothing here fits.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile

import numpy as np
import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.distributions import (
    switching_backward_kernel,
    switching_filter,
    switching_log_marginal,
    switching_posterior,
    switching_sample,
    switching_viterbi,
)
from pyro_neurodyn.metrics import (
    band_power,
    bits_per_spike,
    co_smoothing_bits_per_spike,
    confusion_matrix,
    fano_factor,
    gaussian_mixture_kl,
    histogram_kl,
    interspike_intervals,
    k_step_forecast,
    lag_autocorrelation,
    mean_rate,
    mean_squared_error,
    population_autocorrelation,
    power_spectrum_distance,
    prediction_error,
    r2_score,
    smoothed_power_spectrum,
    state_accuracy,
    state_space_divergence,
)

INF, NAN = math.inf, math.nan
NEVER_WRITTEN = os.path.join(tempfile.gettempdir(), "pyro_neurodyn_test_bad_inputs_never_written.pt")

# ----- data --------------------------------------------------------------------------------------
_rng = np.random.default_rng(0)
Y = _rng.normal(size=(3, 10, 4)).astype(np.float32)  # (trials, T, channels)
COUNTS = _rng.poisson(2.0, size=(3, 10, 4)).astype(np.float32)
LONG = _rng.normal(size=(2, 32, 2))  # for spectra
LABELS = np.array([0, 1, 1, 0, 2])


def _with(array, index, value):
    out = np.array(array, dtype=np.float64 if np.asarray(array).dtype == np.float64 else np.float32)
    out[index] = value
    return out


def chain(**changes):
    """A valid chain (B=2, T=5, K=3) with entries replaced: ``changes = {argument: (index, value)}``."""
    g = torch.Generator().manual_seed(0)
    tensors = {
        "init_logits": torch.randn(2, 3, generator=g),
        "trans_logits": torch.randn(2, 4, 3, 3, generator=g),
        "emission_logp": torch.randn(2, 5, 3, generator=g),
    }
    for name, (index, value) in changes.items():
        tensors[name][index] = value
    return tensors["init_logits"], tensors["trans_logits"], tensors["emission_logp"]


def impossible_chain():
    """Rows all have a finite entry, yet no path: z_1 = 0 is forced, 0 -> 1 is forced, e_2 excludes 1."""
    init = torch.tensor([[0.0, -INF]])
    trans = torch.tensor([[[[-INF, 0.0], [0.0, 0.0]]]])
    emission = torch.tensor([[[0.0, 0.0], [0.0, -INF]]])
    return init, trans, emission


# ----- estimators (built lazily, inside the test) --------------------------------------------------
def lowrank(**kwargs) -> LowRankRNN:
    return LowRankRNN(**{"obs_dim": 4, "rank": 2, "num_units": 4, "seed": 0, **kwargs})


@functools.lru_cache(maxsize=None)
def fitted_lowrank() -> LowRankRNN:
    """Parameters from the data (a cheap stand-in for a fit): not the random initialization."""
    return lowrank().initialize_from_data(Y)


def srnn(**kwargs) -> SRNN:
    return SRNN(**{"num_states": 2, "latent_dim": 2, "obs_dim": 4, **kwargs})


def switching_lowrank(**kwargs) -> SwitchingLowRankRNN:
    return SwitchingLowRankRNN(**{"obs_dim": 4, "num_states": 2, "rank": 2, "num_units": 4, **kwargs})


def on(factory, method, **factory_kwargs):
    """``factory(**factory_kwargs).method``, built when the case runs."""
    return lambda *args, **kwargs: getattr(factory(**factory_kwargs), method)(*args, **kwargs)


def case(case_id, fn, *args, error=ValueError, match, **kwargs):
    return pytest.param(fn, args, kwargs, error, match, id=case_id)


def _forecast(prefix, k):
    return np.zeros((1, prefix.shape[0], k, prefix.shape[2]))


SWITCHING = {
    "log_marginal": switching_log_marginal,
    "posterior": switching_posterior,
    "viterbi": switching_viterbi,
    "filter": switching_filter,
    "sample": switching_sample,
    "backward_kernel": switching_backward_kernel,
}

CASES = [
    # ----- exact switching functions: values ------------------------------------------------------
    *[case(f"switching_{name}-emission_logp-NaN", fn, *chain(emission_logp=((0, 2, 1), NAN)), match=r"^emission_logp contains 1 NaN")
      for name, fn in SWITCHING.items()],
    *[case(f"switching_{name}-trans_logits-row-all-minus-inf", fn, *chain(trans_logits=((1, 2, 0), -INF)),
           match=r"^trans_logits has a row of all -inf.*no possible successor") for name, fn in SWITCHING.items()],
    case("switching_log_marginal-emission_logp-plus-inf", switching_log_marginal, *chain(emission_logp=((1, 0, 2), INF)), match=r"^emission_logp contains 1 \+inf"),
    case("switching_posterior-trans_logits-NaN", switching_posterior, *chain(trans_logits=((0, 1, 1, 1), NAN)), match=r"^trans_logits contains 1 NaN"),
    case("switching_viterbi-init_logits-plus-inf", switching_viterbi, *chain(init_logits=((1, 0), INF)), match=r"^init_logits contains 1 \+inf"),
    case("switching_filter-init_logits-all-minus-inf", switching_filter, *chain(init_logits=((1,), -INF)), match=r"^init_logits is -inf for every state"),
    case("switching_log_marginal-emission_logp-step-all-minus-inf", switching_log_marginal, *chain(emission_logp=((0, 3), -INF)),
         match=r"^emission_logp is -inf for every state at a time step"),
    case("switching_sample-emission_logp-step-all-minus-inf", switching_sample, *chain(emission_logp=((1, 4), -INF)), match=r"^emission_logp is -inf for every state"),
    case("switching_posterior-no-possible-path", switching_posterior, *impossible_chain(), match=r"init_logits, trans_logits and emission_logp leave no possible state path"),
    case("switching_viterbi-no-possible-path", switching_viterbi, *impossible_chain(), match=r"emission_logp leave no possible state path"),
    case("switching_filter-no-possible-path", switching_filter, *impossible_chain(), match=r"emission_logp leave no possible state path"),
    # ----- exact switching functions: shapes and types --------------------------------------------
    case("switching_sample-sample_shape-negative", switching_sample, *chain(), sample_shape=(-1,), match=r"^sample_shape must hold non-negative"),
    case("switching_sample-sample_shape-float", switching_sample, *chain(), sample_shape=2.5, error=TypeError, match=r"^sample_shape must be a tuple"),
    case("switching_log_marginal-emission_logp-1d", switching_log_marginal, torch.zeros(3), torch.zeros(3, 3), torch.zeros(5), match=r"^emission_logp must have at least 2 dims"),
    case("switching_posterior-init_logits-K-mismatch", switching_posterior, torch.zeros(2), torch.zeros(3, 3), torch.zeros(5, 3), match=r"^init_logits has 2 states"),
    case("switching_viterbi-trans_logits-not-KxK", switching_viterbi, torch.zeros(3), torch.zeros(3, 2), torch.zeros(5, 3), match=r"^trans_logits must end in \(K, K\)"),
    case("switching_filter-trans_logits-time-dim", switching_filter, torch.zeros(3), torch.zeros(3, 3, 3), torch.zeros(5, 3), match=r"^trans_logits time dim"),
    case("switching_log_marginal-batch-mismatch", switching_log_marginal, torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(4, 5, 3),
         match=r"batch dims of init_logits, trans_logits and emission_logp do not broadcast"),
    case("switching_log_marginal-emission_logp-integer", switching_log_marginal, torch.zeros(3), torch.zeros(3, 3), torch.zeros(5, 3, dtype=torch.long),
         error=TypeError, match=r"^emission_logp must be a floating point tensor"),
    case("switching_log_marginal-init_logits-numpy", switching_log_marginal, np.zeros(3), torch.zeros(3, 3), torch.zeros(5, 3),
         error=TypeError, match=r"^init_logits must be a torch.Tensor"),
    # ----- LowRankRNN constructor -----------------------------------------------------------------
    case("LowRankRNN-rank-above-num_units", lowrank, rank=5, obs_dim=6, num_units=4, match=r"^rank must be <= num_units.*rank=5, num_units=4"),
    case("LowRankRNN-rank-above-obs_dim", lowrank, rank=4, obs_dim=3, num_units=8, match=r"^rank must be <= obs_dim.*rank=4, obs_dim=3"),
    case("LowRankRNN-rank-0", lowrank, rank=0, match=r"^rank must be >= 1"),
    case("LowRankRNN-rank-float", lowrank, rank=1.5, error=TypeError, match=r"^rank must be an integer"),
    case("LowRankRNN-num_units-0", lowrank, num_units=0, match=r"^num_units must be >= 1"),
    case("LowRankRNN-input_dim-negative", lowrank, input_dim=-1, match=r"^input_dim must be >= 0"),
    case("LowRankRNN-filter_inputs-string", lowrank, filter_inputs="yes", match=r"^filter_inputs must be True or False"),
    case("LowRankRNN-filter_inputs-int", lowrank, filter_inputs=1, match=r"^filter_inputs must be True or False"),
    case("LowRankRNN-train_decay-string", lowrank, train_decay="no", match=r"^train_decay must be True or False"),
    case("LowRankRNN-train_readout-string", lowrank, train_readout="no", match=r"^train_readout must be True or False"),
    case("LowRankRNN-decay-1", lowrank, decay=1.0, match=r"^decay must be in \(0, 1\)"),
    case("LowRankRNN-decay-NaN", lowrank, decay=NAN, match=r"^decay must be in \(0, 1\)"),
    case("LowRankRNN-decay-string", lowrank, decay="0.5", error=TypeError, match=r"^decay must be a number"),
    case("LowRankRNN-noise_scale-0", lowrank, noise_scale=0.0, match=r"^noise_scale must be finite and > 0"),
    case("LowRankRNN-obs_noise_scale-inf", lowrank, obs_noise_scale=INF, match=r"^obs_noise_scale must be finite and > 0"),
    case("LowRankRNN-activation-unknown", lowrank, activation="softplus", match=r"^activation must be one of"),
    case("LowRankRNN-readout-one_to_one-mismatch", lowrank, readout="one_to_one", num_units=6, match=r"one_to_one readout needs obs_dim == num_units"),
    case("LowRankRNN-proposal-optimal-poisson", lowrank, observation="poisson", proposal="optimal", match=r"^proposal='optimal' needs Gaussian"),
    case("LowRankRNN-encoder_kernel_sizes-int", lowrank, encoder_kernel_sizes=3, error=TypeError, match=r"^encoder_kernel_sizes must be a sequence"),
    case("LowRankRNN-encoder_kernel_sizes-0", lowrank, encoder_kernel_sizes=(0,), match=r"^encoder_kernel_sizes must be >= 1"),
    case("LowRankRNN-seed-negative", lowrank, seed=-1, match=r"^seed must be >= 0"),
    # ----- LowRankRNN.fit -------------------------------------------------------------------------
    case("LowRankRNN.fit-lr_end-above-lr", on(lowrank, "fit"), Y, num_steps=1, lr=1e-3, lr_end=1e-2, progress=False, match=r"^lr_end must be <= lr"),
    case("LowRankRNN.fit-lr-0", on(lowrank, "fit"), Y, num_steps=1, lr=0.0, progress=False, match=r"^lr must be finite and > 0"),
    case("LowRankRNN.fit-y-times-1e30", on(lowrank, "fit"), Y * 1e30, num_steps=1, progress=False, match=r"^y has values up to .* rescale y"),
    case("LowRankRNN.fit-y-beyond-float32", on(lowrank, "fit"), Y.astype(np.float64) * 1e300, num_steps=1, progress=False, match=r"^y has values up to .*beyond the range"),
    case("LowRankRNN.fit-y-NaN", on(lowrank, "fit"), _with(Y, (1, 3, 2), NAN), num_steps=1, progress=False, match=r"^y contains 1 NaN or infinite"),
    case("LowRankRNN.fit-y-1d", on(lowrank, "fit"), Y[0, :, 0], num_steps=1, progress=False, match=r"^y must be 3-D"),
    case("LowRankRNN.fit-y-T-1", on(lowrank, "fit"), Y[:, :1], num_steps=1, progress=False, match=r"^y needs at least T = 2"),
    case("LowRankRNN.fit-y-channels", on(lowrank, "fit"), Y[..., :3], num_steps=1, progress=False, match=r"^y has 3 channels.*obs_dim=4"),
    case("LowRankRNN.fit-y-one-pair", on(lowrank, "fit"), Y[:1, :2], num_steps=1, progress=False, match=r"^y of shape \(1, 2, 4\) holds 1 one-step pair"),
    case("LowRankRNN.fit-poisson-negative-counts", on(lowrank, "fit", observation="poisson"), -COUNTS - 1, num_steps=1, progress=False, match=r"^y must hold non-negative counts"),
    case("LowRankRNN.fit-poisson-non-integer", on(lowrank, "fit", observation="poisson"), COUNTS + 0.5, num_steps=1, progress=False, match=r"^y must hold integer counts"),
    case("LowRankRNN.fit-u-time-mismatch", on(lowrank, "fit", input_dim=1), Y, np.zeros((3, 9, 1)), num_steps=1, progress=False, match=r"^u must match y in trials and time"),
    case("LowRankRNN.fit-u-without-input_dim", on(lowrank, "fit"), Y, np.zeros((3, 10, 1)), num_steps=1, progress=False, match=r"^u has 1 input channels.*input_dim=0"),
    case("LowRankRNN.fit-u-missing", on(lowrank, "fit", input_dim=1), Y, num_steps=1, progress=False, match=r"input_dim=1: pass the inputs u"),
    case("LowRankRNN.fit-epochs-and-num_steps", on(lowrank, "fit"), Y, epochs=1, num_steps=1, progress=False, match=r"exactly one of epochs and num_steps"),
    case("LowRankRNN.fit-epochs-0", on(lowrank, "fit"), Y, epochs=0, progress=False, match=r"^epochs must be >= 1"),
    case("LowRankRNN.fit-num_particles-0", on(lowrank, "fit"), Y, num_steps=1, num_particles=0, progress=False, match=r"^num_particles must be >= 1"),
    case("LowRankRNN.fit-batch_size-0", on(lowrank, "fit"), Y, num_steps=1, batch_size=0, progress=False, match=r"^batch_size must be >= 1"),
    case("LowRankRNN.fit-optimizer-unknown", on(lowrank, "fit"), Y, num_steps=1, optimizer="sgd", progress=False, match=r"^optimizer must be one of"),
    case("LowRankRNN.fit-init_from_data-string", on(lowrank, "fit"), Y, num_steps=1, init_from_data="no", progress=False, match=r"^init_from_data must be True or False"),
    case("LowRankRNN.fit-callback-not-callable", on(lowrank, "fit"), Y, num_steps=1, callback=3, progress=False, error=TypeError, match=r"^callback must be callable"),
    case("LowRankRNN.fit-seed-negative", on(lowrank, "fit"), Y, num_steps=1, seed=-1, progress=False, match=r"^seed must be >= 0"),
    case("LowRankRNN.fit-ess_threshold-above-1", on(lowrank, "fit"), Y, num_steps=1, ess_threshold=2.0, progress=False, match=r"^ess_threshold must be"),
    case("LowRankRNN.fit-resampling-unknown", on(lowrank, "fit"), Y, num_steps=1, resampling="stratified", progress=False, match=r"resampling"),
    # ----- LowRankRNN: other methods ----------------------------------------------------------------
    case("LowRankRNN.log_evidence-unfitted", on(lowrank, "log_evidence"), Y, error=RuntimeError, match=r"not been fit yet: log_evidence needs fitted parameters"),
    case("LowRankRNN.filter-unfitted", on(lowrank, "filter"), Y, error=RuntimeError, match=r"not been fit yet: filter needs fitted parameters"),
    case("LowRankRNN.save-unfitted", on(lowrank, "save"), NEVER_WRITTEN, error=RuntimeError, match=r"not been fit yet: save needs fitted parameters"),
    case("LowRankRNN.log_evidence-y-times-1e30", lambda *a, **k: fitted_lowrank().log_evidence(*a, **k), Y * 1e30, match=r"^y has values up to"),
    case("LowRankRNN.filter-num_particles-0", lambda *a, **k: fitted_lowrank().filter(*a, **k), Y, num_particles=0, match=r"^num_particles must be >= 1"),
    case("LowRankRNN.log_evidence-seed-string", lambda *a, **k: fitted_lowrank().log_evidence(*a, **k), Y, seed="x", error=TypeError, match=r"^seed must be an integer"),
    case("LowRankRNN.initialize_from_data-smoothing-0", on(lowrank, "initialize_from_data"), Y, smoothing=0, match=r"^smoothing must be finite and > 0"),
    case("LowRankRNN.sample-num_trials-0", on(lowrank, "sample"), 0, 5, match=r"^num_trials must be >= 1"),
    case("LowRankRNN.sample-initial_latents-shape", on(lowrank, "sample"), 3, 5, initial_latents=np.zeros((2, 2)), match=r"^initial_latents must have shape"),
    case("LowRankRNN.to_units-x-rank", on(lowrank, "to_units"), np.zeros((2, 5, 3)), match=r"^x must have rank = 2"),
    # ----- SRNN (existing validations) ----------------------------------------------------------------
    case("SRNN-num_states-0", srnn, num_states=0, match=r"^num_states must be >= 1"),
    case("SRNN-latent_dim-0", srnn, latent_dim=0, match=r"^latent_dim must be >= 1"),
    case("SRNN-obs_dim-string", srnn, obs_dim="4", error=TypeError, match=r"^obs_dim must be an integer"),
    case("SRNN-latent_scale-NaN", srnn, latent_scale=NAN, match=r"^latent_scale must be finite and > 0"),
    case("SRNN-transitions-unknown", srnn, transitions="foo", match=r"^transitions must be one of"),
    case("SRNN-transitions-input-without-input_dim", srnn, transitions="input", match=r"transitions='input' needs input_dim >= 1"),
    case("SRNN.fit-y-1d", on(srnn, "fit"), Y[0, :, 0], num_steps=1, progress=False, match=r"^y must be 3-D"),
    case("SRNN.fit-y-T-1", on(srnn, "fit"), Y[:, :1], num_steps=1, progress=False, match=r"^y needs at least T = 2"),
    case("SRNN.fit-y-NaN", on(srnn, "fit"), _with(Y, (2, 9, 3), NAN), num_steps=1, progress=False, match=r"^y contains 1 NaN"),
    case("SRNN.fit-y-inf", on(srnn, "fit"), _with(Y, (0, 0, 0), INF), num_steps=1, progress=False, match=r"^y contains 1 NaN or infinite"),
    case("SRNN.fit-poisson-negative-counts", on(srnn, "fit", observation="poisson"), -COUNTS - 1, num_steps=1, progress=False, match=r"^y must hold non-negative counts"),
    case("SRNN.fit-poisson-non-integer", on(srnn, "fit", observation="poisson"), COUNTS + 0.5, num_steps=1, progress=False, match=r"^y must hold integer counts"),
    case("SRNN.fit-u-time-mismatch", on(srnn, "fit", input_dim=1), Y, np.zeros((3, 9, 1)), num_steps=1, progress=False, match=r"^u must match y in trials and time"),
    case("SRNN.fit-u-missing", on(srnn, "fit", input_dim=1), Y, num_steps=1, progress=False, match=r"pass u \(trials, time, 1\)"),
    case("SRNN.fit-u-channels", on(srnn, "fit", input_dim=1), Y, np.zeros((3, 10, 2)), num_steps=1, progress=False, match=r"^u has 2 channels"),
    case("SRNN.fit-y-channels", on(srnn, "fit", obs_dim=5), Y, num_steps=1, progress=False, match=r"^y has 4 channels.*obs_dim = 5"),
    case("SRNN.fit-num_steps-0", on(srnn, "fit"), Y, num_steps=0, progress=False, match=r"^num_steps must be >= 1"),
    case("SRNN.fit-lr-0", on(srnn, "fit"), Y, num_steps=1, lr=0.0, progress=False, match=r"^lr must be finite and > 0"),
    case("SRNN.fit-init-unknown", on(srnn, "fit"), Y, num_steps=1, init="foo", progress=False, match=r"^init must be 'kmeans', 'hmm'"),
    case("SRNN.fit-init-labels-shape", on(srnn, "fit"), Y, num_steps=1, init=np.zeros((3, 9), dtype=int), progress=False, match=r"^init labels must have shape"),
    case("SRNN.fit-init-label-above-K", on(srnn, "fit"), Y, num_steps=1, init=np.full((3, 10), 2), progress=False, match=r"^init must be below num_states = 2"),
    case("SRNN.fit-label_steps-above-num_steps", on(srnn, "fit"), Y, num_steps=1, label_steps=5, progress=False, match=r"^label_steps \(5\) must not exceed num_steps"),
    case("SRNN.most_likely_states-unfitted", on(srnn, "most_likely_states"), Y, error=RuntimeError, match=r"SRNN has not been fit yet"),
    case("SRNN.save-unfitted", on(srnn, "save"), NEVER_WRITTEN, error=RuntimeError, match=r"SRNN has not been fit yet"),
    # ----- SwitchingLowRankRNN (existing validations) --------------------------------------------------
    case("SwitchingLowRankRNN-num_states-0", switching_lowrank, num_states=0, match=r"^num_states must be >= 1"),
    case("SwitchingLowRankRNN-rank-0", switching_lowrank, rank=0, match=r"^rank must be >= 1"),
    case("SwitchingLowRankRNN-decay-1.5", switching_lowrank, decay=1.5, match=r"^decay must be in \(0, 1\)"),
    case("SwitchingLowRankRNN-transitions-unknown", switching_lowrank, transitions="foo", match=r"^transitions must be one of"),
    case("SwitchingLowRankRNN-proposal-unknown", switching_lowrank, proposal="foo", match=r"^proposal must be one of"),
    case("SwitchingLowRankRNN.fit-y-1d", on(switching_lowrank, "fit"), Y[0, :, 0], num_steps=1, match=r"^y must be 3-D"),
    case("SwitchingLowRankRNN.fit-y-T-1", on(switching_lowrank, "fit"), Y[:, :1], num_steps=1, match=r"^y needs at least T = 2"),
    case("SwitchingLowRankRNN.fit-y-NaN", on(switching_lowrank, "fit"), _with(Y, (0, 4, 1), NAN), num_steps=1, match=r"^y contains 1 NaN"),
    case("SwitchingLowRankRNN.fit-poisson-negative-counts", on(switching_lowrank, "fit", observation="poisson"), -COUNTS - 1, num_steps=1, match=r"^y must hold non-negative counts"),
    case("SwitchingLowRankRNN.fit-poisson-non-integer", on(switching_lowrank, "fit", observation="poisson"), COUNTS + 0.5, num_steps=1, match=r"^y must hold integer counts"),
    case("SwitchingLowRankRNN.fit-y-channels", on(switching_lowrank, "fit", obs_dim=5), Y, num_steps=1, match=r"^y has 4 channels.*obs_dim=5"),
    case("SwitchingLowRankRNN.fit-method-unknown", on(switching_lowrank, "fit"), Y, method="em", num_steps=1, match=r"^method must be one of"),
    case("SwitchingLowRankRNN.fit-resampling_gradient-collapsed", on(switching_lowrank, "fit"), Y, num_steps=1, resampling_gradient="stop_gradient",
         match=r"^resampling_gradient='stop_gradient' applies to method='vsmc'"),
    case("SwitchingLowRankRNN.fit-num_steps-0", on(switching_lowrank, "fit"), Y, num_steps=0, match=r"^num_steps must be >= 1"),
    case("SwitchingLowRankRNN.fit-lr-negative", on(switching_lowrank, "fit"), Y, num_steps=1, lr=-1.0, match=r"^lr must be finite and > 0"),
    case("SwitchingLowRankRNN.most_likely_states-unfitted", on(switching_lowrank, "most_likely_states"), Y, error=RuntimeError, match=r"SwitchingLowRankRNN has not been fit yet"),
    case("SwitchingLowRankRNN.save-unfitted", on(switching_lowrank, "save"), NEVER_WRITTEN, error=RuntimeError, match=r"SwitchingLowRankRNN has not been fit yet"),
    # ----- metrics: spectra and summary statistics ---------------------------------------------------
    case("power_spectrum_distance-freq_cutoff-above-F", power_spectrum_distance, LONG, LONG, freq_cutoff=1000, match=r"^freq_cutoff = 1000 exceeds the T // 2 \+ 1 = 17"),
    case("power_spectrum_distance-freq_cutoff-1", power_spectrum_distance, LONG, LONG, freq_cutoff=1, match=r"^freq_cutoff must be >= 2"),
    case("power_spectrum_distance-T-mismatch", power_spectrum_distance, LONG, LONG[:, :20], match=r"^y_true and y_gen must have the same time steps"),
    case("power_spectrum_distance-smoothing-negative", power_spectrum_distance, LONG, LONG, smoothing=-1.0, match=r"^smoothing must be finite and > 0"),
    case("power_spectrum_distance-y_gen-NaN", power_spectrum_distance, LONG, _with(LONG, (0, 3, 1), NAN), match=r"^y_gen contains 1 NaN"),
    case("power_spectrum_distance-y_true-constant", power_spectrum_distance, np.ones((2, 32, 2)), LONG, match=r"^y_true is constant in trial 0"),
    case("power_spectrum_distance-multioutput", power_spectrum_distance, LONG, LONG, multioutput="variance_weighted", match=r"^multioutput must be one of"),
    case("smoothed_power_spectrum-smoothing-string", smoothed_power_spectrum, LONG, smoothing="a", error=TypeError, match=r"^smoothing must be a positive number"),
    case("band_power-band-above-Nyquist", band_power, LONG, (0.6, 0.9), match=r"^band \(0.6, 0.9\) lies above the Nyquist frequency"),
    case("band_power-band-above-Nyquist-Hz", band_power, LONG, (60, 80), sampling_rate=100.0, match=r"^band \(60, 80\) lies above the Nyquist frequency sampling_rate / 2 = 50"),
    case("band_power-band-between-bins", band_power, LONG[:, :8], (0.13, 0.15), match=r"^band \(0.13, 0.15\) holds no frequency"),
    case("band_power-band-reversed", band_power, LONG, (0.3, 0.1), match=r"^band must be \(low, high\) with 0 <= low < high"),
    case("band_power-band-three-values", band_power, LONG, (0.1, 0.2, 0.3), match=r"^band must be a pair"),
    case("band_power-sampling_rate-0", band_power, LONG, (0.1, 0.2), sampling_rate=0.0, match=r"^sampling_rate must be finite and > 0"),
    case("band_power-y-strings", band_power, [["a", "b"], ["c", "d"]], (0.1, 0.2), error=TypeError, match=r"^y must be numeric"),
    case("lag_autocorrelation-y-ragged", lag_autocorrelation, [[1.0, 2.0], [3.0]], match=r"^y could not be read as an array"),
    case("fano_factor-y-complex", fano_factor, np.ones((2, 5, 1)) * 1j, error=TypeError, match=r"^y must be real-valued"),
    case("lag_autocorrelation-lag-T", lag_autocorrelation, LONG, lag=32, match=r"^lag must be below the number of time steps"),
    case("population_autocorrelation-num_lags-0", population_autocorrelation, LONG, 0, match=r"^num_lags must be >= 1"),
    case("fano_factor-y-NaN", fano_factor, _with(COUNTS, (0, 0, 0), NAN), match=r"^y contains NaN or infinite"),
    case("interspike_intervals-spikes-negative", interspike_intervals, -COUNTS - 1, match=r"^spikes must be non-negative integer counts"),
    case("mean_rate-bin_size-0", mean_rate, COUNTS, bin_size=0.0, match=r"^bin_size must be finite and > 0"),
    # ----- metrics: reconstruction, spikes, states, forecasting, state space -------------------------------
    case("mean_squared_error-shape-mismatch", mean_squared_error, Y, Y[..., :3], match=r"^y_true and y_pred must have the same shape"),
    case("r2_score-y_true-constant", r2_score, np.ones((3, 10, 4)), Y, match=r"y_true is constant in channel"),
    case("r2_score-multioutput", r2_score, Y, Y, multioutput="mean", match=r"^multioutput must be one of"),
    case("bits_per_spike-rates-negative", bits_per_spike, -np.ones((3, 10, 4)), COUNTS, match=r"^rates must be non-negative"),
    case("bits_per_spike-spikes-non-integer", bits_per_spike, np.ones((3, 10, 4)), COUNTS + 0.5, match=r"^spikes must hold integer counts"),
    case("bits_per_spike-spikes-none", bits_per_spike, np.ones((3, 10, 4)), np.zeros((3, 10, 4)), match=r"^spikes contains no spike"),
    case("co_smoothing_bits_per_spike-heldout_neurons-out-of-range", co_smoothing_bits_per_spike, np.ones((3, 10, 4)), COUNTS, [4],
         match=r"^heldout_neurons must be distinct indices in \[0, 3\]"),
    case("state_accuracy-true_states-negative", state_accuracy, [0, -1, 1], [0, 1, 1], match=r"^true_states must hold non-negative"),
    case("state_accuracy-shape-mismatch", state_accuracy, LABELS, LABELS[:4], match=r"^true_states and pred_states must have the same shape"),
    case("state_accuracy-pred_states-NaN", state_accuracy, LABELS, _with(LABELS.astype(float), 2, NAN), match=r"^pred_states contains 1 NaN"),
    case("confusion_matrix-true_states-huge-label", confusion_matrix, [0, 10**12], [0, 1], match=r"^true_states has label 1000000000000"),
    case("k_step_forecast-k-0", k_step_forecast, LONG, _forecast, 0, match=r"^k must be >= 1"),
    case("k_step_forecast-k-T", k_step_forecast, LONG, _forecast, 32, match=r"^k = 32 leaves no forecast origin"),
    case("k_step_forecast-forecast-not-callable", k_step_forecast, LONG, 3, 1, error=TypeError, match=r"^forecast must be callable"),
    case("k_step_forecast-forecast-bad-shape", k_step_forecast, LONG, lambda p, k: np.zeros((1, 2, k, 3)), 1, match=r"^forecast\(y_prefix, k\) at origin 0 returned shape"),
    case("k_step_forecast-origins-out-of-range", k_step_forecast, LONG, _forecast, 2, origins=[30], match=r"^origins must lie in \[0, T - 1 - k\]"),
    case("prediction_error-n-0", prediction_error, LONG, _forecast, 0, match=r"^n must be >= 1"),
    case("histogram_kl-bins-0", histogram_kl, LONG, LONG, bins=0, match=r"^bins must be >= 1"),
    case("histogram_kl-dims-mismatch", histogram_kl, LONG, LONG[..., :1], match=r"^y_true and y_gen must have the same number of dimensions"),
    case("gaussian_mixture_kl-scale-0", gaussian_mixture_kl, LONG, LONG, scale=0.0, match=r"^scale must be finite and > 0"),
    case("gaussian_mixture_kl-y_true-1e200", gaussian_mixture_kl, LONG * 1e200, LONG, match=r"^y_true has values up to .* rescale y_true"),
    case("state_space_divergence-y_gen-inf", state_space_divergence, LONG, _with(LONG, (1, 5, 0), INF), match=r"^y_gen contains 1 NaN or infinite"),
    case("SwitchingLowRankRNN-rank-above-num_units", switching_lowrank, rank=5, obs_dim=6, num_units=4, match=r"rank"),
    case("SwitchingLowRankRNN-rank-above-obs_dim", switching_lowrank, rank=4, obs_dim=3, num_units=8, match=r"rank"),
    case("SwitchingLowRankRNN-stickiness-NaN", switching_lowrank, stickiness=NAN, match=r"stickiness"),
    case("SwitchingLowRankRNN.log_evidence-unfitted", on(switching_lowrank, "log_evidence"), Y, error=RuntimeError, match=r"not been fit"),
    case("SwitchingLowRankRNN.initialize_from_data-y-times-1e30", on(switching_lowrank, "initialize_from_data"), Y * 1e30, match=r"^y has values up to"),
    case("SRNN.fit-label_weight-NaN", on(srnn, "fit"), Y, num_steps=1, init=np.zeros((3, 10), dtype=int), label_weight=NAN, progress=False, match=r"label_weight"),
    case("SRNN.fit-y-times-1e30", on(srnn, "fit"), Y * 1e30, num_steps=1, progress=False, match=r"^y has values up to"),
]

def test_the_table_covers_the_fuzz_pass():
    assert len(CASES) >= 60


@pytest.mark.parametrize("fn, args, kwargs, error, match", CASES)
def test_bad_input_is_rejected_with_a_named_error(fn, args, kwargs, error, match):
    with pytest.raises(error, match=match) as raised:
        fn(*args, **kwargs)
    assert type(raised.value) is error  # the type itself, not a subclass (e.g. not a LinAlgError)


# ----- errors come before any work ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(y=Y * 1e30, num_steps=1),
        dict(y=Y, num_steps=1, lr=1e-3, lr_end=1e-2),
        dict(y=Y, num_steps=1, init_from_data="no"),
        dict(y=Y, num_steps=1, callback=3),
        dict(y=Y[:1, :2], num_steps=1),
    ],
    ids=["y-1e30", "lr_end", "init_from_data", "callback", "one-pair"],
)
def test_a_rejected_lowrank_fit_changes_nothing(kwargs):
    rnn = lowrank()
    before = {name: value.clone() for name, value in rnn.model.state_dict().items()}
    with pytest.raises((ValueError, TypeError)):
        rnn.fit(progress=False, **kwargs)
    assert rnn.losses == []
    assert all(torch.equal(value, before[name]) for name, value in rnn.model.state_dict().items())


# ----- what stays accepted -------------------------------------------------------------------------


def test_switching_functions_accept_minus_inf_for_impossible_states_and_transitions():
    init, trans, emission = chain(init_logits=((0, 2), -INF), trans_logits=((1, 2, 0, 1), -INF), emission_logp=((0, 3, 1), -INF))
    assert torch.isfinite(switching_log_marginal(init, trans, emission)).all()
    posterior = switching_posterior(init, trans, emission)
    assert torch.isfinite(posterior.marginals).all() and posterior.marginals[0, 3, 1] == 0
    assert switching_viterbi(init, trans, emission).states[0, 0] != 2
    assert torch.isfinite(switching_filter(init, trans, emission)).all()
    assert (switching_sample(init, trans, emission, (20,))[:, 0, 3] != 1).all()
    # a chain with no path has log-probability -inf: the honest value, not an error
    assert switching_log_marginal(*impossible_chain()).item() == -INF


def test_a_lowrank_rnn_with_parameters_set_by_hand_counts_as_fitted():
    rnn = lowrank()
    with torch.no_grad():
        rnn.model.transition.V.mul_(0.5)  # e.g. copied from a teacher or a published model
    assert rnn.log_evidence(Y[:2, :5], num_particles=4, seed=0).shape == (2,)


# ----- numerically robust instead of an error -------------------------------------------------------


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_spectra_and_correlations_of_huge_and_tiny_values(scale):
    """Scale-free statistics give the value of the unscaled data (they returned NaN or raised before)."""
    other = _rng.normal(size=LONG.shape)
    reference = power_spectrum_distance(LONG, other, smoothing=2.0)
    assert power_spectrum_distance(LONG * scale, other, smoothing=2.0) == pytest.approx(reference, rel=1e-9)
    assert power_spectrum_distance(LONG * scale, other * scale, smoothing=2.0) == pytest.approx(reference, rel=1e-9)
    np.testing.assert_allclose(smoothed_power_spectrum(LONG * scale, 2.0).density, smoothed_power_spectrum(LONG, 2.0).density, rtol=1e-9)
    np.testing.assert_allclose(band_power(LONG * scale, (0.1, 0.3)), band_power(LONG, (0.1, 0.3)), rtol=1e-9)
    np.testing.assert_allclose(lag_autocorrelation(LONG * scale), lag_autocorrelation(LONG), rtol=1e-9)
    np.testing.assert_allclose(population_autocorrelation(LONG * scale, 4), population_autocorrelation(LONG, 4), rtol=1e-9)
    prediction = LONG + 0.3 * other
    for multioutput in ("raw_values", "variance_weighted"):
        np.testing.assert_allclose(r2_score(LONG * scale, prediction * scale, multioutput), r2_score(LONG, prediction, multioutput), rtol=1e-9)


def test_fano_factor_of_huge_counts():
    counts = COUNTS.astype(np.float64)
    np.testing.assert_allclose(fano_factor(counts * 2.0**600), 2.0**600 * fano_factor(counts), rtol=1e-12)
