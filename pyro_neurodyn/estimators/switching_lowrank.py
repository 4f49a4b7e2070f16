"""``SwitchingLowRankRNN``: fit a switching low-rank RNN by the collapsed objective or by VSMC, decode the
states, find every state's fixed points, sample, save and load.

    >>> from pyro_neurodyn import SwitchingLowRankRNN
    >>> m = SwitchingLowRankRNN(obs_dim=20, num_states=2, rank=2, num_units=20)
    >>> m.fit(y, method="collapsed")          # or method="vsmc" (Rao-Blackwellized particle filter)
    >>> m.most_likely_states(y)               # (trials, T)
    >>> m.fixed_points()                      # [FixedPoints of state 0, of state 1, ...]

The Pyro program is :class:`~pyro_neurodyn.models.SwitchingLowRankModel` (``.model``, ``.guide``: the
collapsed pair; ``.module`` and ``.proposal``: the VSMC pair); this class adds validation, the
initialization from data and the decoding helpers.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any, Optional, Union

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.optim.clipped_adam import ClippedAdam
from torch import Tensor, nn

from ..analysis.fixed_points import FixedPoints, latent_map_fixed_points
from ..data.validation import as_trials, check_choice, check_count, check_magnitude, check_positive
from ..distributions import switching_posterior, switching_viterbi
from ..dynamics.lowrank import OrthogonalBasis, orthogonal_basis
from ..guides.proposals import SwitchingKalmanProposal
from ..infer import VSMC_ELBO, FitRun, fit_svi
from ..infer.local_params import module_local_params
from ..infer.particle_online_filter import ParticleOnlineFilter, filtered_state_probabilities
from ..infer.vsmc import RESAMPLING_GRADIENTS
from ..models.switching_lowrank import SwitchingLowRankModel
from ..models.switching_ssm import SwitchingSample
from ..data.recording import Recording
from ..data.recording import observed_entries
from .base import Estimator, mark_padding, module_local
from .configs import SwitchingLowRankRNNConfig, config_arguments
from .principal_subspace import eye_like
from .switching_lowrank_start import filtered_means, start_from_data

__all__ = ["SwitchingLowRankRNN"]

PathLike = Union[str, os.PathLike]
METHODS = ("collapsed", "vsmc")


class SwitchingLowRankRNN(Estimator):
    """K low-rank RNNs ``x_{t+1} = a x_t + V_k phi(U_k x_t - b_k) + N(0, sigma_x^2 I)`` (b_k the thresholds) over one latent,
    switched by a Markov chain (see :mod:`pyro_neurodyn.models.switching_lowrank`).

    Args:
        obs_dim: D. num_states: K. rank: R. num_units: N per state.
        activation: ``"relu"`` (default), ``"clipped_relu"``, ``"tanh"`` or ``"identity"``.
        observation: ``"gaussian"`` (affine readout) or ``"poisson"`` (softplus rates).
        transitions: ``"sticky"`` (default), ``"stationary"`` or ``"recurrent"``. stickiness: initial
            diagonal bias of the transition logits (3 for sticky).
        latent_scale: fixed sigma_x or None to learn it. decay: initial shared a.
        encoder_hidden: LSTM width of the collapsed objective's encoder.
        proposal: the VSMC proposal's moments (:class:`~pyro_neurodyn.guides.SwitchingKalmanProposal`):
            ``"prior_mean"`` (default) or ``"posterior_moments"`` (follows switches of state at once:
            a tighter bound and a likelier fit, see the README). seed: seed of the initialization.

    Device and dtype: the parameters start on the CPU in torch's default dtype; :meth:`to` moves
    ``.module`` and ``.proposal`` (``SwitchingLowRankRNN(...).to(dtype=torch.float64)``), and every
    method converts the data it is given to :attr:`device` and :attr:`dtype`, so its outputs come in
    that dtype (states int64).
    """

    kind = "SwitchingLowRankRNN"

    def __init__(
        self,
        obs_dim: int,
        num_states: int,
        rank: int,
        num_units: int,
        *,
        activation: str = "relu",
        observation: str = "gaussian",
        transitions: str = "sticky",
        stickiness: float = 3.0,
        latent_scale: Optional[float] = None,
        decay: float = 0.9,
        encoder_hidden: int = 32,
        proposal: str = "prior_mean",
        seed: Optional[int] = 0,
    ):
        self.config = SwitchingLowRankRNNConfig(**config_arguments(locals()))
        c = self.config
        with torch.random.fork_rng(), module_local_params():
            if seed is not None:
                torch.manual_seed(seed)
            self.module = SwitchingLowRankModel(
                c.num_states, c.rank, c.num_units, c.obs_dim, activation=c.activation,
                transitions=c.transitions, observation=c.observation, stickiness=c.stickiness,
                latent_scale=c.latent_scale, decay=c.decay, encoder_hidden=c.encoder_hidden,
            )  # fmt: skip
            self.proposal = SwitchingKalmanProposal(self.module, c.proposal)
        self.losses: list[float] = []
        self.method: Optional[str] = None
        self.num_particles = 16
        self._initialized = False  # set by fit, initialize_from_data and load

    def _placed_modules(self) -> list:
        return [self.module, self.proposal]

    @property
    def model(self):
        """The collapsed Pyro model ``model(y)`` (states summed out exactly; use with ``pyro.infer.SVI``)."""
        return self.module.model

    @property
    def guide(self):
        """The encoder guide ``guide(y)`` of :attr:`model`."""
        return self.module.guide

    # ----- fitting -----------------------------------------------------------------------------------
    @module_local
    def fit(
        self,
        y: Any,
        method: str = "collapsed",
        *,
        num_steps: int = 500,
        lr: float = 1e-2,
        num_particles: int = 16,
        resampling_gradient: str = "none",
        batch_size: Optional[int] = None,
        init_from_data: bool = True,
        init_filter_rounds: int = 0,
        clip_norm: Optional[float] = 100.0,
        seed: Optional[int] = 0,
        progress: bool = False,
        num_threads: Optional[int] = None,
        checkpoint: Optional[PathLike] = None,
        checkpoint_every: Optional[int] = None,
        resume: bool = False,
        on_nonfinite: str = "raise",
    ) -> "SwitchingLowRankRNN":
        """Fit by SVI (Adam, lr decayed 10x over the fit); return ``self`` (losses in ``.losses``).

        Args:
            y: recordings ``(trials, T, obs_dim)`` (counts for Poisson), or a :class:`~pyro_neurodyn.data.Recording`
                (ragged trials, missing entries: their likelihood terms are left out).
            method: ``"collapsed"`` (encoder guide, states summed out by the forward algorithm; the
                SRNN's objective) or ``"vsmc"`` (the Rao-Blackwellized particle filter bound with
                ``num_particles`` particles per trial and the proposal ``.proposal``).
            num_steps: SVI steps. lr: Adam learning rate. batch_size: trials per step (default all).
            resampling_gradient: the VSMC gradient through resampling, ``"none"`` or ``"stop_gradient"``
                (:class:`~pyro_neurodyn.infer.VSMC_ELBO`); ``"vsmc"`` only.
            init_from_data: before the first fit, :meth:`initialize_from_data` (Gaussian observations), with
                ``init_filter_rounds`` rounds of refitting the maps to the particle filter's means (its step 4).
            clip_norm: global gradient-norm clip. seed: seeds Pyro/torch. num_threads: torch threads.
            checkpoint, checkpoint_every, resume, on_nonfinite: periodic checkpoints to the file
                ``checkpoint`` (every ``checkpoint_every`` steps, default 50), resuming from it, and what a
                NaN/inf loss does (``"raise"``, ``"stop"``, ``"rollback"``): see
                :class:`~pyro_neurodyn.infer.FitRun`. Without ``on_nonfinite="raise"``'s error, and after
                Ctrl-C, the model keeps its last good parameters and the losses of its completed steps.
        """
        recording = y  # as given (a Recording carries its sessions)
        y, _, mask, lengths = self.recording_arrays(y)
        method = check_choice(method, "method", METHODS)
        num_steps = check_count(num_steps, "num_steps")
        lr = check_positive(lr, "lr")
        num_particles = check_count(num_particles, "num_particles")
        resampling_gradient = check_choice(resampling_gradient, "resampling_gradient", RESAMPLING_GRADIENTS)
        if method == "collapsed" and resampling_gradient != "none":
            raise ValueError(f"resampling_gradient={resampling_gradient!r} applies to method='vsmc'; the collapsed objective has no resampling")
        init_filter_rounds = check_count(init_filter_rounds, "init_filter_rounds", minimum=0)
        arguments = dict(y=y, mask=mask, method=method, num_steps=num_steps, lr=lr, num_particles=num_particles, resampling_gradient=resampling_gradient,
                         batch_size=batch_size, init_from_data=init_from_data, init_filter_rounds=init_filter_rounds, clip_norm=clip_norm, seed=seed)  # fmt: skip
        run = FitRun(self, on_nonfinite=on_nonfinite, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, arguments=arguments)
        if seed is not None:
            pyro.set_rng_seed(seed)
        module = self.module
        module.encoder.set_input_statistics(y, None, mask)
        if init_from_data and not self.losses:
            self._initialize(y, mask, lengths, 3, init_filter_rounds, 64, self.recording_blocks(recording, mask))
        common = dict(batch_size=batch_size, clip_norm=clip_norm, progress=progress, num_threads=num_threads, desc=f"SwitchingLowRankRNN ({method})",
                      run=run, lengths=lengths)  # fmt: skip
        self.method, self._initialized = method, True
        if method == "collapsed":
            elbo, model, guide = Trace_ELBO(max_plate_nesting=1), module.model, module.guide
            data = [y, None, None, mask, lengths]
        else:
            self.num_particles = num_particles
            # the bound per trial and time step, as LowRankRNN.fit (fit_svi scales minibatches up to all trials)
            normalizer = 1.0 / (y.shape[0] * y.shape[1])
            elbo = VSMC_ELBO(num_particles, resampling_gradient=resampling_gradient)
            model, guide = poutine.scale(module, normalizer), poutine.scale(self.proposal, normalizer)
            data = [y, None, observed_entries(y, mask, lengths)]
        # Adam over the parameters of model and proposal (the proposal reads the model's), the learning rate
        # decayed 10x over the fit (lrd per step; ClippedAdam's own clip is off)
        optimizer = ClippedAdam(elbo(module, self.proposal).parameters(), lr=lr, lrd=0.1 ** (1.0 / num_steps), clip_norm=1e6)
        with pyro.validation_enabled(False):
            fit_svi(model, guide, elbo, optimizer, data, num_steps=num_steps, **common)
        run.finish()
        return self

    @module_local
    @torch.no_grad()
    def initialize_from_data(self, y: Any, num_rounds: int = 3, filter_rounds: int = 0, num_particles: int = 64) -> "SwitchingLowRankRNN":
        """Start near the data (Gaussian observations; no-op for Poisson): PCA, then hard EM of the maps.

        1. Readout: ``C`` = the top-R principal directions ``P`` ``(D, R)``, ``d = mean(y)``, sigma_y^2 the
           mean variance outside them; projected latents ``x^ = (y - d) P``.
        2. Labels: a Gaussian HMM (EM) on the speeds ``|x^_{t+1} - x^_t|``, refined by hard EM of an
           autoregressive HMM (:func:`.switching_lowrank_start.affine_labels`): regimes whose flows differ at the same point (a
           rotation against a saddle, say) are told apart even where they move equally fast.
        3. ``num_rounds`` times: each state's map is fit to the one-step pairs ``(x^_t, x^_{t+1})`` of its
           labelled steps by least squares (L-BFGS on ``V_k``, ``U_k``, the thresholds ``b_k`` and the shared ``a``), then the
           labels become the Viterbi path of the model's factors at ``x^``; sigma_x starts at the residual std.
        4. ``filter_rounds`` times (default 0), the same with denoised latents: the particle filter's means
           ``E[x_t | y_{<=t}]`` under the current model (``num_particles`` particles, the
           ``"posterior_moments"`` proposal) replace ``x^``. The projections carry the readout noise, which
           inflates sigma_x (0.13 against the teacher's 0.05 on ``switching_lowrank_data``); three rounds
           bring it to 0.054 and raise the VSMC bound by 1600 nats (60 trials). Hard EM on filter means
           ignores their posterior spread, so more rounds push sigma_x below the truth (0.040 after 5 at 20 trials).
           It pays in long VSMC fits (``benchmarks/bench_switching_lowrank.py``); the maps right after it
           are no closer (20 trials: saddle 0.079 -> 0.111), so it is off by default.

        From a :class:`~pyro_neurodyn.data.Recording`, missing entries start at their channel's observed mean (the
        subspace is that of the steps with an observation, and the filter rounds read the observed entries only), and
        ragged trials' latents are cut into windows of the shortest trial's length
        (:func:`~pyro_neurodyn.data.recording.equal_length_windows`). Sessions that recorded disjoint channels
        (``Recording.from_sessions``) start each its readout rows at the subspace of its own trials and channels,
        its trials' latents being their projections on it (:func:`.principal_subspace.principal_subspace`), each
        session's frame turned (orthogonally, reflections included) onto the first session's so that its one-step
        dynamics follow the first's (:mod:`.session_frames`); the labels and maps, shared, come from all sessions'
        latents. Measured: tests/test_sessions.py.
        """
        recording = y  # as given (a Recording carries its sessions)
        y, _, mask, lengths = self.recording_arrays(y)
        num_rounds = check_count(num_rounds, "num_rounds")
        filter_rounds = check_count(filter_rounds, "filter_rounds", minimum=0)
        num_particles = check_count(num_particles, "num_particles")
        return self._initialize(y, mask, lengths, num_rounds, filter_rounds, num_particles, self.recording_blocks(recording, mask))

    @torch.no_grad()
    def _initialize(
        self, y: Tensor, mask: Optional[Tensor], lengths: Optional[Tensor], num_rounds: int, filter_rounds: int, num_particles: int,
        blocks: Optional[list] = None,
    ) -> "SwitchingLowRankRNN":  # fmt: skip
        self._initialized = True
        if self.config.observation != "gaussian":
            return self
        start_from_data(self.module, self.config, y, mask, lengths, num_rounds, filter_rounds, num_particles, blocks)
        return self

    # ----- decoding ----------------------------------------------------------------------------------
    @module_local
    @torch.no_grad()
    def posterior_latents(self, y: Any) -> Tensor:
        """Latent path ``(trials, T, R)`` of ``y (trials, T, D)`` or a Recording: the encoder's mean after a collapsed
        fit, the particle filter's weighted mean ``E[x_t | y_{<=t}]`` after a VSMC fit; NaN on padded steps."""
        y, _, mask, lengths = self.recording_arrays(y)
        return mark_padding(self._latent_path(y, mask, lengths), lengths, float("nan"))

    def _latent_path(self, y: Tensor, mask: Optional[Tensor], lengths: Optional[Tensor]) -> Tensor:
        self.check_fitted()
        if self.method == "collapsed":
            return self.module.encoder(y, None, mask, lengths).mean
        return filtered_means(self.module, self.proposal, y, self.num_particles, observed_entries(y, mask, lengths))

    @module_local
    @torch.no_grad()
    def state_marginals(self, y: Any) -> Tensor:
        """Smoothed ``p(z_t = k | x)`` at :meth:`posterior_latents`, ``(trials, T, K)`` (forward-backward), for
        ``y (trials, T, D)`` or a Recording (NaN on padded steps; each trial's chain ends at its length)."""
        y, _, mask, lengths = self.recording_arrays(y)
        factors = self.module.latent_factors(self._latent_path(y, mask, lengths), None, lengths)
        return mark_padding(switching_posterior(*factors).marginals, lengths, float("nan"))

    @module_local
    @torch.no_grad()
    def most_likely_states(self, y: Any) -> Tensor:
        """Viterbi path at :meth:`posterior_latents`, ``(trials, T)`` int64, for ``y (trials, T, D)`` or a Recording
        (-1 on padded steps)."""
        y, _, mask, lengths = self.recording_arrays(y)
        factors = self.module.latent_factors(self._latent_path(y, mask, lengths), None, lengths)
        return mark_padding(switching_viterbi(*factors).states, lengths, -1)

    def online(self, num_particles: Optional[int] = None, seed: Optional[int] = None) -> ParticleOnlineFilter:
        """A new online particle filter (the VSMC proposal ``.proposal``, ``num_particles`` particles, default
        :attr:`num_particles`): ``f.update(y_t (D,) or (B, D)) -> (K,) or (B, K)``, the filtered state probabilities
        ``p(z_t = k | y_{<=t}) = sum_s W_t^s alpha_t^s(k)`` (``alpha_t^s`` each particle's exact filter over the K
        states). One step of the offline particle filter (``VSMC_ELBO.filter(.module, .proposal, y)``) per update,
        O(1) memory in time; with the same ``seed`` the beliefs equal that filter's record
        (:mod:`~pyro_neurodyn.infer.particle_online_filter`). Works after either fit method (it filters with the
        fitted model's parameters)."""
        if not self._initialized:
            raise RuntimeError("this SwitchingLowRankRNN has not been fit yet: call fit(y), initialize_from_data(y) or load(path)")
        if num_particles is not None:
            num_particles = check_count(num_particles, "num_particles")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
        config, parameter = self.config, next(self.module.parameters())
        return ParticleOnlineFilter(
            self.module, self.proposal, filtered_state_probabilities, obs_dim=config.obs_dim, input_dim=0, num_states=config.num_states,
            num_particles=self.num_particles if num_particles is None else num_particles, seed=seed, dtype=parameter.dtype,
            device=parameter.device, counts=config.observation == "poisson",
        )  # fmt: skip

    @module_local
    @torch.no_grad()
    def log_evidence(self, y: Any, *, num_particles: Optional[int] = None, seed: Optional[int] = None) -> Tensor:
        """Per-trial particle-filter estimates of ``log p(y)`` ``(trials,)`` for ``y (trials, T, D)`` or a Recording (of
        its observed entries; ``exp`` is unbiased) under the fitted (or data-initialized) model."""
        if not self._initialized:
            raise RuntimeError("this SwitchingLowRankRNN has not been fit yet: call fit(y), initialize_from_data(y) or load(path)")
        y, _, mask, lengths = self.recording_arrays(y)
        if seed is not None:
            pyro.set_rng_seed(seed)
        elbo = VSMC_ELBO(self.num_particles if num_particles is None else check_count(num_particles, "num_particles"))
        with pyro.validation_enabled(False):
            return elbo.log_evidence(self.module, self.proposal, y, None, observed_entries(y, mask, lengths))

    @module_local
    @torch.no_grad()
    def sample(self, num_trials: int, num_steps: int) -> SwitchingSample:
        """Generate ``(y, h, z)`` (``h`` the latents x) for ``num_trials`` new trials of ``num_steps`` steps:
        ``y (num_trials, num_steps, D)``, ``h (num_trials, num_steps, R)``, ``z (num_trials, num_steps)`` int64."""
        num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps", 2)
        return self.module.sample(num_trials, num_steps)

    # ----- the fitted networks -----------------------------------------------------------------------
    def fixed_points(self, state: Optional[int] = None, **options: Any) -> Union[FixedPoints, list]:
        """All fixed points of state ``state``'s map (ReLU or clipped ReLU), or a list over the states."""
        self.check_fitted("fixed_points")
        if state is None:
            return [self.fixed_points(k, **options) for k in range(self.config.num_states)]
        return latent_map_fixed_points(self.module.dynamics.latent_map(state), **options)

    def orthogonal_basis(self, state: int) -> OrthogonalBasis:
        """State ``state``'s parameters in the latent basis where its ``U_k`` has orthonormal columns:
        ``transform (R, R)``, ``U (N, R)``, ``V (R, N)``, ``noise_cov (R, R)``."""
        self.check_fitted("orthogonal_basis")
        _, V, U, _, _ = self.module.dynamics.latent_map(state)
        scale = self.module.latent_log_scale.detach().exp()
        noise = scale.square() * eye_like(scale, self.config.rank)
        return orthogonal_basis(U, V, noise)

    # ----- persistence -------------------------------------------------------------------------------
    def _checkpoint_contents(self) -> tuple[dict, dict, dict]:
        extra = dict(losses=list(self.losses), method=self.method, num_particles=self.num_particles)
        return asdict(self.config), self.module.state_dict(), extra

    def _restore_checkpoint(self, payload: dict) -> None:
        self.module.load_state_dict(payload["state_dict"])
        self.losses[:] = payload["losses"]
        self.method, self.num_particles, self._initialized = payload["method"], int(payload["num_particles"]), True

    def _modules_by_name(self) -> dict[str, nn.Module]:
        return {"model": self.module, "proposal": self.proposal}

    # ----- validation --------------------------------------------------------------------------------
    def validate(self, y: Any, u: Any = None) -> tuple[Tensor, None]:
        """Recordings ``(trials, T, obs_dim)`` (counts for Poisson), checked and converted to the model's device
        and dtype; this model has no inputs (``u`` must be None). A complete, equal-length Recording is accepted."""
        if isinstance(y, Recording):
            return self.complete_recording(y, u)
        if u is not None:
            raise ValueError("a SwitchingLowRankRNN takes no inputs, but inputs were given (u must be None)")
        y = as_trials(y, "y", counts=self.config.observation == "poisson", min_steps=2, dtype=self.dtype, device=self.device)
        if y.shape[-1] != self.config.obs_dim:
            raise ValueError(f"y has {y.shape[-1]} channels but the model was built with obs_dim={self.config.obs_dim}")
        return check_magnitude(y, "y"), None

    def check_fitted(self, action: str = "this") -> None:
        if self.method is None:
            raise RuntimeError(f"this SwitchingLowRankRNN has not been fit yet: {action} needs a fitted model; call fit(y) (or load(path))")
