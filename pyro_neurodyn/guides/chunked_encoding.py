r"""A recurrent encoder over a long recording, in chunks: bounded memory, time linear in T.

The trial's T steps are cut into chunks of ``C = chunk_size`` steps.

* **Causal encoder: exact.** The chunks are read one after the other and the recurrent state (LSTM
  ``(hidden, cell)``, GRU ``hidden``) is carried from each chunk's last step into the next, so the
  features are those of one pass over the trial (up to float round-off): filtering in chunks equals
  filtering in one pass and the online filter. ``overlap`` is not used.
* **Bidirectional encoder: overlapping windows.** Its backward direction starts at the trial's end, so a
  carried state would need the whole trial first; instead chunk c, steps ``[cC, cC + C)``, is encoded
  inside the window ``[cC - O, cC + C + O)`` (``O = overlap``), shifted to lie inside ``[0, T)`` at the
  trial's two ends, so that the first chunk starts the recurrence at t = 0 and the last chunk's backward
  direction starts at the trial's end, as on the whole trial. Only each window's interior (its chunk) is kept: the encoder's head outputs
``(coef_t, loc_t, scale_t)`` of every step are stitched from the chunks into ``(B, T, P)`` tensors, and the
Gaussian path is built over the whole trial from them, so its mean ``h_t = coef_t h_{t-1} + loc_t`` is
carried across chunk boundaries exactly (:func:`~pyro_neurodyn.distributions.linear_recurrence` over all T).

What differs, for a bidirectional encoder, from encoding the whole trial at once: the recurrent features of a step read at most O
steps of context on each side of its chunk; a trained LSTM forgets what lies further away
geometrically, so the difference decays with O (measured for the SRNN in
``benchmarks/bench_long_recording.py``, which sets :data:`DEFAULT_OVERLAP`). Windows are batched
(``WINDOW_BATCH_NUMBERS`` numbers of recurrent state at a time), so the recurrence runs ``C + 2 O`` sequential
steps per batch of windows instead of T: faster than one pass over a long trial, and the memory of the
encoder's intermediates is bounded whatever T.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..data.validation import check_count
from ..distributions import LinearGaussianPath
from .encoders import RecurrentEncoder

__all__ = ["AUTO_CHUNK_ABOVE", "DEFAULT_CHUNK_SIZE", "DEFAULT_OVERLAP", "carried_state_path", "chunked_path", "resolve_chunking"]

DEFAULT_CHUNK_SIZE = 2000  # steps per chunk when chunking is automatic
DEFAULT_OVERLAP = 200  # context each side of a chunk (see the module docstring)
AUTO_CHUNK_ABOVE = 20000  # chunk_size=None chunks trials longer than this
WINDOW_BATCH_NUMBERS = 2**25  # recurrent activations held at once (about 128 MiB in float32)


def resolve_chunking(num_steps: int, chunk_size: Optional[int], overlap: Optional[int]) -> Optional[tuple[int, int]]:
    """``(chunk_size, overlap)`` to encode a trial of ``num_steps`` steps with, or None for one pass over the whole trial.

    ``chunk_size=None``: automatic, :data:`DEFAULT_CHUNK_SIZE` above :data:`AUTO_CHUNK_ABOVE` steps, else one
    pass. ``overlap=None``: :data:`DEFAULT_OVERLAP`. A ValueError naming the argument for a non-positive
    ``chunk_size``, a negative ``overlap``, or ``chunk_size < overlap`` (each chunk would be mostly context).
    """
    if overlap is not None:
        overlap = check_count(overlap, "overlap", minimum=0)
    if chunk_size is None:
        if num_steps <= AUTO_CHUNK_ABOVE:
            return None
        chunk_size = DEFAULT_CHUNK_SIZE
    chunk_size = check_count(chunk_size, "chunk_size")
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    if chunk_size < overlap:
        raise ValueError(f"chunk_size ({chunk_size}) must be at least overlap ({overlap}): use longer chunks or pass a smaller overlap")
    return chunk_size, overlap


def chunked_path(
    encoder: RecurrentEncoder,
    y: Tensor,
    u: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
    lengths: Optional[Tensor] = None,
    *,
    chunk_size: int,
    overlap: int,
) -> LinearGaussianPath:
    """``encoder(y, u, mask, lengths)`` computed in overlapping windows (see the module docstring).

    Args:
        encoder: a :class:`~pyro_neurodyn.guides.RecurrentEncoder` (bidirectional or causal).
        y: ``(B, T, D)``; u: ``(B, T, M)`` or None; mask: ``(B, T, D)`` bool or None; lengths: ``(B,)`` or None.
        chunk_size, overlap: C and O (checked by :func:`resolve_chunking`).

    Returns:
        A :class:`~pyro_neurodyn.distributions.LinearGaussianPath` with batch ``(B,)``, event ``(T, P)``: the whole
        trial's path, equal to ``encoder(y, ...)`` for a causal encoder, and for a bidirectional one when a window
        covers the trial (``T <= C + 2 O``).
    """
    if encoder.causal:
        return carried_state_path(encoder, encoder.standardized_inputs(y, u, mask), lengths, chunk_size)
    num_trials, num_steps = y.shape[:2]
    width = chunk_size + 2 * overlap
    if num_steps <= width:
        return encoder(y, u, mask, lengths)
    x = encoder.standardized_inputs(y, u, mask)  # (B, T, C)
    num_chunks = -(-num_steps // chunk_size)
    starts = torch.arange(num_chunks, device=y.device) * chunk_size
    window_starts = (starts - overlap).clamp(0, num_steps - width)  # every window inside [0, T)
    interior = (starts - window_starts).unsqueeze(-1) + torch.arange(chunk_size, device=y.device)  # (n, C)
    interior = interior.clamp_max(width - 1)  # the last chunk's steps past T: dropped below
    span = torch.arange(width, device=y.device)
    group = max(1, WINDOW_BATCH_NUMBERS // (width * encoder.rnn.hidden_size * 2 * 5))
    stitched = x.new_empty(num_trials * num_chunks, chunk_size, 3, encoder.latent_dim)
    for first in range(0, num_trials * num_chunks, group):
        windows = torch.arange(first, min(first + group, num_trials * num_chunks), device=y.device)
        trial, chunk = windows // num_chunks, windows % num_chunks
        window_x = x[trial.unsqueeze(-1), window_starts[chunk].unsqueeze(-1) + span]  # (G, W, C)
        window_lengths = None if lengths is None else (lengths[trial] - window_starts[chunk]).clamp(1, width)
        readout = encoder.readout(encoder.features(window_x, window_lengths))  # (G, W, 3, P)
        index = interior[chunk].reshape(len(windows), chunk_size, 1, 1).expand(-1, -1, 3, encoder.latent_dim)
        stitched[windows] = readout.gather(1, index)
    stitched = stitched.reshape(num_trials, num_chunks * chunk_size, 3, encoder.latent_dim)[:, :num_steps]
    return encoder.path(stitched, lengths)



def carried_state_path(encoder: RecurrentEncoder, x: Tensor, lengths: Optional[Tensor], chunk_size: int) -> LinearGaussianPath:
    """The path of a causal ``encoder`` over standardized inputs ``x (B, T, D + M)``
    (:meth:`~pyro_neurodyn.guides.RecurrentEncoder.standardized_inputs`), read ``chunk_size`` steps at a time
    with the recurrent state carried across chunks: the same path as one pass, with the encoder's intermediates
    held for one chunk at a time. A forward recurrence never reads the padding after a trial's end, so
    ``lengths (B,)`` only reaches the path's density."""
    readout = x.new_empty(x.shape[:2] + (3, encoder.latent_dim))
    carry = None
    for start in range(0, x.shape[1], chunk_size):
        features, carry = encoder.rnn(x[:, start : start + chunk_size], carry)
        readout[:, start : start + chunk_size] = encoder.readout(features)
    return encoder.path(readout, lengths)
