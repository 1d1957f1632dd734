"""Audio to listen to: each test clip's original excerpt beside its reconstructions, as FLAC files.

Originals are the excerpt as presented (start..end with the 2 s fades), at most its first ``seconds`` (a
stimulus minutes long is heard as long as a retrieved track); retrieved tracks are the opening that was
indexed. Every file is peak-normalised to -1 dBFS, 16-bit, at its source's own rate, and written
under a temporary name first.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import soundfile as sf

from b2m.features.audio import excerpt, load_audio, stimulus_path
from b2m.io import atomic_path
from b2m.layout import AudioFiles

PEAK = 10 ** (-1 / 20)


def write_flac(path, audio: np.ndarray, rate: int) -> None:
    """Mono ``audio`` peak-normalised to -1 dBFS, as 16-bit FLAC."""
    audio = np.asarray(audio, dtype=np.float64)
    peak = np.abs(audio).max()
    with atomic_path(path) as tmp:
        sf.write(tmp, audio / peak * PEAK if peak > 0 else audio, rate, subtype="PCM_16", format="FLAC")


def opening(path, seconds: float, offset: float = 0.0) -> tuple[np.ndarray, int]:
    """``seconds`` of a track from ``offset`` (or less, when it is shorter), faded as the index saw it."""
    audio, rate = load_audio(path)
    end = min(offset + seconds, len(audio) / rate)
    return excerpt(audio, rate, offset, end, path), rate


LISTING_COLUMNS = ["clip_id", "label", "role", "rank", "track_id", "track_genre", "similarity", "file"]


def write_original(path, clip, stimuli_dir, seconds: float) -> None:
    """The excerpt of ``clip`` (a stimulus table row: path, start, end) as presented, at most its first
    ``seconds``, as FLAC."""
    stimulus = stimulus_path(stimuli_dir, clip["path"])
    audio, rate = load_audio(stimulus)
    start, end = clip["start"], min(clip["end"], clip["start"] + seconds)
    write_flac(path, excerpt(audio, rate, start, end, stimulus), rate)


def write_retrieval_audio(neighbours: pd.DataFrame, clips: pd.DataFrame, stimuli_dir, out_dir, model: str,
                          top: int, seconds: float, offset: float = 0.0) -> pd.DataFrame:
    """``<out>/<clip>/original.flac`` (the first ``seconds`` of the excerpt as presented) and ``top<r>.flac``
    (r ≤ ``top``; the ``seconds`` from ``offset`` that were indexed) for ``model``'s neighbours; ``clips``: the
    stimulus table (clip_id, path under ``stimuli_dir``, start, end, label). Returns the listing
    (LISTING_COLUMNS; ``file`` relative to ``out``)."""
    audio_files = AudioFiles(out_dir)
    chosen = neighbours[(neighbours.model == model) & (neighbours["rank"] <= top)]
    info = clips.set_index("clip_id")
    rows = []
    for clip_id, hits in chosen.groupby("clip_id", sort=False):
        clip = info.loc[clip_id]
        write_original(audio_files.clip_file(clip_id, "original.flac"), clip, stimuli_dir, seconds)
        rows.append((clip_id, clip["label"], "original", 0, clip_id, "", 1.0,
                     audio_files.relative(clip_id, "original.flac")))
        for hit in hits.itertuples():
            write_flac(audio_files.clip_file(clip_id, f"top{hit.rank}.flac"), *opening(hit.path, seconds, offset))
            rows.append((clip_id, hit.label, "retrieved", hit.rank, hit.track_id, hit.track_genre, hit.similarity,
                         audio_files.relative(clip_id, f"top{hit.rank}.flac")))
    return pd.DataFrame(rows, columns=LISTING_COLUMNS)
