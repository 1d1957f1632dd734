"""The array backend of the ridge solvers: ``numpy`` on CPU, himalaya's ``torch`` or ``torch_cuda`` backends.

``auto`` is ``torch_cuda`` when torch sees a GPU, else ``numpy``; ``cpu`` is ``numpy``. The numpy backend is
``b2m.models.numpy_backend`` (the functions of himalaya's numpy backend that the solvers use, with the same
implementations): it spares a numpy fit the import of himalaya (which imports scikit-learn) and of torch, whose
imports took longer than a demo decode's fits. torch is imported only where a GPU may be there to use.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_CURRENT = "numpy"  # the backend set by use_backend


def gpu_driver_present() -> bool:
    """Whether an NVIDIA driver shows a GPU (``/proc/driver/nvidia/gpus``): without one, torch cannot see a GPU
    and is not imported to ask."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def resolve_backend(name: str = "auto") -> str:
    """The backend that ``name`` (one of ``b2m.options.RIDGE_BACKENDS``) stands for on this machine."""
    if name == "cpu" or (name == "auto" and not gpu_driver_present()):
        return "numpy"
    if name != "auto":
        return name
    if importlib.util.find_spec("torch") is None:
        return "numpy"
    import torch

    return "torch_cuda" if torch.cuda.is_available() else "numpy"


def use_backend(name: str = "auto") -> str:
    """Set the solvers' backend (and himalaya's, for a torch one) and return its name."""
    global _CURRENT

    chosen = resolve_backend(name)
    if chosen != "numpy" or "himalaya" in sys.modules:  # himalaya's backend too, where its functions are used
        from himalaya.backend import set_backend

        set_backend(chosen, on_error="raise")
    _CURRENT = chosen
    log.info("ridge backend: %s", chosen)
    return chosen


def get_backend():
    """The module of the backend last set by ``use_backend`` (numpy until then)."""
    if _CURRENT == "numpy":
        from b2m.models import numpy_backend

        return numpy_backend
    from himalaya.backend import get_backend as himalaya_backend

    return himalaya_backend()
