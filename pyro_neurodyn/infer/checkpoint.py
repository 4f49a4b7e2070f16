"""Saving and loading fitted models without ever overwriting or unpickling anything unsafe.

A checkpoint is a dict ``{"format", "format_version", "version", "kind", "config", "state_dict",
"checksum", ...}`` written with ``torch.save`` and read with ``torch.load(..., weights_only=True)``,
so it holds only tensors and plain Python values.

Integrity:

* **Writes are atomic and durable.** The payload goes to a temporary file in the target folder, which
  is flushed and ``fsync``'d, read back and verified, then moved into place (``os.link`` when the
  target must not exist, so an existing file is never replaced even by a concurrent writer;
  ``os.replace`` with ``overwrite=True``), and finally the folder itself is ``fsync``'d. A crash
  leaves either the old file or the new one, never a partial one under the target name.
* **Reads name the problem.** Any file that is empty, truncated, corrupted, foreign, of another model
  kind or of a newer format raises :class:`CheckpointError` (a :class:`ValueError`) whose message
  names the file and says what is wrong; a missing file raises :class:`FileNotFoundError`.
* **Stored values carry a checksum.** ``"checksum"`` is a SHA-256 over every tensor (dtype, shape and
  raw bytes) and every plain value of the payload in a canonical order (sorted dict keys), so a flipped
  byte inside a stored tensor -- which ``torch.load`` itself does not notice -- is detected on load.

Format versions (``"format_version"``, independent of the package version in ``"version"``):

* 1 -- the original format: no ``"format_version"`` entry and no checksum; still read, unchecked.
* 2 -- adds ``"format_version"`` and ``"checksum"`` (``"sha256:<hex digest>"``).
* 3 -- optimizer states (a fit's progress, a ``LowRankRNN``'s moments) are one ``torch.optim`` optimizer's,
  keyed by parameter names (:mod:`~pyro_neurodyn.infer.optimizer_state`), instead of ``pyro.optim``'s
  per-parameter ones keyed by param-store names; the readers convert formats 1 and 2.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import secrets
import struct
import sys
from pathlib import Path
from typing import Any, Callable, Union

import torch

from .. import __version__

__all__ = ["CheckpointError", "FORMAT_VERSION", "fingerprint", "load_checkpoint", "save_checkpoint"]

FORMAT = "pyro_neurodyn-checkpoint"
FORMAT_VERSION = 3  # the checkpoint layout this code writes; it reads 1 .. FORMAT_VERSION
PathLike = Union[str, os.PathLike]

_RESERVED = ("format", "format_version", "version", "kind", "config", "state_dict", "checksum")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's (default, since torch 1.6) zip-archive format
# What torch.load raises on files that are not (whole) torch files: probed on truncated, bit-flipped and
# random files. OSError comes from the zip reader seeking past the end of a truncated file (EINVAL);
# the OSErrors that concern access rather than content are re-raised as they are (see _read).
_UNREADABLE = (EOFError, pickle.UnpicklingError, RuntimeError, ValueError, KeyError, IndexError, TypeError,
               AttributeError, OverflowError, struct.error, OSError)  # fmt: skip
_ACCESS_ERRORS = (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError)


class CheckpointError(ValueError):
    """A file is not a usable pyro_neurodyn checkpoint (empty, truncated, corrupted, foreign, of another
    model kind or of a newer format). The message names the file and the problem; ``.path`` is the file."""

    path: Path | None = None


def _error(path: Path, problem: str) -> CheckpointError:
    error = CheckpointError(f"{path} {problem}")
    error.path = path
    return error


# ----- checksum ------------------------------------------------------------------------------------
def _tensor_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's elements as flat little-endian bytes, a uint8 tensor (any dtype: bfloat16, bool, complex,
    0-dim, empty)."""
    tensor = tensor.detach()
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    if tensor.is_quantized:
        tensor = tensor.int_repr()
    tensor = tensor.cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)
    if sys.byteorder == "big" and tensor.element_size() > 1:  # hash little-endian bytes on every machine
        if tensor.is_complex():
            tensor = torch.view_as_real(tensor).reshape(-1)  # swap each real and imaginary part alone
        return tensor.view(torch.uint8).view(-1, tensor.element_size()).flip(-1).reshape(-1)
    return tensor.view(torch.uint8)


def _feed(value: Any, update: Callable[[bytes], Any]) -> None:
    """Feed a canonical, type-tagged, length-prefixed encoding of ``value`` to ``update``."""

    def text(tag: bytes, string: str) -> None:
        data = string.encode("utf-8", "surrogatepass")
        update(tag + str(len(data)).encode() + b":" + data)

    if isinstance(value, torch.Tensor):
        raw = _tensor_bytes(value)
        text(b"T", f"{value.dtype}|{tuple(value.shape)}|{raw.numel()}")
        update(raw.numpy())  # a zero-copy buffer of the tensor's bytes
    elif isinstance(value, dict):
        encoded = sorted(((_encoding(key), item) for key, item in value.items()), key=lambda pair: pair[0])  # any order
        update(b"D" + str(len(encoded)).encode() + b":")
        for key_bytes, item in encoded:
            update(key_bytes)
            _feed(item, update)
    elif isinstance(value, (set, frozenset)):
        members = sorted(_encoding(member) for member in value)
        update(b"E" + str(len(members)).encode() + b":" + b"".join(members))
    elif isinstance(value, (list, tuple)):  # torch.Size is a tuple
        update((b"L" if isinstance(value, list) else b"U") + str(len(value)).encode() + b":")
        for item in value:
            _feed(item, update)
    elif value is None:
        update(b"N")
    elif isinstance(value, bool):
        update(b"B1" if value else b"B0")
    elif isinstance(value, int):
        text(b"I", str(int(value)))
    elif isinstance(value, float):
        text(b"F", float(value).hex())
    elif isinstance(value, complex):
        text(b"C", f"{value.real.hex()},{value.imag.hex()}")
    elif isinstance(value, str):
        text(b"S", value)
    elif isinstance(value, (bytes, bytearray)):
        update(b"Y" + str(len(value)).encode() + b":" + bytes(value))
    else:  # what else a weights-only load returns (torch.dtype, torch.device, ...): a deterministic repr
        text(b"O", f"{type(value).__module__}.{type(value).__qualname__}:{value!r}")


def _encoding(value: Any) -> bytes:
    """The bytes :func:`_feed` gives ``value`` (to sort dict keys and set members canonically)."""
    parts: list[bytes] = []
    _feed(value, parts.append)
    return b"".join(parts)


def fingerprint(value: Any) -> str:
    """``"sha256:<hex>"`` of any value a checkpoint can hold (tensors by dtype, shape and bytes; dicts in
    any key order): equal values give equal fingerprints on every machine."""
    digest = hashlib.sha256()
    _feed(value, digest.update)
    return "sha256:" + digest.hexdigest()


def _checksum(payload: dict) -> str:
    """``"sha256:<hex>"`` over every entry of ``payload`` except ``"checksum"`` itself."""
    return fingerprint({key: value for key, value in payload.items() if key != "checksum"})


# ----- writing -------------------------------------------------------------------------------------
def _fsync_directory(folder: Path) -> None:
    """Make a rename/link inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    if os.name == "nt":
        return
    handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(handle)
    except OSError as error:  # some file systems cannot fsync a folder: nothing more can be done there
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(handle)


def _temporary_file(path: Path) -> tuple[int, Path]:
    """Create a new, hidden file next to ``path`` (mode 0o666 less the umask, like an ordinary file)."""
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), temporary
        except FileExistsError:
            continue


def _move_into_place(temporary: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # atomic, and fails if path exists (even if created since we checked)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it") from None
    except OSError:  # a file system without hard links: check, then rename (a small window for a race)
        if os.path.lexists(path):
            raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it") from None
        os.replace(temporary, path)
        return
    os.remove(temporary)


def save_checkpoint(path: PathLike, kind: str, config: dict, state_dict: dict, *, overwrite: bool = False, **extra: Any) -> Path:
    """Write a checkpoint; refuse to replace an existing file unless ``overwrite=True``.

    The write is atomic and ``fsync``'d (file and folder), and the file is read back and checked before
    it takes the name ``path``: a payload that a weights-only load cannot read is refused here, with
    nothing written, rather than discovered when loading.

    Args:
        kind: which class wrote it (checked again on load), e.g. ``"SRNN"``.
        config: constructor arguments (plain values only) that rebuild the model.
        state_dict: the module's ``state_dict()``.
        extra: more plain entries (or tensors, nested in dicts and lists) to store, e.g. the loss history.
    """
    path = Path(path)
    reserved = sorted(set(extra) & set(_RESERVED))
    if reserved:
        raise ValueError(f"the checkpoint entries {reserved} are reserved; store extra values under other names")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder {path.parent} does not exist")
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, "kind": kind,
               "config": config, "state_dict": state_dict, **extra}  # fmt: skip
    payload["checksum"] = _checksum(payload)
    handle, temporary = _temporary_file(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            _check(temporary, _read(temporary), kind)
        except CheckpointError as error:
            raise CheckpointError(
                f"{path} was not written: the saved payload does not read back as a checkpoint ({error}); "
                "a checkpoint may hold only tensors and plain Python values (no numpy arrays or other objects)"
            ) from error
        _move_into_place(temporary, path, overwrite)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
    _fsync_directory(path.parent)
    return path


# ----- reading -------------------------------------------------------------------------------------
def _read(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``, with every content problem raised as CheckpointError."""
    with open(path, "rb") as stream:  # access problems (permissions, ...) surface here, as themselves
        head = stream.read(len(_ZIP_MAGIC))
    if not head:
        raise _error(path, "is empty")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except _ACCESS_ERRORS:
        raise
    except _UNREADABLE as error:
        if isinstance(error, pickle.UnpicklingError) and head == _ZIP_MAGIC and "weights only" in str(error).lower():
            raise _error(
                path,
                "is not a pyro_neurodyn checkpoint (or is corrupted): it holds Python objects that a weights-only load "
                "refuses to unpickle (checkpoints hold only tensors and plain values; loading it with weights_only=False "
                "would run whatever code it contains)",
            ) from error
        detail = "its zip archive could not be read" if head == _ZIP_MAGIC else "it is not a torch.save zip archive"
        raise _error(path, f"is truncated or not a torch file ({detail}: {type(error).__name__})") from error


def _check(path: Path, payload: Any, kind: str) -> dict:
    """Validate a loaded payload: marker, format version, checksum, kind and the required entries."""
    if not isinstance(payload, dict):
        raise _error(path, f"is not a pyro_neurodyn checkpoint: it holds a {type(payload).__name__}, not a checkpoint dict")
    if payload.get("format") != FORMAT:
        raise _error(path, f"is not a pyro_neurodyn checkpoint: it has no {FORMAT!r} format marker")
    version = payload.get("format_version", 1)  # format 1 had no format_version entry
    if type(version) is not int or version < 1:
        raise _error(path, f"has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise _error(
            path,
            f"was written by format version {version}; this version reads {FORMAT_VERSION} (and older): "
            f"upgrade pyro_neurodyn (now {__version__}) to load it",
        )
    if version >= 2:
        stored = payload.get("checksum")
        if not isinstance(stored, str):
            raise _error(path, f"is corrupted: format version {version} requires a checksum and it has none")
        if not stored.startswith("sha256:"):
            raise _error(path, f"is corrupted: its checksum {stored[:20]!r} is not a SHA-256 digest")
        if _checksum(payload) != stored:
            raise _error(path, "failed its checksum: the stored tensors or values changed after saving (e.g. a flipped byte)")
    found = payload.get("kind")
    if not isinstance(found, str):
        raise _error(path, "is not a pyro_neurodyn checkpoint: it names no model kind")
    if found != kind:
        raise _error(path, f"holds a {found} checkpoint, not a {kind}")
    for entry in ("config", "state_dict"):
        if not isinstance(payload.get(entry), dict):
            raise _error(path, f"is not a complete {kind} checkpoint: its {entry!r} entry is missing or not a dict")
    return payload


def load_checkpoint(path: PathLike, kind: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` for class ``kind`` (weights only, on CPU).

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: the file is empty, truncated, corrupted (failed checksum), not a pyro_neurodyn
            checkpoint, a checkpoint of another kind, or of a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return _check(path, _read(path), kind)
