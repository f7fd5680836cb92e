"""Checkpoints that hold tensors and plain values only, loaded with `weights_only=True`: a file placed at a
checkpoint's path can give wrong numbers at worst, never run code. A file that does not load is one clear
error naming it and saying how to start over."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from ..core.errors import RksError
from ..core.files import atomic_write


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` (tensors, numbers, strings, lists, tuples, dicts) atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, buffer.getvalue())


def load_checkpoint(path: str | Path, start_over: str) -> dict:
    """The state saved at `path`. `start_over` tells the user what to do when it does not load (it names the
    files to delete)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise RksError(f"cannot read checkpoint {path}: {err.strerror}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RksError(f"checkpoint {path} does not load ({reason[:160]}); {start_over}") from None
    if not isinstance(state, dict):
        raise RksError(f"checkpoint {path} holds a {type(state).__name__}, not a saved state; {start_over}")
    return state


def save_trained(folder: Path, source: str, arch_json: str, state: dict, metrics: dict) -> None:
    """`rks train --save`: the model's Python, its arch, its trained weights and its metrics, each atomic."""
    import json

    atomic_write(folder / "model.py", source)
    atomic_write(folder / "arch.json", arch_json + "\n")
    save_checkpoint(folder / "weights.pt", state)
    atomic_write(folder / "metrics.json", json.dumps(metrics, indent=1) + "\n")
