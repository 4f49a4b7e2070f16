r"""A switching state-space model as a Pyro program, with the switch marginalized exactly.

Generative model (z discrete in 1..K, h continuous in R^P, y observed in R^D, u optional inputs):

    z_1 ~ Cat(softmax(pi)),                       h_1 | z_1 = k ~ N(mu_k, diag(s_0^2))
    z_t | z_{t-1}, h_{t-1} ~ Cat(softmax(L(h_{t-1}, u_t))[z_{t-1}])               (transitions)
    h_t | h_{t-1}, z_t = k ~ N(f_k(h_{t-1}, u_t), sigma_h^2 I)                      (dynamics bank)
    y_t | h_t ~ p(y_t | g(h_t))                                                     (emission)

With f_k = tanh RNNs this is the switching RNN (Zhang & Saxena 2024); with linear f_k and stationary
(recurrent) L it is an SLDS (rSLDS). Variational family: q(z, h | y) = q_phi(h | y) p(z | h), h from
an amortized encoder, z never sampled: the model scores the guide's concrete h with
``log sum_z p(z, h)`` (:class:`~pyro_neurodyn.distributions.CollapsedSwitchingPath`), so

    ELBO = E_q[ log sum_z p(z, h) + log p(y | h) - log q(h | y) ]

exactly, at O(T K^2) per sample. All K candidate means f_k(h_{t-1}) come from ONE batched op on the
sampled h (shape (..., T-1, K, P)); sampling h in the model, or letting the guide's h depend on z,
would leak the enumeration dim into h and cost K^T.

The model is defined once, step by step (:class:`~pyro_neurodyn.models.switching_definition.SwitchingStepDefinition`:
``initial_logits``, ``initial_latent``, ``transition_logits``, ``latent_step``, ``observation``); the
collapsed program, the stepwise program with a ``z_t`` site per step, simulation and decoding are all
derived from those five methods. A variant overrides one of them (per-state noise, a Student-t
observation, input-driven switching) and everything follows; :func:`~pyro_neurodyn.models.check_model`
verifies it against Pyro's generic enumeration.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import pyro
import pyro.distributions as dist
import torch
import torch.distributions as td
from pyro.nn import PyroModule, pyro_method
from pyro.nn.module import to_pyro_module_
from pyro.ops.indexing import Vindex
from torch import Tensor, nn

from ..data.recording import observed_entries, steps_within
from ..data.validation import check_count
from ..distributions import CollapsedSwitchingPath, DiagonalNormal, StateComponent, SwitchingFactors, switching_posterior
from ..distributions.observation_mask import mask_observation
from .module_names import unique_module_name

PARTICLE_BATCH_NUMBERS = 2**25  # log_evidence: numbers per intermediate tensor (128 MiB in float32)


class SwitchingSample(NamedTuple):
    """Ancestral samples: observations ``y (..., T, D)``, latents ``h (..., T, P)``, states ``z (..., T)``."""

    y: Tensor
    h: Tensor
    z: Tensor


class SwitchingStateSpaceModel(PyroModule):
    """The Pyro program above, built from parts (see ``pyro_neurodyn.dynamics`` and ``guides``).

    Args:
        dynamics: bank of K maps ``(..., P), (..., M) -> (..., K, P)`` (:class:`~pyro_neurodyn.dynamics.RNNBank`).
        transitions: ``(h_prev, u) -> (..., K, K)`` logits (``pyro_neurodyn.dynamics.transitions``).
        emission: ``h (..., T, P) -> torch distribution over y`` with batch ``(..., T, D)``.
        encoder: ``(y, u) -> distribution over h`` with event shape (T, P), reparameterized (the guide).
        filter_encoder: optional causal encoder of the same kind (q(h_t | y_{1:t})), the guide of
            :meth:`filter_guide`, used to filter and forecast from a prefix.
        latent_scale: fixed sigma_h, or ``None`` to learn it (initialized at ``init_latent_scale``).
        name: prefix of the module's parameters in Pyro's global param store (unique by default; see
            :mod:`~pyro_neurodyn.models.module_names`).

    Pyro methods: :meth:`model` and :meth:`guide` (arguments ``y (trials, T, D)``, ``u (trials, T, M)``
    or None, ``labels (trials, T)`` and ``label_weight`` for the supervised start of a fit).
    """

    def __init__(
        self,
        dynamics: nn.Module,
        transitions: nn.Module,
        emission: nn.Module,
        encoder: nn.Module,
        filter_encoder: Optional[nn.Module] = None,
        latent_scale: Optional[float] = None,
        init_latent_scale: float = 0.1,
        name: Optional[str] = None,
    ):
        super().__init__(name=name or unique_module_name("switching_ssm"))
        self.num_states, self.latent_dim = dynamics.num_states, dynamics.latent_dim
        self.dynamics, self.transitions, self.emission, self.encoder = dynamics, transitions, emission, encoder
        self.filter_encoder = filter_encoder
        self.init_logits = nn.Parameter(torch.zeros(self.num_states))
        self.init_loc = nn.Parameter(0.1 * torch.randn(self.num_states, self.latent_dim))
        self.init_log_scale = nn.Parameter(torch.zeros(self.latent_dim))
        self.learn_latent_scale = latent_scale is None
        log_scale = torch.tensor(math.log(init_latent_scale if latent_scale is None else latent_scale))
        if self.learn_latent_scale:
            self.latent_log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("latent_log_scale", log_scale)
        to_pyro_module_(self)

    # ----- the per-step definition (override these to write a variant) ------------------------------------
    def initial_logits(self, u_first: Optional[Tensor] = None) -> Tensor:
        """Unnormalized ``log p(z_1)``: ``(K,)`` (``u_first (..., M)`` unused here)."""
        return self.init_logits

    def initial_latent(self, u_first: Optional[Tensor] = None) -> td.Distribution:
        """``p(h_1 | z_1 = k) = N(mu_k, diag(s_0^2))`` for every k: batch ``(K,)``, event ``(P,)`` (``u_first`` unused)."""
        return DiagonalNormal(self.init_loc, self.init_log_scale.exp())

    def transition_logits(self, h_prev: Tensor, u: Optional[Tensor] = None) -> Tensor:
        """``L(h_{t-1}, u_t)``, row = previous state: ``h_prev (..., P)``, ``u (..., M)`` or None -> ``(K, K)`` or
        ``(..., K, K)``."""
        return self.transitions(h_prev, u)

    def latent_step(self, h_prev: Tensor, u: Optional[Tensor] = None) -> td.Distribution:
        """``p(h_t | h_{t-1}, z_t = k) = N(f_k(h_{t-1}, u_t), sigma_h^2 I)`` for every k: ``h_prev (..., P)``,
        ``u (..., M)`` or None -> batch ``(..., K)``, event ``(P,)``. All K means come from one batched call of the
        dynamics bank."""
        return DiagonalNormal(self.dynamics(h_prev, u), self.latent_log_scale.exp())

    def observation(self, h: Tensor, u: Optional[Tensor] = None) -> td.Distribution:
        """``p(y_t | h_t)``: ``h (..., P)`` -> batch ``(...)``, event ``(D,)`` (``u`` unused)."""
        return dist.Independent(self.emission(h), 1)

    # ----- derived: the chain's factors of a concrete latent path ---------------------------------------
    @pyro_method  # CollapsedSwitchingPath.log_prob calls it after the model has returned: Pyro must see the parameters
    def latent_factors(self, h: Tensor, u: Optional[Tensor] = None, lengths: Optional[Tensor] = None) -> SwitchingFactors:
        """Chain factors of a latent path ``h (..., T, P)`` (inputs ``u (..., T, M)``): for every step and
        state k, ``emission_logp[..., t, k] = log p(h_t | h_{t-1}, z_t = k)`` ``(..., T, K)``, the transition
        logits ``(..., T-1, K, K)`` and the initial logits, each from ONE call of the step definition
        (:meth:`first_step_factors` on h_1, :meth:`step_factors` on all later steps at once).

        ``lengths (trials,)``: the steps ``t >= lengths`` of a padded trial score 0. The chain then sums to the
        trimmed trial's exactly (the transitions after its end are normalized rows: they sum to one)."""
        u_first, u_next = (None, None) if u is None else (u[..., 0, :], u[..., 1:, :])
        init_logits, first_logp = self.first_step_factors(h[..., 0, :], u_first)
        if h.shape[-2] == 1:  # one step (a forecast from one observed step): no transitions
            no_transitions = first_logp.new_zeros(first_logp.shape[:-1] + (0,) + first_logp.shape[-1:] * 2)  # (..., 0, K, K)
            return SwitchingFactors(init_logits, no_transitions, first_logp.unsqueeze(-2))
        trans_logits, step_logp = self.step_factors(h[..., :-1, :], h[..., 1:, :], u_next)
        if trans_logits.dim() == 2:
            trans_logits = trans_logits.expand(h.shape[:-2] + (h.shape[-2] - 1,) + trans_logits.shape)
        emission_logp = torch.cat([first_logp.unsqueeze(-2), step_logp], -2)
        if lengths is not None:
            within = steps_within(lengths, h.shape[-2])  # (trials, T)
            emission_logp = torch.where(within.unsqueeze(-1), emission_logp, emission_logp.new_zeros(()))
        return SwitchingFactors(init_logits, trans_logits, emission_logp)

    def first_step_factors(self, h_first: Tensor, u_first: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """The chain's factors at the first step: ``initial_logits (K,)`` (or ``(..., K)``) and
        ``log p(h_1 | z_1 = k) (..., K)`` for ``h_first (..., P)``, ``u_first (..., M)`` or None."""
        return self.initial_logits(u_first), self.initial_latent(u_first).log_prob(h_first.unsqueeze(-2))

    def step_factors(self, h_prev: Tensor, h: Tensor, u: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """The chain's factors of the steps ``h_prev -> h`` (``(..., P)`` each; inputs ``u (..., M)`` of the new
        steps): transition logits ``L(h_{t-1}, u_t)`` ``(..., K, K)`` (or ``(K, K)``) and ``log p(h_t | h_{t-1},
        z_t = k) (..., K)``. Pointwise over the leading dims: a whole path's steps at once, or one step online."""
        return self.transition_logits(h_prev, u), self.latent_step(h_prev, u).log_prob(h.unsqueeze(-2))

    def latent_prior(
        self, num_trials: int, num_steps: int, u: Optional[Tensor] = None, lengths: Optional[Tensor] = None
    ) -> CollapsedSwitchingPath:
        """p(h) = sum_z p(z, h) as a distribution with batch shape ``(num_trials,)``, event ``(num_steps, P)``
        (inputs ``u (num_trials, num_steps, M)`` or None; ``lengths (num_trials,)``: the steps of padded trials)."""
        return CollapsedSwitchingPath(
            lambda h: self.latent_factors(h, u, lengths),
            num_steps,
            self.latent_dim,
            (num_trials,),
            sampler=lambda shape: self.sample(num_trials, num_steps, u, shape).h,
        )

    # ----- the Pyro program -------------------------------------------------------------------------------
    @pyro_method
    def model(
        self,
        y: Tensor,
        u: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,
        mask: Optional[Tensor] = None,
        lengths: Optional[Tensor] = None,
        label_weight: float = 0.0,
    ):
        """``h (trials, T, P)`` from :meth:`latent_prior`, ``y (trials, T, D)`` observed; ``u (trials, T, M)`` or None,
        ``labels (trials, T)`` or None. ``mask (trials, T, D)`` bool: only observed entries are scored;
        ``lengths (trials,)``: padded trials end there (their later steps score nothing)."""
        num_trials, num_steps, _ = y.shape
        with pyro.plate("trials", num_trials, dim=-1):
            h = pyro.sample("h", self.latent_prior(num_trials, num_steps, u, lengths))
            if labels is not None and label_weight > 0:
                # supervised start (SRNN paper): reward smoothed p(z_t = label_t | h) of the given labels
                pyro.factor("labels", label_weight * label_log_match(self.latent_factors(h, u, lengths), labels, lengths))
            observed = observed_entries(y, mask, lengths)
            pyro.sample("y", dist.Independent(mask_observation(self.observation(h, u), observed), 1), obs=y)

    @pyro_method
    def guide(self, y: Tensor, u: Optional[Tensor] = None, labels=None, mask=None, lengths=None, label_weight: float = 0.0):
        """``h (trials, T, P)`` from the ``encoder`` given ``y (trials, T, D)``, ``u (trials, T, M)``, ``mask`` and
        ``lengths`` as in :meth:`model`; labels unused."""
        with pyro.plate("trials", y.shape[0], dim=-1):
            pyro.sample("h", self.encoder(y, u, mask, lengths))

    @pyro_method
    def filter_guide(self, y: Tensor, u: Optional[Tensor] = None, labels=None, mask=None, lengths=None, label_weight: float = 0.0):
        """As :meth:`guide`, with the causal ``filter_encoder``: ``h (trials, T, P)`` given ``y (trials, T, D)``."""
        if self.filter_encoder is None:
            raise ValueError("this model was built without a filter_encoder")
        with pyro.plate("trials", y.shape[0], dim=-1):
            pyro.sample("h", self.filter_encoder(y, u, mask, lengths))

    @torch.no_grad()
    def log_evidence(
        self,
        y: Tensor,
        u: Optional[Tensor] = None,
        num_particles: int = 100,
        particle_batch: Optional[int] = None,
        mask: Optional[Tensor] = None,
        lengths: Optional[Tensor] = None,
    ) -> Tensor:
        """Importance-weighted estimate of ``log p(y | u)`` per trial ``(trials,)`` for ``y (trials, T, D)``,
        ``u (trials, T, M)`` or None, the states summed exactly:

            log p^(y) = log (1/S) sum_s p(y | h^s) sum_z p(z, h^s) / q(h^s | y),   h^s ~ q(h | y) (the encoder).

        ``exp`` of it is unbiased for p(y); its expectation is a lower bound of log p(y) that tightens
        as S = ``num_particles`` grows (the IWAE bound, Burda et al. 2016). Only h is sampled.
        Particles are scored ``particle_batch`` at a time (default: as many as keep the largest
        intermediate, ``(batch, trials, T, num_states, P)`` or ``(batch, trials, T, D)``, near 2^25
        numbers), so memory stays bounded however many particles are asked for. ``mask`` and ``lengths``
        as in :meth:`model`: the evidence of the observed entries of each trial up to its length.

        Padding does not change the draws: the steps after the longest trial are cut off first, and the encoder's
        noise is drawn in blocks at fixed time positions (:func:`~pyro_neurodyn.distributions.time_blocked_normal`),
        so with the same RNG state a trial's own steps get the same numbers however far its batch is padded (the
        same Recording padded further gives the same estimates; a trial trimmed to its length, in a batch of the
        same size and particle batches, gets its padded value up to rounding).
        """
        if lengths is not None:  # what follows the longest trial is padding that nothing reads
            num_steps = int(lengths.max())
            y, mask = y[:, :num_steps], None if mask is None else mask[:, :num_steps]
            u = None if u is None else u[:, :num_steps]
        if particle_batch is None:
            per_particle = y.shape[0] * y.shape[1] * max(self.num_states * self.latent_dim, y.shape[-1])
            particle_batch = max(1, PARTICLE_BATCH_NUMBERS // per_particle)
        particle_batch = check_count(particle_batch, "particle_batch")
        proposal = self.encoder(y, u, mask, lengths)
        observed = observed_entries(y, mask, lengths)
        prior = self.latent_prior(y.shape[0], y.shape[1], u, lengths)
        log_weights = []
        for start in range(0, num_particles, particle_batch):
            h = proposal.sample((min(particle_batch, num_particles - start),))  # (batch, trials, T, P)
            log_weights.append(prior.log_prob(h) + mask_observation(self.observation(h, u), observed).log_prob(y).sum(-1) - proposal.log_prob(h))
        return torch.cat(log_weights).logsumexp(0) - math.log(num_particles)

    # ----- derived: the stepwise Pyro program, every z_t a site ----------------------------------------
    @pyro_method
    def stepwise_model(
        self,
        y: Optional[Tensor] = None,
        u: Optional[Tensor] = None,
        h: Optional[Tensor] = None,
        num_trials: Optional[int] = None,
        num_steps: Optional[int] = None,
    ):
        """The same model written the generic way: sites ``z_t``, ``h_t``, ``y_t`` for t = 0..T-1 in ``pyro.markov``.

        ``y (trials, T, D)`` observed if given, inputs ``u (trials, T, M)``; ``h (trials, T, P)`` observed if given
        (give it whenever the z sites are enumerated: a sampled h under enumerated z would grow as K^T); without ``y`` and ``h``,
        ``num_trials`` and ``num_steps`` set the size. Uses: ``config_enumerate`` + ``TraceEnum_ELBO`` (the
        cross-check of :func:`~pyro_neurodyn.models.check_model`), ``Predictive`` (prior draws with the states),
        ``infer_discrete`` (posterior state draws given h). A Python loop of Pyro sites: slow; never train with it.
        """
        known = y if y is not None else h
        num_trials = known.shape[0] if known is not None else num_trials
        num_steps = known.shape[1] if known is not None else num_steps
        if num_trials is None or num_steps is None:
            raise ValueError("stepwise_model needs y, h, or num_trials and num_steps")

        def at(x: Optional[Tensor], t: int) -> Optional[Tensor]:
            return None if x is None else x[:, t]

        with pyro.plate("trials", num_trials, dim=-1):
            z = pyro.sample("z_0", dist.Categorical(logits=self.initial_logits(at(u, 0))))
            h_t = pyro.sample("h_0", StateComponent(self.initial_latent(at(u, 0)), z), obs=at(h, 0))
            pyro.sample("y_0", self.observation(h_t, at(u, 0)), obs=at(y, 0))
            for t in pyro.markov(range(1, num_steps)):
                logits = self.transition_logits(h_t, at(u, t))  # (K, K) or (trials, K, K)
                z = pyro.sample(f"z_{t}", dist.Categorical(logits=Vindex(logits)[..., z, :]))
                h_t = pyro.sample(f"h_{t}", StateComponent(self.latent_step(h_t, at(u, t)), z), obs=at(h, t))
                pyro.sample(f"y_{t}", self.observation(h_t, at(u, t)), obs=at(y, t))

    # ----- derived: ancestral simulation -----------------------------------------------------------------
    @torch.no_grad()
    def simulate(self, h_prev: Tensor, z_prev: Tensor, num_steps: int, u: Optional[Tensor] = None) -> SwitchingSample:
        """Continue paths from ``h_prev (..., P)``, ``z_prev (...)`` for ``num_steps`` steps.

        A Python loop: each step depends on the previously *sampled* (z, h). ``u (..., num_steps, M)``
        are the inputs of the new steps. Returns y, h, z of the new steps only: ``(..., num_steps, D)``,
        ``(..., num_steps, P)``, ``(..., num_steps)``.
        """
        hs, zs = [], []
        for t in range(num_steps):
            u_t = None if u is None else u[..., t, :]
            logits = self.transition_logits(h_prev, u_t)
            z_prev = td.Categorical(logits=Vindex(logits)[..., z_prev, :]).sample()
            h_prev = StateComponent(self.latent_step(h_prev, u_t), z_prev).sample()
            hs.append(h_prev)
            zs.append(z_prev)
        h, z = torch.stack(hs, -2), torch.stack(zs, -1)
        return SwitchingSample(self.observation(h, u).sample(), h, z)

    @torch.no_grad()
    def sample(self, num_trials: int, num_steps: int, u: Optional[Tensor] = None, sample_shape: torch.Size = torch.Size()) -> SwitchingSample:
        """Sample ``sample_shape + (num_trials,)`` sequences of length ``num_steps`` from the prior, inputs
        ``u (num_trials, num_steps, M)`` or None: ``y (*sample_shape, num_trials, num_steps, D)``,
        ``h (*sample_shape, num_trials, num_steps, P)``, ``z (*sample_shape, num_trials, num_steps)``."""
        shape = torch.Size(sample_shape) + (num_trials,)
        u_first = None if u is None else u[..., 0, :]
        initial = td.Categorical(logits=self.initial_logits(u_first))
        z_1 = initial.sample(shape[: len(shape) - len(initial.batch_shape)]).expand(shape)
        h_1 = StateComponent(self.initial_latent(u_first), z_1).sample()
        rest = self.simulate(h_1, z_1, num_steps - 1, None if u is None else u[..., 1:, :])
        h = torch.cat([h_1.unsqueeze(-2), rest.h], -2)
        z = torch.cat([z_1.unsqueeze(-1), rest.z], -1)
        return SwitchingSample(self.observation(h, u).sample(), h, z)


def label_log_match(factors: SwitchingFactors, labels: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
    """``sum_t log p(z_t = label_t | h)``, the smoothed posterior's log probability of the given labels, per trial
    ``(...)``: chain ``factors`` of paths ``(..., T, P)``, ``labels (trials, T)`` int64, ``lengths (trials,)``
    (steps ``t >= lengths`` of padded trials count 0). The SRNN's label term (``SwitchingStateSpaceModel.model``)."""
    log_marginals = switching_posterior(*factors, log_space=True).marginals  # (..., T, K)
    log_match = log_marginals.gather(-1, labels.expand(log_marginals.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    if lengths is not None:
        log_match = torch.where(steps_within(lengths, log_match.shape[-1]), log_match, 0.0)
    return log_match.sum(-1)
