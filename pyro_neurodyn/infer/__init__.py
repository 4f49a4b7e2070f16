"""Inference: the shared SVI loop, checkpoints, and (later) the VSMC objective."""

from .checkpoint import load_checkpoint, save_checkpoint
from .svi_loop import GuardedSVI, NonFiniteLossError, fit_svi

__all__ = ["GuardedSVI", "NonFiniteLossError", "fit_svi", "load_checkpoint", "save_checkpoint"]
