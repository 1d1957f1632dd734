"""himalaya backend choice: ``auto`` is ``torch_cuda`` when torch sees a GPU, else ``numpy``."""

from __future__ import annotations

import importlib.util
import logging

from himalaya.backend import set_backend

log = logging.getLogger(__name__)


def resolve_backend(name: str = "auto") -> str:
    if name != "auto":
        return name
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return "torch_cuda"
    return "numpy"


def use_backend(name: str = "auto") -> str:
    """Set himalaya's backend and return its name."""
    chosen = resolve_backend(name)
    set_backend(chosen, on_error="raise")
    log.info("himalaya backend: %s", chosen)
    return chosen
