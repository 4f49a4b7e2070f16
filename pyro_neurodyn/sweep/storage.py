"""A sweep's storage folder: which sweep it holds, so that a rerun resumes it and another sweep is refused.

The folder is Ray Tune's experiment directory (trial folders, checkpoints, ``experiment_state*.json``,
``tuner.pkl``) plus two things of ours:

    sweep.json      what identifies the sweep: a fingerprint of each of build, grid points, seeds, fit
                    arguments, evaluation settings, training and test data (and a readable description)
    fits/           checkpoints of fits in progress, one file per trial (see :mod:`.trial`)

:func:`claim_storage` is called before anything runs: a new or empty folder becomes this sweep's; a folder
that holds the same sweep is resumed; a folder that holds another sweep, or files that are not a sweep,
is refused with an error that says which entries differ. Nothing in the folder is ever replaced by a
different sweep.

What identifies ``build``: its module and qualified name (a function or class), or its ``repr`` (a
callable object whose class defines one, e.g. a dataclass). A build whose code was edited under the same
name is therefore not detected: use a new folder after changing what ``build`` does.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..data.recording import Recording
from ..infer.checkpoint import fingerprint

__all__ = ["MANIFEST", "FITS", "build_identity", "claim_storage", "sweep_identity"]

MANIFEST = "sweep.json"
FITS = "fits"
FORMAT = 1


def build_identity(build: Any) -> str:
    """``module.qualname`` of a function or class; the ``repr`` of a callable object whose class defines
    ``__repr__``; else the class's ``module.qualname`` (see the module docstring)."""
    if hasattr(build, "__qualname__") and hasattr(build, "__module__"):
        return f"{build.__module__}.{build.__qualname__}"
    kind = type(build)
    if kind.__repr__ is not object.__repr__:
        return repr(build)
    return f"{kind.__module__}.{kind.__qualname__}"


def _canonical(value: Any) -> Any:
    """``value`` with numpy arrays as tensors and Recordings as the dict of what a fit reads, recursively,
    so that :func:`~pyro_neurodyn.infer.checkpoint.fingerprint` sees their contents rather than a repr."""
    if isinstance(value, Recording):
        return {"y": value.y, "mask": value.mask, "lengths": value.lengths, "u": value.u}
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    if isinstance(value, Mapping):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_canonical(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _canonical(getattr(value, field.name)) for field in dataclasses.fields(value)}
    return value


def sweep_identity(**entries: Any) -> dict[str, str]:
    """``{entry: fingerprint}`` of everything a sweep's results depend on (values canonicalized first)."""
    return {name: fingerprint(_canonical(value)) for name, value in entries.items()}


def claim_storage(folder: Path, identity: dict[str, str], description: dict[str, Any]) -> bool:
    """Make ``folder`` this sweep's storage; return True if it already held this sweep (resume), False if new.

    Raises:
        ValueError: ``folder`` holds another sweep (the message names the entries that differ).
        FileExistsError: ``folder`` is a file, or a non-empty folder without ``sweep.json``.
    """
    manifest = folder / MANIFEST
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"storage: {folder} is a file, not a folder")
    if manifest.is_file():
        try:
            saved = json.loads(manifest.read_text())["identity"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"storage: {manifest} is not a readable sweep description ({error}); use another storage folder") from None
        differing = sorted(name for name in set(saved) | set(identity) if saved.get(name) != identity.get(name))
        if differing:
            raise ValueError(
                f"storage: {folder} holds a different sweep (it differs in {', '.join(differing)}); it is left as it is: "
                "give another storage folder for this sweep, or the same arguments to resume that one"
            )
        (folder / FITS).mkdir(exist_ok=True)
        return True
    if folder.is_dir() and any(folder.iterdir()):
        raise FileExistsError(f"storage: {folder} is not empty and holds no {MANIFEST}: it is not a sweep's folder; give a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "identity": identity, "description": description}
    temporary = folder / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(payload, indent=1, default=repr))
    os.replace(temporary, manifest)
    (folder / FITS).mkdir()
    return False
