"""The log weight of one VSMC step, read from the traces of its model and guide.

:func:`step_log_weight` sorts the step's sample sites (latents the guide proposed, latents the model
proposed itself, observations), checks what :class:`~pyro_neurodyn.infer.VSMC_ELBO` needs of them
(reparameterized latents, one ``poutine.scale``, batch shapes ``(particles, *plates)``, no site outside
the latents' plates), and sums their log densities to one log weight ``(S, *W)`` per particle and
particle system (the maths: :mod:`pyro_neurodyn.infer.vsmc`).
"""

from __future__ import annotations

from typing import NamedTuple, Union

import torch
from pyro.poutine.util import site_is_subsample
from torch import Tensor

__all__ = ["step_log_weight"]


def step_log_weight(model_trace, guide_trace, t: int, max_plate_nesting: int) -> tuple[Tensor, Union[float, Tensor]]:
    """``(log w_t, scale)`` of one step: the log weights ``(S, *W)`` (one per particle and particle system) and the
    scale of its sites, from the traces of the step's model and guide (see :mod:`.vsmc`'s docstring)."""
    sites = _weighted_sites(model_trace, guide_trace, t)
    full_ndim = max_plate_nesting + 1
    for name, shape in sites.latent_shapes + [(name, log_p.shape) for name, log_p in sites.observed]:
        if len(shape) != full_ndim:
            raise ValueError(
                f"site {name!r} at step {t} has batch shape {tuple(shape)}; with max_plate_nesting = "
                f"{max_plate_nesting} it must be (particles, {max_plate_nesting} plate dims): declare its "
                "batch dims with pyro.plate or move them into the event with .to_event()"
            )
    terms = sites.proposed + sites.observed
    if not sites.latent_shapes:  # no latents: the observations' plates are the systems
        return sum(log_p for _, log_p in terms), sites.scale
    system_shape = _broadcast_shape([shape for _, shape in sites.latent_shapes])
    for name, shape in sites.latent_shapes + [(name, log_p.shape) for name, log_p in terms]:
        _check_inside_system_plates(shape, system_shape, name, t)
    log_w = _zero_log_weights(model_trace, terms, sites.latent_shapes[0][0], system_shape)  # model-proposed latents alone weigh 1
    for _, log_p in terms:
        log_w = log_w + _sum_to_system_shape(log_p, system_shape)
    return log_w, sites.scale


def _site_log_prob(site: dict) -> Tensor:
    log_prob = site["fn"].log_prob(site["value"])
    mask = site["mask"]
    if mask is not None and mask is not True:
        log_prob = torch.where(mask, log_prob, log_prob.new_zeros(()))
    return log_prob


def _same_scale(a, b) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        device = (a if isinstance(a, Tensor) else b).device
        return bool(torch.equal(torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)))
    return a == b


class _StepSites(NamedTuple):
    """One step's weighted sites: ``proposed`` ``[(name, log p - log q)]`` (latents the guide proposed),
    ``observed`` ``[(name, log p)]``, ``latent_shapes`` of every latent ``[(name, batch shape)]``, ``scale``."""

    proposed: list
    observed: list
    latent_shapes: list
    scale: Union[float, Tensor]


def _weighted_sites(model_trace, guide_trace, t: int) -> _StepSites:
    """Sort one step's sample sites (see :class:`_StepSites`), checking what VSMC needs of them."""
    want_grad = torch.is_grad_enabled()
    proposed, observed, latent_shapes = [], [], []
    scale = None
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if scale is None:
            scale = site["scale"]
        elif not _same_scale(scale, site["scale"]):
            raise ValueError(f"all sites of one step must share one poutine.scale; site {name!r} at step {t} differs")
        if site["is_observed"]:
            observed.append((name, _site_log_prob(site)))
            continue
        # the draw must be reparameterized: the guide's when it proposes the site (the model's law then
        # only needs a differentiable log_prob, e.g. a mixture), else the model's own
        sampler = guide_trace.nodes[name]["fn"] if name in guide_trace.nodes else site["fn"]
        if want_grad and not sampler.has_rsample:
            raise ValueError(
                f"VSMC_ELBO needs reparameterized latents for gradients, but site {name!r} ({type(sampler).__name__}) "
                "has no rsample; use log_evidence/filter (no gradients) or a reparameterizable distribution"
            )
        if name in guide_trace.nodes:
            log_p = _site_log_prob(site) - _site_log_prob(guide_trace.nodes[name])
            latent_shapes.append((name, log_p.shape))
            proposed.append((name, log_p))
        else:  # proposed by the model itself: p / q = 1
            latent_shapes.append((name, site["fn"].batch_shape))
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site) and name not in model_trace.nodes:
            raise ValueError(f"the guide samples site {name!r} at step {t}, which the model does not have")
    if not latent_shapes and not observed:
        raise ValueError(f"step {t} of the model has no sample sites")
    return _StepSites(proposed, observed, latent_shapes, 1.0 if scale is None else scale)


def _broadcast_shape(shapes: list) -> torch.Size:
    """``torch.broadcast_shapes`` for a few short shapes, without its overhead in the per-step loop."""
    result = list(shapes[0])
    for shape in shapes[1:]:
        result = [max(a, b) for a, b in zip(result, shape)]
    return torch.Size(result)


def _check_inside_system_plates(shape: torch.Size, system_shape: torch.Size, name: str, t: int) -> None:
    if any(size == 1 and system > 1 for size, system in zip(shape[1:], system_shape[1:])):
        raise ValueError(
            f"site {name!r} at step {t} (batch shape {tuple(shape)}) lies outside a plate in which the latents vary "
            f"({tuple(system_shape)}): it would couple the independent particle systems"
        )


def _zero_log_weights(model_trace, terms: list, latent_name: str, system_shape: torch.Size) -> Tensor:
    """Zeros ``system_shape`` in the dtype and on the device of the step's log-densities ``terms`` (else of
    the latent ``latent_name``'s value, or torch's default float dtype for a discrete one)."""
    like = terms[0][1] if terms else model_trace.nodes[latent_name]["value"]
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return torch.zeros(system_shape, dtype=dtype, device=like.device)


def _sum_to_system_shape(log_p: Tensor, system_shape: torch.Size) -> Tensor:
    """Sum ``log_p`` over the plate dims on which the latents do not vary (e.g. an observation plate)."""
    summed = [d for d in range(1, log_p.dim()) if system_shape[d] == 1 and log_p.shape[d] > 1]
    return log_p.sum(dim=summed, keepdim=True) if summed else log_p
