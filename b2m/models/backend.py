"""himalaya backend choice: ``auto`` is ``torch_cuda`` when torch sees a GPU, else ``cpu``; ``cpu`` is ``numpy``
for the primal form (features ≤ samples) and ``torch`` for the kernel form, the faster of the two for each."""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)


def resolve_backend(name: str = "auto", form: str = "primal") -> str:
    """The himalaya backend that ``name`` (one of ``b2m.options.RIDGE_BACKENDS``) stands for, for a ridge of this
    form."""
    if name not in ("auto", "cpu"):
        return name
    if importlib.util.find_spec("torch") is None:
        return "numpy"
    import torch

    if name == "auto" and torch.cuda.is_available():
        return "torch_cuda"
    return "torch" if form == "kernel" else "numpy"


def use_backend(name: str = "auto", form: str = "primal") -> str:
    """Set himalaya's backend for a ridge of this form (primal / kernel) and return its name."""
    from himalaya.backend import set_backend

    chosen = resolve_backend(name, form)
    set_backend(chosen, on_error="raise")
    log.info("himalaya backend: %s", chosen)
    return chosen
