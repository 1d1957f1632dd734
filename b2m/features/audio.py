"""Stimulus audio: load a stimulus file, cut the excerpt the participants heard, resample.

An excerpt ``start``..``end`` (s) of the file is taken with a 2 s linear fade-in and fade-out and RMS-normalised (as
ds003720 presented its 15 s excerpts of 30 s GTZAN clips).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from b2m.errors import InputError
from b2m.io import regular_file

AUDIO_SUFFIXES = (".wav", ".au", ".flac", ".ogg", ".mp3")
AUDIO_FIX = "replace the file with an intact copy of the clip"
FADE_SECONDS = 2.0
# Neural extractors take the excerpt at -20 dBFS RMS: unit RMS would clip at ±1 (laion-clap quantises to int16).
MODEL_INPUT_RMS = 0.1


def stimulus_path(stimuli_dir, relative: str) -> Path:
    """The audio file of a stimulus, ``relative`` to the stimulus folder as the design names it (with its suffix,
    or without one: then the first of ``AUDIO_SUFFIXES`` that exists)."""
    given = Path(stimuli_dir) / relative
    candidates = [given] if given.suffix.lower() in AUDIO_SUFFIXES else []
    candidates += [given.with_name(given.name + suffix) for suffix in AUDIO_SUFFIXES]
    for path in candidates:
        if path.exists():
            return path
    raise InputError(candidates[0], f"no audio file for stimulus {relative}",
                     "point `dataset.stimuli` in the config to the folder the events' stimulus names are relative "
                     "to (BIDS: the dataset's stimuli/ folder), or fix `design.stimulus`")


def load_audio(path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the sample rate (Hz), from a regular, non-empty audio file (a FIFO or device is
    never opened)."""
    path = regular_file(path, "audio file", AUDIO_FIX)
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise InputError(path, f"unreadable audio ({err})", AUDIO_FIX) from err
    if len(audio) == 0:
        raise InputError(path, "audio file holds no samples", AUDIO_FIX)
    return audio.mean(axis=1), int(sr)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) from ``rate_in`` to ``rate_out`` Hz; deterministic."""
    if rate_in == rate_out:
        return audio
    return soxr.resample(np.asarray(audio, dtype=np.float32), rate_in, rate_out, quality="HQ")


def excerpt(audio: np.ndarray, sr: int, start: float, end: float, path="<audio>",
            fade: float = FADE_SECONDS) -> np.ndarray:
    """The presented excerpt: samples ``start``..``end`` (s) with linear fades and unit RMS."""
    a, b = int(round(start * sr)), int(round(end * sr))
    if b > len(audio) + 1:  # one sample of rounding slack
        raise InputError(path, f"excerpt {start:g}-{end:g} s runs past the end of the {len(audio) / sr:.2f} s audio",
                         "check the clip file (a truncated copy?) and the events' start/end columns")
    piece = np.asarray(audio[a:b], dtype=np.float64)
    t = np.arange(len(piece)) / sr
    piece *= np.clip(np.minimum(t, (len(piece) / sr) - t) / fade, 0.0, 1.0)
    rms = np.sqrt(np.mean(piece ** 2))
    if rms == 0:
        raise silent_excerpt(path, start, end)
    return (piece / rms).astype(np.float32)


def silent_excerpt(path, start: float, end: float) -> InputError:
    """The error of a stimulus excerpt (``start``..``end`` s of ``path``) that holds no sound."""
    return InputError(path, f"excerpt {start:g}-{end:g} s is silent", AUDIO_FIX)


def load_excerpt(stimuli_dir, relative: str, start: float, end: float, rate: int) -> np.ndarray:
    """Find, load, cut and resample one stimulus's excerpt to ``rate`` Hz (``relative``: its file as the design
    names it)."""
    path = stimulus_path(stimuli_dir, relative)
    audio, sr = load_audio(path)
    return resample(excerpt(audio, sr, start, end, path), sr, rate)


def window_crops(audio: np.ndarray, rate: int, starts, window: float) -> np.ndarray:
    """Windows × samples: the ``window`` s of ``audio`` (at ``rate`` Hz) from each start (s), each exactly
    ``round(window * rate)`` samples, zero-padded where the excerpt ends a sample early by rounding."""
    width = int(round(window * rate))
    crops = np.zeros((len(starts), width), dtype=np.float32)
    for row, start in enumerate(starts):
        piece = audio[int(round(start * rate)):][:width]
        crops[row, :len(piece)] = piece
    return crops
