"""himalaya backend choice: ``auto`` is ``torch_cuda`` when torch sees a GPU; on the CPU, ``numpy`` for the
primal form (features ≤ samples) and ``torch`` for the kernel form, the faster of the two for each."""

from __future__ import annotations

import importlib.util
import logging

from himalaya.backend import set_backend

log = logging.getLogger(__name__)


def resolve_backend(name: str = "auto", form: str = "primal") -> str:
    if name != "auto":
        return name
    if importlib.util.find_spec("torch") is None:
        return "numpy"
    import torch

    if torch.cuda.is_available():
        return "torch_cuda"
    return "torch" if form == "kernel" else "numpy"


def use_backend(name: str = "auto", form: str = "primal") -> str:
    """Set himalaya's backend for a ridge of this form (primal / kernel) and return its name."""
    chosen = resolve_backend(name, form)
    set_backend(chosen, on_error="raise")
    log.info("himalaya backend: %s", chosen)
    return chosen
