"""``SRNN``: fit a switching recurrent neural network to recordings, decode states, forecast, generate.

    m = SRNN(num_states=2, latent_dim=3, obs_dim=3)
    m.fit(y)                                # y: (trials, time, channels); losses in m.losses
    m.most_likely_states(y)                 # (trials, time)
    m.forecast(y[:, :100], steps=10)        # (samples, trials, 10, channels)
    m.fit(long_y, window=200)               # one long trial (1, 100000, channels): fit on random windows
    m.state_marginals(long_y)               # decoded whole, the encoder in overlapping chunks
    f = m.online(); f.update(y_t)           # p(z_t | y_{1:t}), one observation at a time

The Pyro program is :class:`~pyro_neurodyn.models.srnn.SRNNModel` (``m.model``, ``m.guide``); this class
adds validation of the data, initialization, the fitting schedule and the decoding helpers (offline, online
and for long trials: :mod:`~pyro_neurodyn.estimators.switching_decoding`).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import asdict
from typing import Any, Optional, Union

import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.optim.clipped_adam import ClippedAdam
from torch import Tensor

from ..data.validation import as_inputs, as_trials, check_count, check_magnitude, check_positive
from ..distributions import switching_filter
from ..infer import FitRun, RandomWindows, fit_svi
from ..models.srnn import SRNNModel
from ..data.recording import observed_entries
from ..models.switching_ssm import SwitchingSample
from ..infer.local_params import module_local_params
from .base import Estimator, module_local
from .configs import SRNNConfig, config_arguments
from .srnn_forecast_inputs import forecast_inputs
from .srnn_start import InitLabels, fill_missing, initial_labels, initialize_linear_readout
from .srnn_warm_start import warm_start_at_readout_latents
from .switching_decoding import SwitchingDecoding

# SVI steps during which the labels of ``init`` anchor the states (``label_steps``' default; see fit's docstring)
LABEL_STEPS = 200
# the same for init="auto" on sessions that recorded different neurons (their matched per-session labels)
SESSION_LABEL_STEPS = 50


class SRNN(SwitchingDecoding, Estimator):
    """Switching RNN with exact state marginalization and an amortized encoder.

    Args:
        num_states: K >= 1 discrete states (one RNN each).
        latent_dim: P, dimension of the continuous latent h.
        obs_dim: D, number of recorded channels (inferred from the data at the first ``fit`` if None).
        input_dim: M, dimension of external inputs u (0: autonomous).
        observation: ``"gaussian"`` or ``"poisson"`` (spike counts; ``link`` softplus or exp).
        transitions: ``"recurrent"`` (default), ``"stationary"``, ``"sticky"`` or ``"input"``.
        emission: ``"linear"`` (default) or ``"mlp"`` map from h to the observation mean/rate.
        latent_scale: fixed dynamics noise sigma_h, or None (default) to learn it.
        encoder_hidden: width of the recurrent encoder (per direction).
        seed: seed of the parameter initialization (None: draw from torch's global RNG); the global RNG is
            left untouched either way. ``fit(seed=...)`` seeds the fit itself.
        dynamics: the per-state maps: ``"rnn"`` (default, the SRNN paper's ``tanh(W_k h + U_k u + b_k)``) or
            ``"mlp"`` (residual maps ``h + B_k tanh(A_k h + G_k u + a_k) + b_k`` of width ``dynamics_hidden``:
            smooth flows such as Lorenz's, which a tanh map of P = 3 units cannot follow; README, "Which model
            do I need?").
        dynamics_hidden: H of the ``"mlp"`` maps.

    Device and dtype: the parameters start on the CPU in torch's default dtype; :meth:`to` moves them
    (``SRNN(...).to(dtype=torch.float64)``; before the first fit, when ``obs_dim`` is unknown, the
    request is kept and applied when the model is built), and every method converts the data it is
    given to :attr:`device` and :attr:`dtype`, so its outputs come in that dtype (states int64).
    """

    kind = "SRNN"

    def __init__(
        self,
        num_states: int = 2,
        latent_dim: int = 3,
        obs_dim: Optional[int] = None,
        *,
        input_dim: int = 0,
        observation: str = "gaussian",
        transitions: str = "recurrent",
        emission: str = "linear",
        link: str = "softplus",
        latent_scale: Optional[float] = None,
        encoder_hidden: int = 32,
        seed: Optional[int] = 0,
        dynamics: str = "rnn",
        dynamics_hidden: int = 32,
    ):
        self.config = SRNNConfig(**config_arguments(locals()))
        self.module: Optional[SRNNModel] = None
        self.losses: list[float] = []
        self.filter_steps_done: Optional[int] = 0  # SVI steps the causal encoder was trained for (None: unknown)
        if self.config.obs_dim is not None:
            self._build(self.config.obs_dim)

    # ----- construction ------------------------------------------------------------------------------
    def _build(self, obs_dim: int) -> None:
        c = self.config
        c.obs_dim = obs_dim
        # a seeded model draws its parameters from its own seed and leaves the caller's RNG as it was; it is built
        # with module-local parameters, as the estimators build all their modules (see estimators/base.py)
        seeded = c.seed is not None
        with torch.random.fork_rng() if seeded else nullcontext(), module_local_params():
            if seeded:
                torch.manual_seed(c.seed)
            self.module = SRNNModel(
                c.num_states, c.latent_dim, obs_dim,
                input_dim=c.input_dim, transitions=c.transitions, emission=c.emission,
                observation=c.observation, link=c.link, latent_scale=c.latent_scale,
                encoder_hidden=c.encoder_hidden, dynamics=c.dynamics, dynamics_hidden=c.dynamics_hidden,
            )  # fmt: skip
        if self._requested_placement():  # what to() asked before obs_dim was known
            self.module.to(**self._requested_placement())

    def _placed_modules(self) -> list:
        """The module to move (None until ``obs_dim`` is known: :meth:`to` then waits for :meth:`_build`)."""
        return [self.module]

    def check_fitted(self, action: str = "this") -> None:
        if self.module is None or not self.losses:
            raise RuntimeError(f"this SRNN has not been fit yet: {action} needs a fitted model; call fit(y) (or SRNN.load(path))")

    def _fitted_module(self) -> SRNNModel:
        self.check_fitted()
        return self.module

    @property
    def model(self):
        """The Pyro model ``model(y, u=None)`` (usable with ``pyro.infer.SVI`` directly)."""
        if self.module is None:
            raise RuntimeError("obs_dim is unknown until the first fit: pass obs_dim=... to SRNN(...)")
        return self.module.model

    @property
    def guide(self):
        """The amortized guide ``guide(y, u=None)`` matching :attr:`model`."""
        if self.module is None:
            raise RuntimeError("obs_dim is unknown until the first fit: pass obs_dim=... to SRNN(...)")
        return self.module.guide

    def validate(self, y: Any, u: Any = None, *, name: str = "y", min_steps: int = 2) -> tuple[Tensor, Optional[Tensor]]:
        """Recordings ``(trials, time, obs_dim)`` (counts for Poisson) and inputs ``(trials, time, input_dim)``,
        checked and converted to the model's device and dtype (see :meth:`Estimator.validate`)."""
        counts = self.config.observation == "poisson"
        y = check_magnitude(as_trials(y, name, counts=counts, min_steps=min_steps, dtype=self.dtype, device=self.device), name)
        u = as_inputs(u, y, "u", name)  # in y's dtype, on y's device
        obs_dim, input_dim = self.config.obs_dim, self.config.input_dim
        if obs_dim is not None and y.shape[-1] != obs_dim:
            raise ValueError(f"{name} has {y.shape[-1]} channels but this SRNN was built with obs_dim = {obs_dim}")
        if input_dim and u is None:
            raise ValueError(f"this SRNN takes inputs of dim {input_dim}: pass u (trials, time, {input_dim})")
        if u is not None and u.shape[-1] != input_dim:
            raise ValueError(f"u has {u.shape[-1]} channels but this SRNN was built with input_dim = {input_dim}")
        return y, u

    # ----- fitting -----------------------------------------------------------------------------------
    @module_local
    def fit(
        self,
        y: Any,
        u: Any = None,
        *,
        num_steps: int = 1000,
        lr: float = 1e-2,
        init: InitLabels = "auto",
        label_steps: Optional[int] = None,
        label_weight: float = 50.0,
        filter_steps: Optional[int] = None,
        num_particles: int = 1,
        batch_size: Optional[int] = None,
        window: Optional[int] = None,
        clip_norm: Optional[float] = 100.0,
        seed: Optional[int] = 0,
        progress: bool = True,
        num_threads: Optional[int] = None,
        checkpoint: Union[str, os.PathLike, None] = None,
        checkpoint_every: Optional[int] = None,
        resume: bool = False,
        on_nonfinite: str = "raise",
        warm_start: int = 0,
    ) -> "SRNN":
        """Fit by SVI (Adam); return ``self``.

        ``.losses`` holds the loss (negative ELBO) of every step: a second ``fit`` extends it (with a new
        optimizer and learning-rate schedule, from the current parameters).

        Args:
            y: recordings ``(trials, time, channels)`` (or ``(time, channels)``); counts for Poisson. Or a
                :class:`~pyro_neurodyn.data.Recording` (ragged trials, missing entries, its own inputs): only
                observed entries are scored, each trial up to its length.
            u: inputs ``(trials, time, input_dim)`` if the model has inputs.
            num_steps: SVI steps of the main phase.
            lr: Adam learning rate (decayed 10x over the fit).
            init: labels that anchor the states (the SRNN paper's initialization): ``"auto"`` (default):
                ``"arhmm"``, for a Recording of sessions that recorded different channels as a warm-up only (see
                below); ``"arhmm"``: the Viterbi path of an autoregressive HMM with a full noise covariance per state, fit by exact
                EM, on the data for Gaussian
                observations, on smoothed square-root counts projected on ``latent_dim`` principal
                components for Poisson), ``"hmm"`` (a Gaussian HMM: a mixture, no dynamics),
                ``"kmeans"`` (k-means of the observations), an int array ``(trials, time)`` of your own,
                or None (no labels, purely unsupervised). Why ARHMM labels: where regimes differ only in
                their dynamics (``pyro_neurodyn.data.rotation_switching_data`` and its siblings) a
                Gaussian HMM is at chance and so is an SRNN anchored to it, while ARHMM labels find
                the regimes; on switching Lorenz, whose lobes a mixture already separates, both do
                about equally well (measured numbers: README, SRNN section). Sessions with disjoint channels
                (``Recording.from_sessions``) are labelled each on its own and matched by their dynamics
                (:mod:`.session_labels`) when ``init`` names a method; with ``"auto"`` those labels anchor only the
                first ``SESSION_LABEL_STEPS`` = 50 steps (``label_steps``' default then). Labels for the whole fit
                keep each session's own mistakes: a session that saw only some of the regimes in training cannot
                be labelled into K states alone (three sessions of rotation data, two of them seeing one regime
                each: held-out accuracy 0.87 / 0.62 / 0.99). No labels at all (the default before) let the shared
                dynamics sort the regimes out there (0.998-1.000), but where each session has little data (2
                training trials of 100 steps, 5 neurons; ``benchmarks/multi_session.py``'s ``DATA_LIMITED``, 1000
                steps) the joint fit found them in 5 of 15 runs (data seeds 0-4 x fit seeds 0-2), against 13 of 15
                with the 50-step warm-up, which also keeps 0.998-1.000 on the one-regime sessions
                (tests/test_sessions.py).
            label_steps: steps (from the start) during which the ELBO gets the extra term
                ``label_weight * sum_t log p(z_t = label_t | h)``; default: for Gaussian observations the first
                ``LABEL_STEPS`` = 200 (all steps of a shorter fit), for counts all ``num_steps``
                (``SESSION_LABEL_STEPS`` = 50 for sessions of different channels with ``init="auto"``, above).
                Ignored with ``init=None``. Why a warm-up for Gaussian observations, as in the paper, and not the
                whole fit (the default before): labels kept on hold the states where the labeller put them, and
                the ELBO pays for it. On switching Lorenz (data seeds 0-4 x model and fit seeds 0-3, 1000 steps)
                the held-out trial's log evidence is 35-90 nats higher with the 200-step warm-up (the training
                trials': 700-1300 nats), the held-out lobe accuracy is the same (mean 0.968 both) and the fit is
                faster (26-35 s against 33-52 s, 1 thread); warm-ups of 100 and 400 steps give the same evidence
                to within 10 nats per trial. The simulators of dynamics-defined switching stay at 0.995-1.000.
                Why not for counts: there the ELBO alone moves the states off the regimes while it raises the
                evidence (Poisson rotation data, 30 neurons: held-out accuracy 0.905 against 0.960, evidence
                +327 nats; tutorial 6's recording: 0.51 against 0.97). ``dynamics="mlp"`` on Lorenz also needs
                the labels on to keep its states on the lobes (README, SRNN section; ``benchmarks/lorenz_boundary.py``).
            label_weight: weight of the label term.
            filter_steps: steps that then fit the causal encoder used by :meth:`forecast`,
                :meth:`filter_marginals` and :meth:`online`, with the model frozen (default num_steps // 3).
            num_particles: guide samples per step (vectorized; the encoder runs once per step, so
                extra particles only cost the model's scan).
            batch_size: trials per step (default: all; on a ragged Recording the batches are buckets of similar
                length, each cut to its longest trial, see :func:`~pyro_neurodyn.infer.fit_svi`); with ``window``,
                windows per step (default 16).
            window: fit on random windows of this many steps instead of whole trials (long recordings, e.g. one
                trial of 1e5 steps): each step draws ``batch_size`` windows uniformly among all windows inside
                the trials and scores them as trials (each window's first step as a start), the loss scaled to
                the whole data (:class:`~pyro_neurodyn.infer.RandomWindows`). At most the shortest trial. The
                labels (``init``) and the input statistics still come from the whole recording.
            clip_norm: global gradient-norm clip.
            seed: random seed (None: leave the RNG as it is). progress: show progress bars.
            num_threads: torch threads during the fit (see :func:`~pyro_neurodyn.infer.fit_svi`).
            warm_start: before the first fit's SVI, this many Adam steps move the dynamics, transitions and
                sigma_h to maximize ``log p(h0)`` (plus the label term), and as many move the encoder to maximize
                ``log q(h0 | y)``, where ``h0`` are the least-squares latents of the data under the PCA readout
                (:mod:`.srnn_warm_start`; Gaussian observations and a linear readout only). Default 0. With
                ``SRNN(..., dynamics="mlp")`` on switching Lorenz, 500 made the 10-step forecast MSE 0.55x the
                best linear model's, where without it the fit only matched them (labels held for the whole fit;
                README, "Which model do I need?").
            checkpoint, checkpoint_every, resume, on_nonfinite: periodic checkpoints to the file
                ``checkpoint`` (every ``checkpoint_every`` steps, default 50), resuming from it, and what a
                NaN/inf loss does (``"raise"``, ``"stop"``, ``"rollback"``): see
                :class:`~pyro_neurodyn.infer.FitRun`. Without ``on_nonfinite="raise"``'s error, and after
                Ctrl-C, the model keeps its last good parameters and the losses of its completed steps.
        """
        data = y
        y, u, mask, lengths = self.recording_arrays(y, u)
        num_steps = check_count(num_steps, "num_steps")
        num_particles = check_count(num_particles, "num_particles")
        lr = check_positive(lr, "lr")
        label_weight = check_positive(label_weight, "label_weight")
        warm_start = check_count(warm_start, "warm_start", minimum=0)
        pca_readout = (self.config.observation, self.config.emission) == ("gaussian", "linear")  # the readout starts at the PCA
        if warm_start and not pca_readout:
            raise ValueError(f"warm_start needs observation='gaussian' and emission='linear' (it starts from the PCA readout), got {self.config.observation!r} and {self.config.emission!r}")
        blocks = self.recording_blocks(data, mask)  # sessions with disjoint channels
        if isinstance(init, str) and init == "auto":
            init = "arhmm"
            if blocks is not None and label_steps is None:  # labels per session as a warm-up only (docstring)
                label_steps = min(SESSION_LABEL_STEPS, num_steps)
        if label_steps is None:  # a warm-up for Gaussian observations, the whole fit for counts (docstring)
            label_steps = min(LABEL_STEPS, num_steps) if self.config.observation == "gaussian" else num_steps
        label_steps = check_count(label_steps, "label_steps", minimum=0)
        filter_steps = num_steps // 3 if filter_steps is None else check_count(filter_steps, "filter_steps", minimum=0)
        if label_steps > num_steps:
            raise ValueError(f"label_steps ({label_steps}) must not exceed num_steps ({num_steps})")
        arguments = dict(y=y, u=u, mask=mask, lengths=lengths, num_steps=num_steps, lr=lr, init=init if isinstance(init, (str, type(None))) else torch.as_tensor(init),
                         label_steps=label_steps, label_weight=label_weight, filter_steps=filter_steps, num_particles=num_particles,
                         batch_size=batch_size, clip_norm=clip_norm, seed=seed)  # fmt: skip
        windows = None
        if warm_start:  # fingerprinted only when given, as window
            arguments["warm_start"] = warm_start
        if window is not None:  # fingerprinted only when given: checkpoints of fits without windows stay resumable
            arguments["window"] = window
            trial_lengths = torch.full((y.shape[0],), y.shape[1]) if lengths is None else lengths.cpu()
            windows = RandomWindows(trial_lengths, window, 16 if batch_size is None else batch_size)
        run = FitRun(self, on_nonfinite=on_nonfinite, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, arguments=arguments)
        labels = initial_labels(init, y, self.config, seed, mask, lengths, blocks)
        if labels is None:  # init=None: no labels, so every step is an unsupervised one
            label_steps = 0
        else:
            labels = labels.to(y.device)  # int64 (trials, T), next to the data
        if seed is not None:
            pyro.set_rng_seed(seed)
        if self.module is None:
            self._build(y.shape[-1])
        module = self.module
        observed = observed_entries(y, mask, lengths)
        module.encoder.set_input_statistics(y, u, observed)
        module.filter_encoder.set_input_statistics(y, u, observed)
        if not self.losses:
            if pca_readout:
                initialize_linear_readout(self.module.emission, fill_missing(y, mask, lengths), self.config.latent_dim, lengths, blocks)
                if warm_start:
                    warm_start_at_readout_latents(module, y, u, labels, mask, lengths, steps=warm_start, lr=lr, label_weight=label_weight)
        # Adam with the learning rate decayed 10x over the whole fit (lrd per step; ClippedAdam's own clip is off).
        # The main phases train model and smoothing encoder; the filter phase only the causal encoder, with an
        # optimizer of its own that starts again from lr (its losses, of another objective, stay out of .losses).
        # Freezing by the optimizer's parameters (not poutine.block): the model's parameters are also read
        # lazily inside CollapsedSwitchingPath.log_prob, outside any block.
        decay = 0.1 ** (1.0 / max(num_steps + filter_steps, 1))
        filter_parameters = list(module.filter_encoder.parameters())
        filter_ids = {id(p) for p in filter_parameters}
        main_parameters = [p for p in module.parameters() if id(p) not in filter_ids]
        main_optimizer = ClippedAdam(main_parameters, lr=lr, lrd=decay, clip_norm=1e6)
        common = dict(batch_size=batch_size if windows is None else None, batches=windows, clip_norm=clip_norm, progress=progress,
                      num_threads=num_threads, run=run, lengths=lengths if windows is None else None)  # fmt: skip
        elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)
        with pyro.validation_enabled(False):  # speed; the caller's setting is restored afterwards
            if labels is not None and label_steps:
                fit_svi(module.model, module.guide, elbo, main_optimizer, [y, u, labels, mask, lengths], num_steps=label_steps,
                        desc="SRNN (labels)", label_weight=label_weight, **common)  # fmt: skip
            if num_steps - label_steps and not run.stopped:
                fit_svi(module.model, module.guide, elbo, main_optimizer, [y, u, None, mask, lengths], num_steps=num_steps - label_steps,
                        desc="SRNN", **common)  # fmt: skip
            if filter_steps and not run.stopped:
                filter_optimizer = ClippedAdam(filter_parameters, lr=lr, lrd=decay, clip_norm=1e6)
                fit_svi(module.model, module.filter_guide, elbo, filter_optimizer, [y, u, None, mask, lengths], num_steps=filter_steps,
                        desc="SRNN (filter)", record_losses=False, callback=self._count_filter_step, **common)  # fmt: skip
        run.finish()
        return self

    def _count_filter_step(self, step: int, loss: float) -> None:
        """``fit_svi`` callback of the filter phase: one more training step of the causal encoder."""
        self.filter_steps_done = (self.filter_steps_done or 0) + 1

    # ----- decoding: posterior_latents, state_marginals, most_likely_states, filter_marginals, reconstruct, online
    #       (SwitchingDecoding) --------------------------------------------------------------------------
    @module_local
    @torch.no_grad()
    def log_evidence(self, y: Any, u: Any = None, *, num_particles: int = 100, seed: Optional[int] = None) -> Tensor:
        """Importance-weighted estimates of ``log p(y | u)`` per trial, ``(trials,)``, for ``y (trials, time, channels)``
        or a Recording (its observed entries, each trial up to its length): states summed out exactly, h sampled
        from the encoder (see :meth:`~pyro_neurodyn.models.switching_ssm.SwitchingStateSpaceModel.log_evidence`)."""
        y, u, mask, lengths = self.recording_arrays(y, u)
        num_particles = check_count(num_particles, "num_particles")
        module = self._fitted_module()
        if seed is not None:
            pyro.set_rng_seed(seed)
        return module.log_evidence(y, u, num_particles, mask=mask, lengths=lengths)

    @module_local
    @torch.no_grad()
    def forecast(self, y_prefix: Any, steps: int, num_samples: int = 100, u: Any = None) -> Tensor:
        """Sample ``steps`` future observations after each trial's prefix: ``(num_samples, trials, steps, channels)``.

        Filters with the causal encoder (h_{1:t} ~ q(h | y_{1:t}), then p(z_t | h_{1:t}) exactly), then samples z and
        h forward from the model from each trial's last observed step.

        Args:
            y_prefix: prefixes ``(trials, t, channels)``, ``t >= 1``, or a :class:`~pyro_neurodyn.data.Recording` of ragged
                prefixes: trial b's forecast then starts after its own last step ``lengths[b] - 1`` (the padding
                after it is never read), and its missing entries are read as missing by the encoder (its
                ``mask``). A trial's forecast depends on its own prefix only.
            steps: steps to forecast. num_samples: draws per trial.
            u: inputs covering prefix and forecast: ``(trials, t + steps, M)`` (or longer) for arrays; for a
                Recording, step s of trial b at ``u[b, s]``, ``lengths[b] + steps`` steps of each trial needed.
                A Recording's own inputs (``Recording.u``, which must then cover its trials' forecasts too) are
                used when ``u`` is None; giving both is a ValueError.
        """
        self._check_filter_encoder("forecast")
        steps, num_samples = check_count(steps, "steps"), check_count(num_samples, "num_samples")
        y, u_prefix, mask, lengths, u_future = forecast_inputs(self, y_prefix, steps, u)
        module = self._fitted_module()
        h = module.filter_encoder(y, u_prefix, mask, lengths).rsample((num_samples,))  # (S, trials, T, P)
        filtered = switching_filter(*module.latent_factors(h, u_prefix, lengths))  # (S, trials, T, K)
        trials = torch.arange(y.shape[0], device=y.device)
        last = torch.full_like(trials, y.shape[1] - 1) if lengths is None else lengths - 1  # each trial's last step
        z_now = torch.distributions.Categorical(probs=filtered[:, trials, last]).sample()
        return module.simulate(h[:, trials, last], z_now, steps, u_future).y

    @module_local
    @torch.no_grad()
    def sample(self, num_trials: int, num_steps: int, u: Any = None) -> SwitchingSample:
        """Generate ``(y, h, z)`` for ``num_trials`` new trials of ``num_steps`` steps from the model, inputs
        ``u (num_trials, num_steps, M)``: ``y (num_trials, num_steps, channels)``, ``h (num_trials, num_steps, latent_dim)``,
        ``z (num_trials, num_steps)`` int64."""
        num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps", 2)
        u = None if u is None else as_trials(u, "u", min_steps=num_steps, dtype=self.dtype, device=self.device)
        return self._fitted_module().sample(num_trials, num_steps, u)

    # ----- persistence (save and load: Estimator) ------------------------------------------------------
    def _checkpoint_contents(self) -> tuple[dict, dict, dict]:
        extra = {"losses": list(self.losses)}
        if self.filter_steps_done is not None:
            extra["filter_steps_done"] = self.filter_steps_done
        return asdict(self.config), self.module.state_dict(), extra

    def _restore_checkpoint(self, payload: dict) -> None:
        self.module.load_state_dict(payload["state_dict"])
        self.losses[:] = payload["losses"]
        self.filter_steps_done = payload.get("filter_steps_done")  # None in files written before it was recorded

    def _modules_by_name(self) -> dict[str, SRNNModel]:
        return {"srnn": self.module}
