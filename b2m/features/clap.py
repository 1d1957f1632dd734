"""CLAP embeddings, the open stand-in for MuLan: the audio tower on 10 s windows (MuLan-music) and the text
tower on each clip's caption (MuLan-text), both L2-normalised.

Two backends load the weights, and the extractors around them window, quantise and normalise identically:

- ``laion-clap``: the ``laion-clap`` package and its checkpoints (default the music one,
  ``music_audioset_epoch_15_esc_90.14.pt`` with ``amodel='HTSAT-base'``). It needs ``torchvision``, so it runs in
  the ``envs/clap.yaml`` environment. Its traps are avoided, not patched: only ``clap_module`` is imported
  (the package's ``__init__`` imports ``training/data.py``, which parses ``sys.argv`` and downloads three
  tokenizers at import); roberta-base and the checkpoint are read from the model cache and never downloaded
  (``load_ckpt()`` would fetch with wget, the constructor from the hub); the checkpoint is read with
  ``torch.load(weights_only=True)`` (a published one after its sha256 is checked), and the ``position_ids``
  buffer that newer transformers dropped is removed before a strict load; the tokenizer is checked to be
  non-empty.
- ``transformers``: ``ClapModel`` and ``ClapProcessor`` for Hugging Face-format checkpoints
  (e.g. ``laion/larger_clap_music``), in the core environment. A diffusers pipeline repository is read too:
  ``model: ucsd-reach/musicldm`` gives MusicLDM's own CLAP (its ``text_encoder``), the space its generator is
  conditioned in.

Windows are cut to exactly ``window_s × 48 kHz`` samples (at most 480,000 = 10 s), so neither backend's random
10 s crop ever runs and the same input gives the same bytes.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
import sys
from pathlib import Path

import numpy as np

from b2m.data.captions import captions_for, read_captions
from b2m.errors import InputError
from b2m.features.audio import MODEL_INPUT_RMS, window_crops
from b2m.features.registry import CLAP_BACKENDS
from b2m.features.weights import DEFAULT_CACHE, MissingWeightsError, Weights, hub_defaults, torch_device
from b2m.io import file_digest

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
MAX_SAMPLES = 480000
TEXT_LENGTH = 77
LAION_CHECKPOINT = "lukewys/laion_clap/music_audioset_epoch_15_esc_90.14.pt"
LAION_AMODEL = "HTSAT-base"
HF_MODEL = "laion/larger_clap_music"
ROBERTA = Weights("roberta-base")
BACKENDS = CLAP_BACKENDS


def quantise_int16(audio: np.ndarray) -> np.ndarray:
    """The 16-bit round trip laion-clap applies to its input: clip to ±1, scale by 32767, truncate."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (float32)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def checkpoint_weights(checkpoint: str) -> Weights | None:
    """``org/repo/file.pt`` on the hub; None when ``checkpoint`` is a file on disk."""
    if Path(checkpoint).is_file():
        return None
    repo, _, filename = checkpoint.rpartition("/")
    if repo.count("/") != 1:
        raise InputError(checkpoint, "not a checkpoint file, nor a hub file of the form org/repo/file.pt",
                         f"set `checkpoint` to a local .pt file or e.g. {LAION_CHECKPOINT}")
    return Weights(repo, filename)


def backend_weights(backend: str, model: str | None, checkpoint: str | None) -> list[Weights]:
    """What a CLAP backend reads from the model cache."""
    if backend == "laion-clap":
        ckpt = checkpoint_weights(checkpoint or LAION_CHECKPOINT)
        return [ROBERTA] + ([ckpt] if ckpt else [])
    if backend == "transformers":
        return [Weights(model or HF_MODEL)]
    raise InputError(backend, "unknown CLAP backend", f"set `backend` to one of {', '.join(BACKENDS)}")


def import_clap_module():
    """laion-clap's ``clap_module`` package, imported without ``laion_clap/__init__.py``."""
    if "clap_module" in sys.modules:
        return sys.modules["clap_module"]
    spec = importlib.util.find_spec("laion_clap")
    if spec is None:
        raise InputError("laion_clap", "the laion-clap package is not installed in this environment",
                         "run the CLAP rules in envs/clap.yaml (snakemake --sdm conda), `make .venv-clap`, "
                         "or choose `backend: transformers`")
    folder = Path(spec.submodule_search_locations[0]) / "clap_module"
    module_spec = importlib.util.spec_from_file_location("clap_module", folder / "__init__.py",
                                                         submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["clap_module"] = module
    try:
        module_spec.loader.exec_module(module)
    except ImportError as err:
        del sys.modules["clap_module"]
        raise InputError("laion_clap", f"laion-clap cannot be imported here ({err})",
                         "run the CLAP rules in envs/clap.yaml, which has torchvision and torchlibrosa, "
                         "or choose `backend: transformers`") from err
    return module


# sha256 of the published laion-clap checkpoints b2m names (lukewys/laion_clap on the hub); a file of that name
# must match before it is read.
PUBLISHED_SHA256 = {
    "music_audioset_epoch_15_esc_90.14.pt": "fae3e9c087f2909c28a09dc31c8dfcdacbc42ba44c70e972b58c1bd1caf6dedd",
}


def read_checkpoint(path: Path) -> dict:
    """A laion-clap checkpoint's state dict, without the ``module.`` prefix of DDP training.

    A file named as a published checkpoint must have its pinned sha256 (``PUBLISHED_SHA256``). Every checkpoint
    is read with ``weights_only=True``, which allows tensors and, beside them, only NumPy's scalar and dtype
    objects (laion-clap's training metadata holds a NumPy float); one that pickles anything more is refused."""
    import torch

    expected = PUBLISHED_SHA256.get(path.name)
    if expected and path.is_file() and file_digest(path, "sha256") != expected:
        raise InputError(path, f"sha256 differs from the published checkpoint's ({expected[:12]}…)",
                         "fetch it again with b2m fetch-models (a truncated or altered download?)")
    scalar = np._core.multiarray.scalar  # pickled as numpy.core.… by NumPy 1, as numpy._core.… by NumPy 2
    numpy_objects = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Float64DType,
                     np.dtypes.Float32DType]
    try:
        with torch.serialization.safe_globals(numpy_objects):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise InputError(path, f"the checkpoint holds more than tensors ({err})",
                         "use a published checkpoint (b2m fetch-models), or re-save its state_dict alone with "
                         "torch.save") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise InputError(path, f"unreadable checkpoint ({err})",
                         "fetch it again with b2m fetch-models (a truncated download?)") from err
    state = checkpoint.get("state_dict", checkpoint)
    return {key.removeprefix("module."): value for key, value in state.items()}


class LaionClapBackend:
    """CLAP through the laion-clap package: ``embed_audio`` (windows × samples at 48 kHz) and
    ``embed_text`` (strings), each → rows × 512, unit norm."""

    def __init__(self, cache=DEFAULT_CACHE, checkpoint: str | None = None, amodel: str = LAION_AMODEL,
                 device: str = "auto"):
        import torch
        from transformers import RobertaTokenizer

        checkpoint = checkpoint or LAION_CHECKPOINT
        roberta = ROBERTA.local_path(cache)
        hub_file = checkpoint_weights(checkpoint)
        path = hub_file.local_path(cache) if hub_file else Path(checkpoint)
        clap_module = import_clap_module()
        try:
            with hub_defaults(cache):  # the constructor calls RobertaModel.from_pretrained('roberta-base')
                self.model, self.model_cfg = clap_module.create_model(amodel, "roberta", precision="fp32",
                                                                      device=torch.device(device),
                                                                      enable_fusion=False)
        except OSError as err:
            raise MissingWeightsError(ROBERTA, cache) from err
        state = read_checkpoint(path)
        expected = self.model.state_dict()
        dropped = [key for key in state if key not in expected and key.endswith("position_ids")]
        for key in dropped:
            del state[key]
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise InputError(path, f"checkpoint does not fit amodel={amodel!r} without fusion ({err})",
                             "set `amodel` to the checkpoint's audio model (HTSAT-base for the music "
                             "checkpoints, HTSAT-tiny for 630k-*) and use a non-fusion checkpoint") from err
        self.model.eval()
        self.tokenizer = RobertaTokenizer.from_pretrained(roberta)
        if len(self.tokenizer) == 0:
            raise MissingWeightsError(ROBERTA, cache)
        self.device = device
        self.dim = self.model.audio_projection[-1].out_features

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        import torch

        waveform = torch.from_numpy(windows).to(self.device)
        rows = [{"waveform": wave, "longer": torch.tensor([False])} for wave in waveform]
        with torch.inference_mode():
            return self.model.get_audio_embedding(rows).cpu().numpy()

    def embed_text(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(texts, padding="max_length", truncation=True, max_length=TEXT_LENGTH,
                                return_tensors="pt")
        with torch.inference_mode():
            return self.model.get_text_embedding({k: v.to(self.device) for k, v in tokens.items()}).cpu().numpy()


class TransformersClapBackend:
    """CLAP through transformers' ``ClapModel`` (Hugging Face-format checkpoints); same interface as
    ``LaionClapBackend``."""

    def __init__(self, cache=DEFAULT_CACHE, model: str | None = None, device: str = "auto"):
        from transformers import ClapModel, ClapProcessor

        weights = Weights(model or HF_MODEL)
        folder = weights.local_path(cache)
        try:
            if (folder / "text_encoder" / "config.json").exists():  # a diffusers pipeline's CLAP (MusicLDM)
                from transformers import AutoTokenizer, ClapFeatureExtractor

                self.model = ClapModel.from_pretrained(folder / "text_encoder").to(device).eval()
                self.processor = ClapProcessor(ClapFeatureExtractor.from_pretrained(folder / "feature_extractor"),
                                               AutoTokenizer.from_pretrained(folder / "tokenizer"))
            else:
                self.model = ClapModel.from_pretrained(folder).to(device).eval()
                self.processor = ClapProcessor.from_pretrained(folder)
        except OSError as err:
            raise MissingWeightsError(weights, cache) from err
        self.device = device
        self.dim = self.model.config.projection_dim

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        import torch

        truncation = "fusion" if self.model.config.audio_config.enable_fusion else "rand_trunc"
        inputs = self.processor.feature_extractor(list(windows), sampling_rate=SAMPLE_RATE, truncation=truncation,
                                                  padding="repeatpad", return_tensors="pt")
        with torch.inference_mode():
            output = self.model.get_audio_features(**{k: v.to(self.device) for k, v in inputs.items()})
        return output.pooler_output.cpu().numpy()

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return clap_text_features(self.model, self.processor.tokenizer, texts, self.device)


def clap_text_features(model, tokenizer, texts: list[str], device: str) -> np.ndarray:
    """A transformers ``ClapModel``'s text embeddings (texts × projection dim, not normalised), each text
    padded to the 77 tokens laion-clap uses."""
    import torch

    tokens = tokenizer(texts, padding="max_length", truncation=True, max_length=TEXT_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        output = model.get_text_features(**{k: v.to(device) for k, v in tokens.items()})
    return output.pooler_output.cpu().numpy()


def make_backend(backend: str = "laion-clap", cache=DEFAULT_CACHE, model: str | None = None,
                 checkpoint: str | None = None, amodel: str | None = None, device: str = "auto"):
    backend_weights(backend, model, checkpoint)
    device = torch_device(device)
    log.info("CLAP through %s on %s", backend, device)
    if backend == "laion-clap":
        return LaionClapBackend(cache, checkpoint, amodel or LAION_AMODEL, device)
    return TransformersClapBackend(cache, model, device)


class ClapAudioExtractor:
    """CLAP audio embedding of each window (the MuLan-music analogue): windows × 512, unit norm."""

    name = "clap-audio"
    input = "audio"
    sample_rate = SAMPLE_RATE

    def __init__(self, window: float = 10.0, stride: float = 1.5, batch_size: int = 8, **backend_options):
        if round(window * SAMPLE_RATE) > MAX_SAMPLES:
            raise InputError(f"window_s={window}", "CLAP sees at most 10 s; a longer window would be cropped at "
                             "random", "set the clap-audio window_s to 10 or less")
        self.window, self.stride, self.batch_size = window, stride, batch_size
        self.backend = make_backend(**backend_options)
        self.dim = self.backend.dim

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Windows × dim for the windows starting at ``starts`` (s) of one excerpt (at 48 kHz)."""
        crops = quantise_int16(window_crops(audio * MODEL_INPUT_RMS, self.sample_rate, starts, self.window))
        batches = [self.backend.embed_audio(crops[i:i + self.batch_size])
                   for i in range(0, len(crops), self.batch_size)]
        return l2_normalise(np.concatenate(batches))


class ClapTextExtractor:
    """CLAP text embedding of each clip's caption (the MuLan-text analogue): one unit vector per clip,
    repeated over the clip's windows."""

    name = "clap-text"
    input = "clip"

    def __init__(self, window: float = 1.5, stride: float = 1.5, captions=None, batch_size: int = 32,
                 **backend_options):
        if captions is None:
            raise InputError("captions", "clap-text needs the clips' captions",
                             "set dataset.captions in the config (brain2music-captions.csv)")
        self.window, self.stride, self.batch_size = window, stride, batch_size
        self.captions_path = Path(captions)
        read_captions(captions)  # a malformed file fails before the model loads
        self.backend = make_backend(**backend_options)
        self.dim = self.backend.dim

    def embed_clips(self, clips) -> np.ndarray:
        """Clips × dim for the rows of ``clips`` (the stimulus table)."""
        texts = captions_for(self.captions_path, clips.clip_id)
        batches = [self.backend.embed_text(texts[i:i + self.batch_size])
                   for i in range(0, len(texts), self.batch_size)]
        return l2_normalise(np.concatenate(batches))
