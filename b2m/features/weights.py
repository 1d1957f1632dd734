"""Model weights in a local Hugging Face cache folder: fetched once (``b2m fetch-models``, on a machine with
internet: a cluster's login node), then only read, with the hub offline.

Every model-based extractor declares the ``Weights`` it needs; loading goes through ``local_path``, which
never touches the network and stops with one message naming the missing file and the fetch command.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from b2m.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("models")


def fetch_command(cache) -> str:
    return f"b2m fetch-models --config <your config.yaml> --cache {cache}   (Snakemake: the local rule fetch_models)"


@dataclass(frozen=True)
class Weights:
    """One thing to fetch from the Hugging Face hub: a whole repository snapshot, or one file of it."""

    repo_id: str
    filename: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}/{self.filename}" if self.filename else self.repo_id

    def cache_folder(self, cache) -> Path:
        """The hub cache's folder for this repository (``models--<org>--<name>``)."""
        return Path(cache) / ("models--" + self.repo_id.replace("/", "--"))

    def local_path(self, cache) -> Path:
        """The file, or the snapshot folder, in ``cache``; never downloads."""
        from huggingface_hub import hf_hub_download, snapshot_download

        try:
            if self.filename:
                return Path(hf_hub_download(self.repo_id, self.filename, cache_dir=cache, local_files_only=True))
            return Path(snapshot_download(self.repo_id, cache_dir=cache, local_files_only=True))
        except OSError as err:  # LocalEntryNotFoundError is one
            raise MissingWeightsError(self, cache) from err

    def fetch(self, cache) -> Path:
        """Download into ``cache`` (a no-op when already there)."""
        from huggingface_hub import hf_hub_download, snapshot_download

        log.info("fetching %s into %s", self, cache)
        try:
            if self.filename:
                return Path(hf_hub_download(self.repo_id, self.filename, cache_dir=cache))
            return Path(snapshot_download(self.repo_id, cache_dir=cache))
        except (OSError, ValueError) as err:  # connection, offline mode, unknown or gated repository
            raise InputError(self.cache_folder(cache), f"could not fetch {self} ({type(err).__name__}: {err})",
                             "run b2m fetch-models where the internet is reachable (a cluster's login node), "
                             "with HF_HUB_OFFLINE unset; for gated models log in with `hf auth login`") from err


class MissingWeightsError(InputError):
    """A model file that is not in the local cache."""

    def __init__(self, weights: Weights, cache):
        target = weights.cache_folder(cache) / (weights.filename or "")
        super().__init__(target, f"model weights {weights} are not in the model cache {cache}",
                         f"fetch them on a machine with internet: {fetch_command(cache)}")
        self.weights = weights


def torch_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` where a GPU is visible, else ``cpu``; any other torch device name as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def use_cache(cache, offline: bool) -> None:
    """Point the hub library at ``cache`` (and forbid network access when ``offline``). Must run before
    ``huggingface_hub`` is first imported, since it reads these at import; the b2m command does so."""
    os.environ["HF_HUB_CACHE"] = str(Path(cache).resolve())
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


@contextmanager
def hub_defaults(cache):
    """For third-party code that calls ``from_pretrained`` without a cache folder (laion-clap's constructor):
    the hub's default cache is ``cache`` and the hub is offline, until the block ends."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE
    constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = str(Path(cache).resolve()), True
    try:
        yield
    finally:
        constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = saved


def fetch_all(weights, cache) -> list[Path]:
    """Fetch every item of ``weights`` (deduplicated, in order) into ``cache``."""
    unique = list(dict.fromkeys(weights))
    return [item.fetch(cache) for item in unique]
