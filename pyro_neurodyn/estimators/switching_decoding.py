r"""Decoding a fitted switching model with amortized encoders: latent paths, states offline and online, long trials.

For an estimator whose ``module`` is a :class:`~pyro_neurodyn.models.SwitchingStateSpaceModel` with a
bidirectional ``encoder`` (smoothing) and a causal ``filter_encoder`` (filtering):

* offline, given the whole trial: the encoder's posterior-mean latent path ``h``, then the exact chain
  over the K states at that path (its factors ``log p(h_t | h_{t-1}, z_t = k)`` and ``L(h_{t-1}, u_t)``):
  smoothed marginals ``p(z_t | h)`` (:meth:`state_marginals`), the Viterbi path (:meth:`most_likely_states`),
  and with the causal encoder's path the filtered marginals ``p(z_t | h_{1:t})`` (:meth:`filter_marginals`);
* online, one observation at a time: :meth:`online` returns a
  :class:`~pyro_neurodyn.infer.switching_online_filter.SwitchingOnlineFilter` whose updates equal
  :meth:`filter_marginals` step by step, in O(1) memory.

**Long trials** (an hour-long recording of T = 1e5 steps): every offline method takes ``chunk_size`` and
``overlap``. The bidirectional encoder then runs over overlapping windows (chunks of ``chunk_size`` steps,
each read with ``overlap`` steps of context on both sides; :mod:`~pyro_neurodyn.guides.chunked_encoding`);
the causal one (filtering) reads the chunks in turn with its recurrent state carried, exactly. The
rest is exact over the whole trial: the latent mean's recurrence is carried across chunks, the chain's
factors are computed on the stitched path (so a step after a chunk boundary is scored from the
stitched ``h_{t-1}``), and the chain is summed or maximized over all T steps by the parallel scans (its
factors, ``O(T K^2)`` numbers, are as small as the output). Smoothing differs from one pass only
through the bidirectional encoder's features near the cuts, which the overlap makes negligible (measured: README).
``chunk_size=None`` (default) chunks trials longer than
:data:`~pyro_neurodyn.guides.chunked_encoding.AUTO_CHUNK_ABOVE` steps in chunks of
:data:`~pyro_neurodyn.guides.chunked_encoding.DEFAULT_CHUNK_SIZE`; ``chunk_size >= T`` is one pass.

**The causal encoder.** Filtering needs ``q(h_t | y_{1:t})``, which the default bidirectional encoder does
not give. ``fit`` trains an auxiliary causal encoder after the model (``filter_steps``, default a third of
``num_steps``, with the model frozen; also used by ``forecast``), and :meth:`filter_marginals` and
:meth:`online` use it; with ``filter_steps=0`` it was never trained and they raise.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ..distributions import LinearGaussianPath, switching_filter, switching_posterior, switching_viterbi
from ..guides.chunked_encoding import chunked_path, resolve_chunking
from ..infer.switching_online_filter import SwitchingOnlineFilter
from .base import mark_padding, module_local

__all__ = ["SwitchingDecoding"]


class SwitchingDecoding:
    """The decoding methods (see the module docstring). The estimator provides ``recording_arrays``,
    ``_fitted_module()``, ``_placed_modules()`` (the methods run with module-local parameters,
    :func:`~pyro_neurodyn.estimators.base.module_local`), ``config`` (``obs_dim``, ``observation``) and
    ``filter_steps_done`` (steps the causal encoder was trained for; None: unknown, e.g. a model saved before
    this was recorded)."""

    filter_steps_done: Optional[int] = None

    def _latent_path(self, y: Any, u: Any, *, causal: bool, chunk_size: Optional[int], overlap: Optional[int]):
        """``(path, u, lengths)``: q(h | y) of the (filter) encoder as a LinearGaussianPath over the whole trial,
        chunked for long trials, with the validated inputs and the trials' lengths."""
        y, u, mask, lengths = self.recording_arrays(y, u)
        module = self._fitted_module()
        encoder = module.filter_encoder if causal else module.encoder
        chunking = resolve_chunking(y.shape[1], chunk_size, overlap)
        if chunking is None:
            return encoder(y, u, mask, lengths), u, lengths
        path: LinearGaussianPath = chunked_path(encoder, y, u, mask, lengths, chunk_size=chunking[0], overlap=chunking[1])
        return path, u, lengths

    def _decoding_factors(self, y: Any, u: Any, causal: bool = False, chunk_size: Optional[int] = None, overlap: Optional[int] = None):
        path, u, lengths = self._latent_path(y, u, causal=causal, chunk_size=chunk_size, overlap=overlap)
        return self._fitted_module().latent_factors(path.mean, u, lengths), lengths

    @module_local
    @torch.no_grad()
    def posterior_latents(self, y: Any, u: Any = None, *, chunk_size: Optional[int] = None, overlap: Optional[int] = None) -> Tensor:
        """The encoder's mean latent path ``(trials, time, latent_dim)`` for ``y (trials, time, channels)`` (or a
        :class:`~pyro_neurodyn.data.Recording`: its padding comes back NaN), ``u (trials, time, M)``.
        ``chunk_size``, ``overlap``: long trials (module docstring)."""
        path, _, lengths = self._latent_path(y, u, causal=False, chunk_size=chunk_size, overlap=overlap)
        return mark_padding(path.mean, lengths, float("nan"))

    @module_local
    @torch.no_grad()
    def state_marginals(self, y: Any, u: Any = None, *, chunk_size: Optional[int] = None, overlap: Optional[int] = None) -> Tensor:
        """Smoothed ``p(z_t = k | h, y)`` at the posterior mean latents, ``(trials, time, K)``, for
        ``y (trials, time, channels)`` or a Recording (padding: NaN), ``u (trials, time, M)``.
        ``chunk_size``: encode in chunks of this many steps (default None: chunks of 2000 above 20000 steps);
        ``overlap``: context steps on each side of a chunk (default 200). See the module docstring."""
        factors, lengths = self._decoding_factors(y, u, False, chunk_size, overlap)
        return mark_padding(switching_posterior(*factors).marginals, lengths, float("nan"))

    @module_local
    @torch.no_grad()
    def most_likely_states(self, y: Any, u: Any = None, *, chunk_size: Optional[int] = None, overlap: Optional[int] = None) -> Tensor:
        """Viterbi state path at the posterior mean latents, ``(trials, time)`` int64, for ``y (trials, time,
        channels)`` or a Recording (padding: -1), ``u (trials, time, M)``. ``chunk_size``, ``overlap``: as in
        :meth:`state_marginals`."""
        factors, lengths = self._decoding_factors(y, u, False, chunk_size, overlap)
        return mark_padding(switching_viterbi(*factors).states, lengths, -1)

    @module_local
    @torch.no_grad()
    def filter_marginals(self, y: Any, u: Any = None, *, chunk_size: Optional[int] = None, overlap: Optional[int] = None) -> Tensor:
        """Filtered ``p(z_t = k | h_{1:t})`` at the causal encoder's posterior-mean path ``h_t = E_q[h_t | y_{1:t}]``,
        ``(trials, time, K)``: what an observer who has seen ``y_{1:t}`` only can say at t (and what
        :meth:`online` computes one step at a time), for ``y (trials, time, channels)`` or a Recording (padding:
        NaN), ``u (trials, time, M)``. ``chunk_size``: as in :meth:`state_marginals`; the causal
        encoder carries its state across chunks, so chunked filtering equals one pass and ``overlap`` is unused."""
        self._check_filter_encoder("filter_marginals")
        factors, lengths = self._decoding_factors(y, u, True, chunk_size, overlap)
        return mark_padding(switching_filter(*factors), lengths, float("nan"))

    @module_local
    @torch.no_grad()
    def reconstruct(self, y: Any, u: Any = None, *, chunk_size: Optional[int] = None, overlap: Optional[int] = None) -> Tensor:
        """Emission mean at the posterior mean latents, ``(trials, time, channels)``, for ``y (trials, time,
        channels)`` or a Recording (padding: NaN; missing entries are predicted), ``u (trials, time, M)``.
        ``chunk_size``, ``overlap``: as in :meth:`state_marginals`."""
        path, _, lengths = self._latent_path(y, u, causal=False, chunk_size=chunk_size, overlap=overlap)
        return mark_padding(self._fitted_module().emission.mean(path.mean), lengths, float("nan"))

    def online(self) -> SwitchingOnlineFilter:
        """A new online filter: ``f.update(y_t (D,) or (B, D), u_t=None) -> (K,) or (B, K)``, ``p(z_t = k | y_{1:t})``;
        ``f.reset()`` starts a new recording. Equal to :meth:`filter_marginals` on the same data (up to
        rounding), O(1) memory in time (:mod:`~pyro_neurodyn.infer.switching_online_filter`)."""
        self._check_filter_encoder("online")
        module = self._fitted_module()
        return SwitchingOnlineFilter(module, module.filter_encoder, self.config.obs_dim, counts=self.config.observation == "poisson")

    def _check_filter_encoder(self, action: str) -> None:
        """RuntimeError if the causal encoder that ``action`` uses was never trained (a fit with ``filter_steps=0``)."""
        self._fitted_module()
        if self.filter_steps_done == 0:
            raise RuntimeError(
                f"{action} uses the causal (filter) encoder, which this model's fit never trained (filter_steps=0): the "
                "default bidirectional encoder reads the future and cannot filter. Fit with filter_steps > 0 "
                "(default num_steps // 3), e.g. fit(y, filter_steps=300)"
            )
