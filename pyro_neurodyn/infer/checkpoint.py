"""Saving and loading fitted models without ever overwriting or unpickling anything unsafe.

A checkpoint is a dict ``{"format", "version", "kind", "config", "state_dict", ...}`` written with
``torch.save`` (atomically: a temporary file renamed into place) and read with
``torch.load(..., weights_only=True)``, so it holds only tensors and plain Python values.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Union

import torch

from .. import __version__

__all__ = ["save_checkpoint", "load_checkpoint"]

FORMAT = "pyro_neurodyn-checkpoint"
PathLike = Union[str, os.PathLike]


def save_checkpoint(path: PathLike, kind: str, config: dict, state_dict: dict, *, overwrite: bool = False, **extra: Any) -> Path:
    """Write a checkpoint; refuse to replace an existing file unless ``overwrite=True``.

    Args:
        kind: which class wrote it (checked again on load), e.g. ``"SRNN"``.
        config: constructor arguments (plain values only) that rebuild the model.
        state_dict: the module's ``state_dict()``.
        extra: more plain entries to store (e.g. the loss history).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    if not path.parent.exists():
        raise FileNotFoundError(f"the folder {path.parent} does not exist")
    payload = {"format": FORMAT, "version": __version__, "kind": kind, "config": config, "state_dict": state_dict, **extra}
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def load_checkpoint(path: PathLike, kind: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` for class ``kind`` (weights only, on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyro_neurodyn checkpoint")
    if payload["kind"] != kind:
        raise ValueError(f"{path} holds a {payload['kind']} checkpoint, not a {kind}")
    return payload
