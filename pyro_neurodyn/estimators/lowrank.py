"""``LowRankRNN``: fit, filter, sample, save and load a stochastic low-rank RNN (Pals et al. 2024).

    >>> from pyro_neurodyn import LowRankRNN
    >>> rnn = LowRankRNN(obs_dim=20, rank=2, num_units=20, readout="one_to_one")
    >>> rnn.fit(y, epochs=100)                     # y: (trials, T, 20); VSMC with the optimal proposal
    >>> rnn.log_evidence(y)                        # (trials,) estimates of log p(y)
    >>> rnn.filter(y).means                        # (trials, T, 2) filtered latent means
    >>> rnn.sample(50, 200).y                      # new trials from the fitted network
    >>> a, V, U, h, activation = rnn.latent_map()  # z -> a z + V phi(U z, h), e.g. for fixed points
    >>> rnn.fixed_points().points                  # (n, R) all fixed points (ReLU / clipped ReLU)

The model is :class:`~pyro_neurodyn.models.LowRankRNNModel` (``.model``), the proposal a guide of
:mod:`pyro_neurodyn.guides.proposals` (``.guide``), and the objective
:class:`~pyro_neurodyn.infer.VSMC_ELBO`, optimized with RAdam (or Adam) and an exponentially decaying
learning rate (lr -> lr_end over the fit, as in the paper) by :func:`~pyro_neurodyn.infer.fit_svi`.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import pyro
import pyro.optim
import torch
from pyro import poutine
from scipy.ndimage import gaussian_filter1d
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..analysis.fixed_points import FixedPoints, latent_map_fixed_points
from ..data.validation import as_inputs, as_trials, check_count, check_magnitude, check_positive
from ..dynamics.lowrank import (
    ACTIVATIONS,
    Covariance,
    LatentMap,
    LowRankTransition,
    OrthogonalBasis,
    UnitNetwork,
    latent_to_units,
    orthogonal_basis,
    unit_network,
)
from ..dynamics.readouts import AffineReadoutMap, LowRankGaussianReadout, LowRankPoissonReadout, OneToOneReadoutMap
from ..guides.proposals import BootstrapProposal, EncoderProposal, OptimalProposal
from ..infer import VSMC_ELBO, FitRun, fit_svi, load_checkpoint, save_checkpoint
from ..infer.checkpoint import renamed_modules
from ..models.lowrank_rnn import LowRankRNNModel
from .placement import DeviceLike, PlacedEstimator, saved_dtype

__all__ = ["LowRankFilterResult", "LowRankRNN", "LowRankSample"]

PathLike = Union[str, os.PathLike]
SMOOTHED_RATE_FLOOR = 0.01  # counts per step; where smoothed Poisson counts are lower, initialization clamps them


class LowRankFilterResult(NamedTuple):
    """Particle filter output, batch-first: ``means`` ``(B, T, R)`` = ``sum_k W_t^k z_t^k`` (the filtering
    means ``E[z_t | y_{<=t}]``), ``particles`` ``(B, T, K, R)``, normalized ``log_weights`` ``(B, T, K)``,
    ``ess`` ``(B, T)``, and ``log_evidence`` ``(B,)`` the estimate of ``log p(y)``."""

    means: Tensor
    particles: Tensor
    log_weights: Tensor
    ess: Tensor
    log_evidence: Tensor


class LowRankSample(NamedTuple):
    """Generated trials: ``latents`` ``(B, T, R)``, recordings ``y`` ``(B, T, D)``, and ``means``
    ``(B, T, D)`` the readout means (Gaussian mean or Poisson rate) given the latents."""

    latents: Tensor
    y: Tensor
    means: Tensor


class LowRankRNN(PlacedEstimator):
    """A stochastic low-rank RNN ``z_{t+1} = a z_t + V phi(U z_t + W_u v_t, h) + eps`` with a readout.

    Args:
        obs_dim: D, channels of the recordings. rank: R, at most N and D. num_units: N.
        input_dim: Du, dimension of external inputs (0: none).
        activation: ``"relu"``, ``"clipped_relu"``, ``"identity"`` or ``"tanh"``.
        observation: ``"gaussian"`` or ``"poisson"`` (counts; rates ``softplus(.)``).
        readout: ``"affine"`` (``W z + b``) or ``"one_to_one"`` (channel i reads unit i's current
            ``x_i = (U z + W_u v)_i``; needs ``obs_dim == num_units``).
        proposal: ``"optimal"`` (closed form, Gaussian readouts), ``"bootstrap"`` or ``"encoder"`` (a causal
            CNN); default: optimal for Gaussian, encoder for Poisson observations.
        noise, initial_noise: parameterization of Sigma_z and Sigma_1: ``"full"``, ``"diag"``, ``"scalar"``.
        filter_inputs: the units low-pass filter the inputs (True) or receive them raw.
        decay: initial ``a = 1 - dt/tau``. train_decay: learn ``a`` (default) or keep it at ``decay``
            (a fixed time constant ``tau = dt / (1 - decay)``). noise_scale, initial_noise_scale, obs_noise_scale: initial std's.
        train_readout: train the readout's weights and offsets (default: yes, except the gain/offset of a
            Gaussian one-to-one readout, which stay 1 and 0 as in the paper: U already sets the scale).
        encoder_kernel_sizes, encoder_channels: the encoder proposal's CNN.
        seed: seed of the parameter initialization (the global RNG is left untouched).

    Device and dtype: the parameters start on the CPU in torch's default dtype; :meth:`to` moves
    ``.model`` and ``.guide`` (``LowRankRNN(...).to(dtype=torch.float64)``), and every method converts
    the data it is given to :attr:`device` and :attr:`dtype`, so its outputs come in that dtype.
    """

    kind = "LowRankRNN"

    def __init__(
        self,
        obs_dim: int,
        rank: int,
        num_units: int,
        *,
        input_dim: int = 0,
        activation: str = "relu",
        observation: str = "gaussian",
        readout: str = "affine",
        proposal: Optional[str] = None,
        noise: str = "full",
        initial_noise: str = "full",
        filter_inputs: bool = True,
        decay: float = 0.9,
        train_decay: bool = True,
        noise_scale: float = 0.1,
        initial_noise_scale: float = 1.0,
        obs_noise_scale: float = 0.1,
        train_readout: Optional[bool] = None,
        encoder_kernel_sizes: Sequence[int] = (21, 11, 1),
        encoder_channels: int = 64,
        seed: Optional[int] = None,
    ):
        config = dict(
            obs_dim=check_count(obs_dim, "obs_dim"),
            rank=check_count(rank, "rank"),
            num_units=check_count(num_units, "num_units"),
            input_dim=check_count(input_dim, "input_dim", minimum=0),
            activation=_choice(activation, "activation", tuple(ACTIVATIONS)),
            observation=_choice(observation, "observation", ("gaussian", "poisson")),
            readout=_choice(readout, "readout", ("affine", "one_to_one")),
            proposal=_choice(proposal if proposal is not None else ("optimal" if observation == "gaussian" else "encoder"), "proposal", ("optimal", "bootstrap", "encoder")),
            noise=_choice(noise, "noise", Covariance.KINDS),
            initial_noise=_choice(initial_noise, "initial_noise", Covariance.KINDS),
            filter_inputs=_flag(filter_inputs, "filter_inputs"),
            decay=_open_unit_interval(decay, "decay"),
            train_decay=_flag(train_decay, "train_decay"),
            noise_scale=check_positive(noise_scale, "noise_scale"),
            initial_noise_scale=check_positive(initial_noise_scale, "initial_noise_scale"),
            obs_noise_scale=check_positive(obs_noise_scale, "obs_noise_scale"),
            train_readout=None if train_readout is None else _flag(train_readout, "train_readout"),
            encoder_kernel_sizes=[check_count(k, "encoder_kernel_sizes") for k in _sequence(encoder_kernel_sizes, "encoder_kernel_sizes")],
            encoder_channels=check_count(encoder_channels, "encoder_channels"),
            seed=None if seed is None else check_count(seed, "seed", minimum=0),
        )
        if config["rank"] > config["num_units"]:
            raise ValueError(
                f"rank must be <= num_units: a rank-R connectivity U V needs at least R units, got rank={rank}, num_units={num_units}"
            )
        if config["rank"] > config["obs_dim"]:
            raise ValueError(
                f"rank must be <= obs_dim: R latent dims read out into fewer channels are not identifiable "
                f"(and the readout starts at the data's top-R principal directions), got rank={rank}, obs_dim={obs_dim}"
            )
        if config["readout"] == "one_to_one" and config["obs_dim"] != config["num_units"]:
            raise ValueError(f"a one_to_one readout needs obs_dim == num_units, got obs_dim={obs_dim}, num_units={num_units}")
        if config["proposal"] == "optimal" and config["observation"] != "gaussian":
            raise ValueError("proposal='optimal' needs Gaussian observations; use 'encoder' or 'bootstrap' for Poisson")
        self.config = config
        with torch.random.fork_rng():
            if seed is not None:
                torch.manual_seed(seed)
            self.model = _build_model(config)
            self.guide = _build_guide(config, self.model)
        self.losses: list[float] = []
        self.num_particles = 64
        self._optimizer_state: Optional[tuple[str, dict]] = None  # (optimizer, its per-parameter state) after a fit
        self._running_optimizer: Optional[tuple[str, Any]] = None  # (optimizer, its pyro scheduler) during a fit
        # the random initialization: filter, log_evidence and save refuse a model that still has it (and no fit)
        self._initial_state = {key: value.detach().clone() for key, value in self.model.state_dict().items()}

    def _placed_modules(self) -> list:
        return [self.model, self.guide]

    def to(self, device: DeviceLike = None, dtype: Optional[torch.dtype] = None) -> "LowRankRNN":
        """Move ``.model`` and ``.guide`` (see :meth:`PlacedEstimator.to`); return ``self``. The record of
        the random initialization (what "not fit yet" compares against) moves with them."""
        super().to(device, dtype)
        device, dtype = self._placement()
        self._initial_state = {
            key: value.to(device=device, dtype=dtype if value.is_floating_point() else None) for key, value in self._initial_state.items()
        }
        return self

    # ---------------------------------------------------------------------------------------------
    def fit(
        self,
        y: Any,
        u: Any = None,
        *,
        num_particles: int = 64,
        epochs: Optional[int] = None,
        num_steps: Optional[int] = None,
        batch_size: int = 10,
        lr: float = 1e-3,
        lr_end: Optional[float] = None,
        optimizer: str = "radam",
        resampling: str = "systematic",
        ess_threshold: Optional[float] = None,
        resampling_gradient: str = "none",
        clip_norm: Optional[float] = None,
        init_from_data: bool = True,
        seed: Optional[int] = None,
        progress: bool = True,
        callback: Optional[Callable[[int, float], None]] = None,
        checkpoint: Optional[PathLike] = None,
        checkpoint_every: Optional[int] = None,
        resume: bool = False,
        on_nonfinite: str = "raise",
    ) -> "LowRankRNN":
        """Maximize the VSMC bound over minibatches of trials; return ``self``.

        The objective is the bound per trial and time step (as in the paper); ``.losses`` holds its
        negative at every step (nats per trial and step), and ``callback(step, loss)`` receives it.
        Each call starts a new learning-rate schedule from the current parameters; a later call with the
        same optimizer keeps the moment estimates of the previous one (a fresh Adam's first step moves every
        parameter by about ``lr`` regardless of its gradient, which after a fit's decayed schedule threw a
        trained Poisson model far off, to a NaN loss).

        Args:
            y: recordings ``(trials, T, obs_dim)`` (counts for Poisson). u: inputs ``(trials, T, input_dim)``.
            num_particles: K per trial. epochs: passes over all trials (``trials // batch_size`` steps
                each); or num_steps: gradient steps. batch_size: trials per step.
            lr, lr_end: the learning rate decays exponentially from lr to lr_end <= lr (default lr / 100)
                over the fit, once per epoch. optimizer: ``"radam"`` or ``"adam"``.
            resampling, ess_threshold, resampling_gradient: see :class:`~pyro_neurodyn.infer.VSMC_ELBO`.
            clip_norm: clip the global gradient norm.
            init_from_data: before the first fit, start the readout at the data's principal subspace (of
                the smoothed rates' link for counts) and the dynamics at a one-step regression
                (:meth:`initialize_from_data`).
            seed: seeds Pyro/torch first. progress: show a progress bar.
            checkpoint, checkpoint_every, resume, on_nonfinite: periodic checkpoints to the file
                ``checkpoint`` (every ``checkpoint_every`` steps, default 50), resuming from it, and what a
                NaN/inf loss does (``"raise"``, ``"stop"``, ``"rollback"``): see
                :class:`~pyro_neurodyn.infer.FitRun`. Without ``on_nonfinite="raise"``'s error, and after
                Ctrl-C, the model keeps its last good parameters and the losses of its completed steps.
        """
        y, u = self._validate_data(y, u)
        init_from_data = _flag(init_from_data, "init_from_data")
        if init_from_data and not self.losses:
            _check_enough_pairs(y)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(step, loss), got {type(callback).__name__}")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
        num_particles = check_count(num_particles, "num_particles")
        batch_size = min(check_count(batch_size, "batch_size"), y.shape[0])
        steps_per_epoch = max(1, y.shape[0] // batch_size)
        if (epochs is None) == (num_steps is None):
            raise ValueError("give exactly one of epochs and num_steps")
        num_steps = check_count(epochs, "epochs") * steps_per_epoch if epochs is not None else check_count(num_steps, "num_steps")
        lr = check_positive(lr, "lr")
        lr_end = lr / 100.0 if lr_end is None else check_positive(lr_end, "lr_end")
        if lr_end > lr:
            raise ValueError(f"lr_end must be <= lr (the learning rate decays from lr to lr_end), got lr_end={lr_end} > lr={lr}")
        optimizers = {"radam": torch.optim.RAdam, "adam": torch.optim.Adam}
        optimizer = _choice(optimizer, "optimizer", tuple(optimizers))
        num_epochs = math.ceil(num_steps / steps_per_epoch)
        gamma = (lr_end / lr) ** (1.0 / num_epochs)
        scheduler = pyro.optim.ExponentialLR({"optimizer": optimizers[optimizer], "optim_args": {"lr": lr}, "gamma": gamma})
        if self._optimizer_state is not None and self._optimizer_state[0] == optimizer:
            scheduler.set_state(_continued_optimizer_state(self._optimizer_state[1], optimizers[optimizer], lr, gamma))
        elbo = VSMC_ELBO(num_particles, resampling=resampling, ess_threshold=ess_threshold, resampling_gradient=resampling_gradient)
        arguments = dict(y=y, u=u, num_particles=num_particles, num_steps=num_steps, batch_size=batch_size, lr=lr, lr_end=lr_end,
                         optimizer=optimizer, resampling=resampling, ess_threshold=ess_threshold,
                         resampling_gradient=resampling_gradient, clip_norm=clip_norm, init_from_data=init_from_data, seed=seed)  # fmt: skip
        run = FitRun(self, on_nonfinite=on_nonfinite, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, arguments=arguments)
        if init_from_data and not self.losses:
            self.initialize_from_data(y, u)

        # the paper's normalization: the bound per trial and time step (fit_svi then scales minibatches up
        # to all trials), so learning rates transfer and RAdam's first, unrectified steps stay small
        normalizer = 1.0 / (y.shape[0] * y.shape[1])
        model, guide = poutine.scale(self.model, normalizer), poutine.scale(self.guide, normalizer)
        with tqdm(total=num_steps, desc="LowRankRNN", disable=not progress, mininterval=0.5, dynamic_ncols=True) as bar:

            def after_step(step: int, loss: float) -> None:
                if (step + 1) % steps_per_epoch == 0:
                    scheduler.step()
                bar.update()
                if step % 10 == 0 or step == num_steps - 1:
                    bar.set_postfix(nats_per_step=f"{-loss:.4g}", refresh=False)
                if callback is not None:
                    callback(step, loss)

            self.num_particles, self._running_optimizer = num_particles, (optimizer, scheduler)
            try:
                with pyro.validation_enabled(False):
                    fit_svi(model, guide, elbo, scheduler, [y, u], num_steps=num_steps, batch_size=batch_size,
                            clip_norm=clip_norm, seed=seed, progress=False, callback=after_step, run=run)  # fmt: skip
                run.finish(scheduler)
            finally:  # also after an error or Ctrl-C: the optimizer's state goes with the parameters it reached
                self._optimizer_state, self._running_optimizer = (optimizer, scheduler.get_state()), None
        return self

    def initialize_from_data(self, y: Any, u: Any = None, *, smoothing: float = 2.0) -> "LowRankRNN":
        """Start the model near the data (PCA, then a one-step regression); return ``self``.

        0. The readout's mean scale ``m``: the recordings themselves (Gaussian), or for Poisson counts
           the link of their smoothed rates, ``m = softplus^-1(max(G_smoothing * y, 0.01))``, where
           ``G`` is a Gaussian filter along time (std ``smoothing`` steps, ``scipy.ndimage``); the floor
           keeps silent stretches finite (at link -4.6, rate 0.01 per step).
        1. Readout: with the top-R eigenvectors ``P`` ``(D, R)`` of the covariance of ``m``, the readout
           weights (``U`` for a one-to-one readout, ``W`` and ``b = mean(m)`` for an affine one) become
           ``P`` (a trained one-to-one offset becomes ``mean(m)``), the Gaussian observation noise the mean
           variance outside that subspace, and ``mu_1`` / ``Sigma_1`` the mean and covariance of the
           projected first step ``z^_0 = P^T (m_0 - b)``.
        2. Dynamics: ``a``, ``V``, ``h`` (and ``W_u``) minimize the one-step prediction error
           ``sum_t |z^_{t+1} - a z^_t - V phi(U z^_t + W_u v_t, h)|^2`` of the projected latents (L-BFGS,
           at most 20000 random pairs), and Sigma_z starts at the covariance of its residuals.

        The fit then corrects what this ignores (the observation noise inside the projections; for
        counts, also the smoothing, which shrinks the one-step residuals). Without it a Poisson fit
        settles on near-constant rates (the bias alone explains the counts' means), from which the
        encoder proposal and the dynamics do not escape within a usual budget.

        Args:
            y: recordings ``(trials, T, D)``. u: inputs ``(trials, T, Du)``.
            smoothing: std in time steps of the Gaussian filter on Poisson counts (ignored for Gaussian).
        """
        y, u = self._validate_data(y, u)
        smoothing = check_positive(smoothing, "smoothing")
        _check_enough_pairs(y)
        latents = self._initialize_readout(self._readout_scale(y, smoothing))
        self._initialize_dynamics(latents, u)
        return self

    def _readout_scale(self, y: Tensor, smoothing: float) -> Tensor:
        """Step 0 of :meth:`initialize_from_data`: ``y`` itself, or the link of smoothed counts ``(B, T, D)``."""
        if self.config["observation"] == "gaussian":
            return y
        rates = torch.as_tensor(gaussian_filter1d(y.cpu().numpy(), smoothing, axis=1, mode="nearest"), dtype=y.dtype, device=y.device)
        rates = rates.clamp(min=SMOOTHED_RATE_FLOOR)
        return rates + torch.log(-torch.expm1(-rates))  # softplus^-1(r) = log(e^r - 1), stable for large r

    @torch.no_grad()
    def _initialize_readout(self, m: Tensor) -> Tensor:
        """Step 1 of :meth:`initialize_from_data` on the mean scale ``m`` ``(B, T, D)``; returns the projected latents ``(B, T, R)``."""
        model, rank = self.model, self.config["rank"]
        flat = m.reshape(-1, m.shape[2])
        mean = flat.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(flat.T))
        top = eigenvectors[:, -rank:].flip(-1)  # (D, R)
        readout = model.readout
        if readout.reads_units:
            model.transition.U.copy_(top)
            if isinstance(readout.map.bias, nn.Parameter):
                readout.map.bias.copy_(mean)
            offset = readout.map.bias
        else:
            readout.map.weight.copy_(top)
            readout.map.bias.copy_(mean)
            offset = mean
        if self.config["observation"] == "gaussian":
            residual = eigenvalues[:-rank].clamp(min=1e-8).mean() if m.shape[2] > rank else eigenvalues.min().clamp(min=1e-8)
            readout.noise.set_(torch.diag_embed(residual.expand(m.shape[2])))
        latents = (m - offset) @ top
        model.initial_mean.copy_(latents[:, 0].mean(0))
        if m.shape[0] > rank:
            _set_covariance(model.initial_noise, torch.cov(latents[:, 0].T).reshape(rank, rank) + 1e-4 * _eye_like(latents, rank))
        return latents

    def _initialize_dynamics(self, latents: Tensor, u: Optional[Tensor]) -> None:
        """Step 2 of :meth:`initialize_from_data`: least squares one step ahead, then Sigma_z from the residuals."""
        transition = self.model.transition
        rank = latents.shape[-1]
        current, following = latents[:, :-1].reshape(-1, rank), latents[:, 1:].reshape(-1, rank)
        with torch.no_grad():  # the inputs the units see, with the initial decay
            v = None if u is None else self._unit_inputs(u)[:, :-1].reshape(current.shape[0], -1)
        if current.shape[0] > 20000:
            keep = torch.randperm(current.shape[0], generator=torch.Generator().manual_seed(0))[:20000]
            current, following, v = current[keep], following[keep], None if v is None else v[keep]
        parameters = [transition.V, transition.h] + ([transition.W_u] if v is not None else [])
        if isinstance(transition.decay_logit, nn.Parameter):  # a fixed decay (train_decay=False) stays put
            parameters.append(transition.decay_logit)
        optimizer = torch.optim.LBFGS(parameters, max_iter=100, line_search_fn="strong_wolfe")

        def prediction_error() -> Tensor:
            optimizer.zero_grad()
            error = (following - transition(current, v)).square().sum(-1).mean()
            error.backward()
            return error

        optimizer.step(prediction_error)
        # every gradient, not only the optimized ones': U (fixed here) collected them through transition(current),
        # and a stale .grad would be added to the first SVI step's gradient
        self.model.zero_grad(set_to_none=True)
        with torch.no_grad():
            residuals = following - transition(current, v)
            _set_covariance(self.model.noise, torch.cov(residuals.T).reshape(rank, rank) + 1e-6 * _eye_like(residuals, rank))

    @torch.no_grad()
    def log_evidence(self, y: Any, u: Any = None, *, num_particles: Optional[int] = None, seed: Optional[int] = None) -> Tensor:
        """Per-trial estimates of ``log p(y | u)`` ``(trials,)`` from the particle filter (``exp`` of it is unbiased).

        Raises a RuntimeError on a model that still has its random initial parameters (not fit, not
        loaded, parameters not set by hand), like :meth:`filter` and :meth:`save`."""
        return self._filter(y, u, num_particles, seed, "log_evidence").log_evidence

    @torch.no_grad()
    def filter(self, y: Any, u: Any = None, *, num_particles: Optional[int] = None, seed: Optional[int] = None) -> LowRankFilterResult:
        """Run the particle filter (the fit's proposal) over ``y``; see :class:`LowRankFilterResult`."""
        return self._filter(y, u, num_particles, seed, "filter")

    def _filter(self, y: Any, u: Any, num_particles: Optional[int], seed: Optional[int], action: str) -> LowRankFilterResult:
        y, u = self._validate_data(y, u)
        if num_particles is not None:
            num_particles = check_count(num_particles, "num_particles")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
        self._check_fitted(action)
        elbo = VSMC_ELBO(self.num_particles if num_particles is None else num_particles)
        if seed is not None:
            pyro.set_rng_seed(seed)
        with pyro.validation_enabled(False):
            record = elbo.filter(self.model, self.guide, y, u)
        particles = record.states["z"]  # (T, K, B, R)
        weights = record.log_weights.exp()  # (T, K, B)
        means = (weights.unsqueeze(-1) * particles).sum(1)  # (T, B, R)
        return LowRankFilterResult(
            means=means.transpose(0, 1),
            particles=particles.permute(2, 0, 1, 3),
            log_weights=record.log_weights.permute(2, 0, 1),
            ess=record.ess.T,
            log_evidence=record.log_evidence,
        )

    @torch.no_grad()
    def sample(
        self, num_trials: int, num_steps: int, u: Any = None, *, initial_latents: Any = None, seed: Optional[int] = None
    ) -> LowRankSample:
        """Generate ``num_trials`` trials of ``num_steps`` steps (given inputs ``u`` ``(num_trials, num_steps, Du)``).

        ``initial_latents`` ``(num_trials, R)`` fixes ``z_0`` (e.g. particles of :meth:`filter` at the end
        of a recording, to run the network on from there) instead of drawing it from ``N(mu_1, Sigma_1)``;
        ``y_0`` is still drawn from the readout given ``z_0``.
        """
        num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps")
        if u is not None:
            shape = torch.empty(num_trials, num_steps, 0, dtype=self.dtype, device=self.device)  # u's trials, steps, dtype and device
            u = as_inputs(u, shape, y_name="(num_trials, num_steps)")
        self._check_inputs(u)
        model = self.model
        if initial_latents is not None:
            z0 = as_trials(initial_latents, "initial_latents", min_steps=1, dtype=self.dtype, device=self.device)
            rank = self.config["rank"]
            if z0.shape != (1, num_trials, rank):
                raise ValueError(f"initial_latents must have shape (num_trials, R) = ({num_trials}, {rank}), got {tuple(z0.shape[1:])}")
            model = poutine.condition(model, data={"0/z": z0[0]})
        if seed is not None:
            pyro.set_rng_seed(seed)
        with pyro.validation_enabled(False):
            out = model(None, u, num_trials=num_trials, num_steps=num_steps)
        return LowRankSample(out["z"], out["y"], self.readout_means(out["z"], u))

    # ---------------------------------------------------------------------------------------------
    # the fitted network
    def latent_map(self) -> LatentMap:
        """``(a, V (R, N), U (N, R), h (N,), activation)`` of ``z -> a z + V phi(U z, h)``, detached."""
        return self.model.transition.latent_map()

    def fixed_points(self, **options: Any) -> FixedPoints:
        """All fixed points of the latent map (ReLU or clipped ReLU), exactly: one call into
        :func:`~pyro_neurodyn.analysis.fixed_points` with :meth:`latent_map` (see
        :func:`~pyro_neurodyn.analysis.latent_map_fixed_points`; ``options``: ``tol``, ``merge_tol``, ...)."""
        return latent_map_fixed_points(self.latent_map(), **options)

    def noise_covariance(self) -> Tensor:
        """Sigma_z ``(R, R)``, detached."""
        return self.model.noise.matrix().detach()

    def orthogonal_basis(self) -> OrthogonalBasis:
        """The parameters in the latent basis where U has orthonormal columns (for plots and comparisons)."""
        _, V, U, _, _ = self.latent_map()
        return orthogonal_basis(U, V, self.noise_covariance())

    def unit_network(self) -> UnitNetwork:
        """The equivalent N-unit RNN (connectivity ``J = U V``, noise ``U Sigma_z U^T``)."""
        return unit_network(self.model.transition, self.noise_covariance())

    @torch.no_grad()
    def to_units(self, z: Any, u: Any = None) -> Tensor:
        """The units' currents ``x = U z + W_u v`` ``(B, T, N)`` of latents ``z`` ``(B, T, R)`` (inputs ``u`` ``(B, T, Du)``)."""
        z, v = self._latents_and_unit_inputs(z, u)
        transition = self.model.transition
        return latent_to_units(z, transition.U, transition.W_u, v)

    @torch.no_grad()
    def readout_means(self, z: Any, u: Any = None) -> Tensor:
        """The readout's mean (Gaussian) or rate (Poisson) ``(B, T, D)`` for latents ``z`` ``(B, T, R)``."""
        z, v = self._latents_and_unit_inputs(z, u)
        return self.model.readout.mean(self.model.readout_source(z, v))

    def _latents_and_unit_inputs(self, z: Any, u: Any) -> tuple[Tensor, Optional[Tensor]]:
        z = as_trials(z, "z", min_steps=1, dtype=self.dtype, device=self.device)
        if z.shape[2] != self.config["rank"]:
            raise ValueError(f"z must have rank = {self.config['rank']} latent dims, got shape {tuple(z.shape)}")
        u = as_inputs(u, z, y_name="z")
        self._check_inputs(u)
        return z, None if u is None else self._unit_inputs(u)

    def _unit_inputs(self, u: Tensor) -> Tensor:
        """The inputs ``v_t`` the units see, ``(B, T, Du)``: filtered or raw ``u``."""
        if not self.config["filter_inputs"]:
            return u
        transition = self.model.transition
        v = torch.zeros_like(u[:, 0])
        seen = [v]
        for t in range(1, u.shape[1]):
            v = transition.filter_input(v, u[:, t - 1])
            seen.append(v)
        return torch.stack(seen, 1)

    # ---------------------------------------------------------------------------------------------
    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        """Write config, parameters, loss history and the optimizer's state (moments: a later ``fit`` of the
        loaded model with the same optimizer continues as this one would) to ``path``; refuses to overwrite
        unless asked, and refuses a model that still has its random initial parameters."""
        self._check_fitted("save")
        config, state_dict, extra = self._checkpoint_contents()
        save_checkpoint(path, self.kind, config, state_dict, overwrite=overwrite, **extra)

    def _checkpoint_contents(self) -> tuple[dict, dict, dict]:
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        state.update({f"guide.{k}": v for k, v in self.guide.state_dict().items()})
        extra = {"losses": list(self.losses), "num_particles": self.num_particles}
        if self._running_optimizer is not None:  # a checkpoint during a fit: that fit's optimizer
            name, scheduler = self._running_optimizer
            extra.update(optimizer=name, optimizer_state=renamed_modules(scheduler.get_state(), self._module_prefixes()))
        elif self._optimizer_state is not None:
            extra.update(optimizer=self._optimizer_state[0], optimizer_state=renamed_modules(self._optimizer_state[1], self._module_prefixes()))
        return self.config, state, extra

    def _restore_checkpoint(self, payload: dict) -> None:
        state = payload["state_dict"]
        self.model.load_state_dict({k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")})
        self.guide.load_state_dict({k[len("guide.") :]: v for k, v in state.items() if k.startswith("guide.")})
        self.losses[:] = payload.get("losses", [])
        self.num_particles = int(payload.get("num_particles", 64))
        if "optimizer_state" in payload:  # a later fit with the same optimizer continues from its moments
            saved_to_live = {saved: live for live, saved in self._module_prefixes().items()}
            self._optimizer_state = (payload["optimizer"], renamed_modules(payload["optimizer_state"], saved_to_live))

    @classmethod
    def load(cls, path: PathLike) -> "LowRankRNN":
        """Rebuild a :class:`LowRankRNN` written by :meth:`save` (or a checkpoint of a fit in progress)."""
        payload = load_checkpoint(path, cls.kind)
        rnn = cls(**payload["config"]).to(dtype=saved_dtype(payload["state_dict"]))  # on the CPU, in the saved dtype
        rnn._restore_checkpoint(payload)
        return rnn

    def _module_prefixes(self) -> dict:
        """Pyro parameter-name prefixes of the model and guide (unique per process, e.g. ``lowrank_rnn_0``)
        and the names they have in a saved optimizer state."""
        return {self.model._pyro_name: "model", self.guide._pyro_name: "guide"}

    # ---------------------------------------------------------------------------------------------
    def _check_fitted(self, action: str) -> None:
        """RuntimeError unless the model was fit, loaded, or its parameters were set (differ from the initialization)."""
        if self.losses:
            return
        if any(not torch.equal(value, self._initial_state[key]) for key, value in self.model.state_dict().items()):
            return
        raise RuntimeError(
            f"this LowRankRNN has not been fit yet: {action} needs fitted parameters, not the random initialization; "
            "call fit(y) or initialize_from_data(y) first (or LowRankRNN.load(path), or set the parameters of .model)"
        )

    def _validate_data(self, y: Any, u: Any) -> tuple[Tensor, Optional[Tensor]]:
        y = as_trials(y, "y", counts=self.config["observation"] == "poisson", dtype=self.dtype, device=self.device)
        if y.shape[2] != self.config["obs_dim"]:
            raise ValueError(f"y has {y.shape[2]} channels but the model was built with obs_dim={self.config['obs_dim']}")
        check_magnitude(y, "y")
        u = as_inputs(u, y)
        self._check_inputs(u)
        return y, u

    def _check_inputs(self, u: Optional[Tensor]) -> None:
        input_dim = self.config["input_dim"]
        if u is None and input_dim:
            raise ValueError(f"the model was built with input_dim={input_dim}: pass the inputs u (trials, T, {input_dim})")
        if u is not None and u.shape[2] != input_dim:
            raise ValueError(f"u has {u.shape[2]} input channels but the model was built with input_dim={input_dim}")


def _choice(value: Any, name: str, options: tuple) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def _continued_optimizer_state(state: dict, optimizer: type, lr: float, gamma: float) -> dict:
    """``PyroOptim.get_state()`` of a previous fit with its moment estimates kept and the learning-rate
    schedule replaced by a fresh one (``lr``, decaying by ``gamma`` per epoch)."""
    fresh = torch.optim.lr_scheduler.ExponentialLR(optimizer([torch.zeros(1, requires_grad=True)], lr=lr), gamma).state_dict()
    continued = {}
    for name, per_parameter in state.items():
        optimizer_state = {**per_parameter["optimizer"]}
        optimizer_state["param_groups"] = [{**group, "lr": lr, "initial_lr": lr} for group in optimizer_state["param_groups"]]
        continued[name] = {"scheduler": dict(fresh), "optimizer": optimizer_state}
    return continued


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _sequence(value: Any, name: str) -> list:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers (list or tuple), got {value!r}")
    return list(value)


def _check_enough_pairs(y: Tensor) -> None:
    """initialize_from_data estimates covariances of one-step pairs ``(z_t, z_{t+1})``: it needs two."""
    pairs = y.shape[0] * (y.shape[1] - 1)
    if pairs < 2:
        raise ValueError(
            f"y of shape {tuple(y.shape)} holds {pairs} one-step pair (trials * (T - 1)); initializing from data "
            "needs at least 2: pass more trials or steps, or fit(init_from_data=False)"
        )


def _open_unit_interval(value: Any, name: str) -> float:
    """``value`` as a float in (0, 1), else a ValueError (TypeError for a non-number) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return float(value)


def _eye_like(like: Tensor, size: int) -> Tensor:
    """The identity ``(size, size)`` in ``like``'s dtype, on its device."""
    return torch.eye(size, dtype=like.dtype, device=like.device)


def _set_covariance(covariance: Covariance, matrix: Tensor) -> None:
    """Set a Covariance to ``matrix``, or to its diagonal when the covariance is diagonal."""
    covariance.set_(matrix if covariance.kind == "full" else torch.diag_embed(matrix.diagonal()))


def _build_model(config: dict) -> LowRankRNNModel:
    rank, num_units, obs_dim = config["rank"], config["num_units"], config["obs_dim"]
    transition = LowRankTransition(
        rank, num_units, config["input_dim"], config["activation"], config["decay"], config.get("train_decay", True)
    )
    gaussian = config["observation"] == "gaussian"
    train = config["train_readout"]
    if config["readout"] == "affine":
        train = True if train is None else train
        readout_map = AffineReadoutMap(rank, obs_dim, train_weight=train, train_bias=train)
        source = "latent"
    else:
        train = (not gaussian) if train is None else train
        readout_map = OneToOneReadoutMap(obs_dim, train_gain=train, train_bias=train)
        source = "units"
    if gaussian:
        readout = LowRankGaussianReadout(readout_map, obs_dim, source, config["obs_noise_scale"])
    else:
        readout = LowRankPoissonReadout(readout_map, source)
    noise = Covariance(rank, config["noise"], config["noise_scale"])
    initial_noise = Covariance(rank, config["initial_noise"], config["initial_noise_scale"])
    return LowRankRNNModel(transition, readout, noise, initial_noise, filter_inputs=config["filter_inputs"])


def _build_guide(config: dict, model: LowRankRNNModel):
    if config["proposal"] == "optimal":
        return OptimalProposal(model)
    if config["proposal"] == "bootstrap":
        return BootstrapProposal()
    return EncoderProposal(model, config["obs_dim"], kernel_sizes=config["encoder_kernel_sizes"], channels=config["encoder_channels"])
