"""``LowRankRNN``: fit, filter, sample, save and load a stochastic low-rank RNN (Pals et al. 2024).

    >>> from pyro_neurodyn import LowRankRNN
    >>> rnn = LowRankRNN(obs_dim=20, rank=2, num_units=20, readout="one_to_one")
    >>> rnn.fit(y, epochs=100)                     # y: (trials, T, 20); VSMC with the optimal proposal
    >>> rnn.log_evidence(y)                        # (trials,) estimates of log p(y)
    >>> rnn.filter(y).means                        # (trials, T, 2) filtered latent means
    >>> rnn.sample(50, 200).y                      # new trials from the fitted network
    >>> a, V, U, threshold, activation = rnn.latent_map()  # x -> a x + V phi(U x, b), e.g. for fixed points
    >>> rnn.fixed_points().points                  # (n, R) all fixed points (ReLU / clipped ReLU)

The model is :class:`~pyro_neurodyn.models.LowRankRNNModel` (``.model``), the proposal a guide of
:mod:`pyro_neurodyn.guides.proposals` (``.guide``), and the objective
:class:`~pyro_neurodyn.infer.VSMC_ELBO`, optimized with RAdam (or Adam) and an exponentially decaying
learning rate (lr -> lr_end over the fit, as in the paper) by :func:`~pyro_neurodyn.infer.fit_svi`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from typing import Any, Callable, Optional, Sequence, Union

import pyro
import torch
from pyro import poutine
from torch import Tensor
from tqdm.auto import tqdm

from ..data.validation import (
    as_inputs,
    as_trials,
    check_choice,
    check_count,
    check_flag,
    check_magnitude,
    check_positive,
)
from ..dynamics.legacy_keys import renamed_legacy_threshold
from ..infer import VSMC_ELBO, FitRun, RandomWindows, fit_svi
from ..infer.local_params import module_local_params
from ..infer.optimizer_state import from_pyro_optim_state, load_named_state, named_state, parameter_names
from ..data.recording import Recording
from .base import Estimator, module_local
from .configs import LowRankRNNConfig, config_arguments
from .lowrank_initialization import check_enough_pairs, impute_missing, initialize_dynamics, initialize_readout, readout_scale
from .lowrank_network import LowRankNetworkViews
from .lowrank_particles import LowRankFilterResult, LowRankParticleMethods, LowRankSample
from .lowrank_parts import build_guide, build_model, unit_inputs
from .placement import DeviceLike

__all__ = ["LowRankFilterResult", "LowRankRNN", "LowRankSample"]

PathLike = Union[str, os.PathLike]


class LowRankRNN(LowRankParticleMethods, LowRankNetworkViews, Estimator):
    """A stochastic low-rank RNN ``x_{t+1} = a x_t + V phi(U x_t + W_u v_t, theta) + eps`` (theta the thresholds) with a readout.

    Args:
        obs_dim: D, channels of the recordings. rank: R, at most N and D. num_units: N.
        input_dim: Du, dimension of external inputs (0: none).
        activation: ``"relu"``, ``"clipped_relu"``, ``"identity"`` or ``"tanh"``.
        observation: ``"gaussian"`` or ``"poisson"`` (counts; rates ``softplus(.)``).
        readout: ``"affine"`` (``W x + b``) or ``"one_to_one"`` (channel i reads unit i's current
            ``c_i = (U x + W_u v)_i``; needs ``obs_dim == num_units``).
        proposal: ``"optimal"`` (closed form, Gaussian readouts), ``"bootstrap"`` or ``"encoder"`` (a causal
            CNN); default: optimal for Gaussian, encoder for Poisson observations.
        noise, initial_noise: parameterization of Sigma_x and Sigma_1: ``"full"``, ``"diag"``, ``"scalar"``.
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
        self.config = config = LowRankRNNConfig(**config_arguments(locals()))
        with torch.random.fork_rng(), module_local_params():  # (building the optimal proposal runs the model)
            if seed is not None:
                torch.manual_seed(seed)
            self.model = build_model(config)
            self.guide = build_guide(config, self.model)
        self.losses: list[float] = []
        self.num_particles = 64
        self._optimizer_state: Optional[tuple[str, dict]] = None  # (optimizer, its named state) after a fit
        self._running_optimizer: Optional[tuple[str, Any, Any]] = None  # (optimizer, the torch optimizer, its scheduler) during a fit
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
    @module_local
    def fit(
        self,
        y: Any,
        u: Any = None,
        *,
        num_particles: int = 64,
        epochs: Optional[int] = None,
        num_steps: Optional[int] = None,
        batch_size: int = 10,
        window: Optional[int] = None,
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
            y: recordings ``(trials, T, obs_dim)`` (counts for Poisson), or a :class:`~pyro_neurodyn.data.Recording`
                (ragged trials, missing entries: their likelihood terms are left out, the latent runs through).
                u: inputs ``(trials, T, input_dim)``.
            num_particles: S per trial. epochs: passes over all trials (``trials // batch_size`` steps
                each; with ``window``, the windows that tile the data, ``round(sum_b T_b / (batch_size window))``
                steps, at least 1); or num_steps: gradient steps. batch_size: trials per step (windows with ``window``).
            window: fit on random windows of this many steps instead of whole trials (long recordings, e.g. one
                trial of 1e5 steps): each step draws ``batch_size`` windows uniformly among all windows inside the
                trials and filters them as trials (each window's first step drawn from ``N(mu_1, Sigma_1)``), the
                bound scaled to the whole data (:class:`~pyro_neurodyn.infer.RandomWindows`); time and memory per
                step O(batch_size window S), whatever T. At most the shortest trial. The start from the data
                (``init_from_data``) still reads the whole recording.
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
        data = y
        y, u, mask, lengths = self.recording_arrays(y, u)
        init_from_data = check_flag(init_from_data, "init_from_data")
        if init_from_data and not self.losses:
            check_enough_pairs(y)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(step, loss), got {type(callback).__name__}")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
        num_particles = check_count(num_particles, "num_particles")
        batch_size = check_count(batch_size, "batch_size")
        windows = None
        if window is None:
            batch_size = min(batch_size, y.shape[0])
            steps_per_epoch = max(1, y.shape[0] // batch_size)
        else:
            windows = RandomWindows(torch.full((y.shape[0],), y.shape[1]) if lengths is None else lengths.cpu(), window, batch_size)
            steps_per_epoch = max(1, round(windows.scale))
        if (epochs is None) == (num_steps is None):
            raise ValueError("give exactly one of epochs and num_steps")
        num_steps = check_count(epochs, "epochs") * steps_per_epoch if epochs is not None else check_count(num_steps, "num_steps")
        lr = check_positive(lr, "lr")
        lr_end = lr / 100.0 if lr_end is None else check_positive(lr_end, "lr_end")
        if lr_end > lr:
            raise ValueError(f"lr_end must be <= lr (the learning rate decays from lr to lr_end), got lr_end={lr_end} > lr={lr}")
        optimizers = {"radam": torch.optim.RAdam, "adam": torch.optim.Adam}
        optimizer = check_choice(optimizer, "optimizer", tuple(optimizers))
        num_epochs = math.ceil(num_steps / steps_per_epoch)
        gamma = (lr_end / lr) ** (1.0 / num_epochs)
        elbo = VSMC_ELBO(num_particles, resampling=resampling, ess_threshold=ess_threshold, resampling_gradient=resampling_gradient)
        torch_optimizer = optimizers[optimizer](elbo(self.model, self.guide).parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(torch_optimizer, gamma)
        if self._optimizer_state is not None and self._optimizer_state[0] == optimizer:
            names = self._parameter_names()
            continued = _continued_optimizer_state(self._optimizer_state[1], [names[id(p)] for p in torch_optimizer.param_groups[0]["params"]], lr)
            load_named_state(continued, torch_optimizer, None, names)
        arguments = dict(y=y, u=u, mask=mask, num_particles=num_particles, num_steps=num_steps, batch_size=batch_size, lr=lr, lr_end=lr_end,
                         optimizer=optimizer, resampling=resampling, ess_threshold=ess_threshold,
                         resampling_gradient=resampling_gradient, clip_norm=clip_norm, init_from_data=init_from_data, seed=seed)  # fmt: skip
        if window is not None:  # fingerprinted only when given: checkpoints of fits without windows stay resumable
            arguments["window"] = window
        run = FitRun(self, on_nonfinite=on_nonfinite, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, arguments=arguments)
        if init_from_data and not self.losses:
            self._initialize(y, u, mask, smoothing=2.0, blocks=self.recording_blocks(data, mask))

        # the paper's normalization: the bound per trial and time step (fit_svi then scales minibatches, or
        # random windows, up to all the data), so learning rates transfer and RAdam's first, unrectified steps stay small
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

            self.num_particles, self._running_optimizer = num_particles, (optimizer, torch_optimizer, scheduler)
            try:
                with pyro.validation_enabled(False):
                    fit_svi(model, guide, elbo, torch_optimizer, [y, u, mask], num_steps=num_steps, batch_size=None if windows else batch_size,
                            clip_norm=clip_norm, seed=seed, progress=False, callback=after_step, run=run, scheduler=scheduler,
                            lengths=None if windows else lengths, batches=windows)  # fmt: skip
                run.finish()
            finally:  # also after an error or Ctrl-C: the optimizer's state goes with the parameters it reached
                self._optimizer_state = (optimizer, named_state(torch_optimizer, scheduler, self._parameter_names()))
                self._running_optimizer = None
        return self

    @module_local
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
           projected first step ``x^_0 = P^T (m_0 - b)``.
        2. Dynamics: ``a``, ``V``, ``threshold`` theta (and ``W_u``) minimize the one-step prediction error
           ``sum_t |x^_{t+1} - a x^_t - V phi(U x^_t + W_u v_t, theta)|^2`` of the projected latents (L-BFGS,
           at most 20000 random pairs), and Sigma_x starts at the covariance of its residuals.

        The fit then corrects what this ignores (the observation noise inside the projections; for
        counts, also the smoothing, which shrinks the one-step residuals). Without it a Poisson fit
        settles on near-constant rates (the bias alone explains the counts' means), from which the
        encoder proposal and the dynamics do not escape within a usual budget.

        Missing entries of a :class:`~pyro_neurodyn.data.Recording` start at their channel's observed mean, and
        steps with no observed entry (padding) are left out of the subspace and of the one-step pairs. Sessions
        that recorded disjoint channels (``Recording.from_sessions``) start each its readout rows at the subspace
        of its own trials and channels, and its trials' latents are their projections on it, each session's frame
        turned (orthogonally, reflections included) onto the first session's so that its one-step dynamics follow
        the first's (:mod:`.session_frames`; the dynamics, shared, are regressed on all sessions' latents): pooled,
        the session with the most variance would take every direction. Measured on a teacher seen by three sessions of different neurons: tests/test_sessions.py.

        Args:
            y: recordings ``(trials, T, D)`` or a Recording. u: inputs ``(trials, T, Du)``.
            smoothing: std in time steps of the Gaussian filter on Poisson counts (ignored for Gaussian).
        """
        data = y
        y, u, mask, _ = self.recording_arrays(y, u)
        smoothing = check_positive(smoothing, "smoothing")
        check_enough_pairs(y)
        return self._initialize(y, u, mask, smoothing, self.recording_blocks(data, mask))

    def _initialize(self, y: Tensor, u: Optional[Tensor], mask: Optional[Tensor], smoothing: float, blocks: Optional[list] = None) -> "LowRankRNN":
        gaussian = self.config.observation == "gaussian"
        steps = None if mask is None else mask.any(-1)  # (B, T) steps with an observation
        m = readout_scale(impute_missing(y, mask), gaussian, smoothing)
        latents = initialize_readout(self.model, m, self.config.rank, gaussian, steps, blocks)
        with torch.no_grad():  # the inputs the units see, with the initial decay
            inputs = None if u is None else unit_inputs(self.model.transition, u, self.config.filter_inputs)
        initialize_dynamics(self.model, latents, inputs, steps)
        return self

    # ---------------------------------------------------------------------------------------------
    def _checkpoint_contents(self) -> tuple[dict, dict, dict]:
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        state.update({f"guide.{k}": v for k, v in self.guide.state_dict().items()})
        extra = {"losses": list(self.losses), "num_particles": self.num_particles}
        if self._running_optimizer is not None:  # a checkpoint during a fit: that fit's optimizer
            name, optimizer, scheduler = self._running_optimizer
            extra.update(optimizer=name, optimizer_state=named_state(optimizer, scheduler, self._parameter_names()))
        elif self._optimizer_state is not None:
            extra.update(optimizer=self._optimizer_state[0], optimizer_state=self._optimizer_state[1])
        return asdict(self.config), state, extra

    def _restore_checkpoint(self, payload: dict) -> None:
        state = payload["state_dict"]
        self.model.load_state_dict({k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")})
        self.guide.load_state_dict({k[len("guide.") :]: v for k, v in state.items() if k.startswith("guide.")})
        self.losses[:] = payload.get("losses", [])
        self.num_particles = int(payload.get("num_particles", 64))
        if "optimizer_state" in payload:  # a later fit with the same optimizer continues from its moments
            saved = payload["optimizer_state"]
            if payload.get("format_version", 1) < 3:  # pyro.optim's per-parameter layout, maybe with the old threshold name
                saved = from_pyro_optim_state(renamed_legacy_threshold(saved, "model.transition$$$h", "model.transition$$$threshold"))
            self._optimizer_state = (payload["optimizer"], saved)

    def _modules_by_name(self) -> dict:
        """The model and the guide, whose parameters a saved optimizer state names ``model.<path>`` and ``guide.<path>``."""
        return {"model": self.model, "guide": self.guide}

    def _parameter_names(self) -> dict[int, str]:
        """``id(parameter) -> name`` of the parameters the fit optimizes (:func:`~pyro_neurodyn.infer.optimizer_state.parameter_names`)."""
        return parameter_names(self._modules_by_name())

    # ---------------------------------------------------------------------------------------------
    def check_fitted(self, action: str = "this") -> None:
        """RuntimeError unless the model was fit, loaded, or its parameters were set (differ from the initialization)."""
        if self.losses:
            return
        if any(not torch.equal(value, self._initial_state[key]) for key, value in self.model.state_dict().items()):
            return
        raise RuntimeError(
            f"this LowRankRNN has not been fit yet: {action} needs fitted parameters, not the random initialization; "
            "call fit(y) or initialize_from_data(y) first (or LowRankRNN.load(path), or set the parameters of .model)"
        )

    def validate(self, y: Any, u: Any = None) -> tuple[Tensor, Optional[Tensor]]:
        """Recordings ``(trials, T, obs_dim)`` (counts for Poisson) and inputs ``(trials, T, input_dim)``, checked
        and converted to the model's device and dtype (a complete, equal-length Recording is accepted)."""
        if isinstance(y, Recording):
            return self.complete_recording(y, u)
        y = as_trials(y, "y", counts=self.config.observation == "poisson", dtype=self.dtype, device=self.device)
        if y.shape[2] != self.config.obs_dim:
            raise ValueError(f"y has {y.shape[2]} channels but the model was built with obs_dim={self.config.obs_dim}")
        check_magnitude(y, "y")
        u = as_inputs(u, y)
        self._check_inputs(u)
        return y, u

    def _check_inputs(self, u: Optional[Tensor]) -> None:
        input_dim = self.config.input_dim
        if u is None and input_dim:
            raise ValueError(f"the model was built with input_dim={input_dim}: pass the inputs u (trials, T, {input_dim})")
        if u is not None and u.shape[2] != input_dim:
            raise ValueError(f"u has {u.shape[2]} input channels but the model was built with input_dim={input_dim}")


def _continued_optimizer_state(state: dict, names: list[str], lr: float) -> dict:
    """A named optimizer state (:mod:`~pyro_neurodyn.infer.optimizer_state`) for a new optimizer of one parameter
    group over the parameters ``names``: the moment estimates a previous fit left (``state``) kept, the learning
    rate back at ``lr`` (the new fit's scheduler starts its schedule afresh), the other hyperparameters the new
    optimizer's own."""
    moments = {name: value for name, value in state["optimizer"]["state"].items() if name in names}
    return {"optimizer": {"state": moments, "param_groups": [{"lr": lr, "initial_lr": lr, "params": names}]}, "scheduler": None}
