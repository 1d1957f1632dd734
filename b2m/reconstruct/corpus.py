"""A music corpus to retrieve from, and its index: one vector per track, embedded with the decoder's target
extractor, plus a metadata table.

Layouts (``list_tracks``):

- ``gtzan``: ``<genre>/<genre>.<nnnnn>.wav|.au|.flac``; the track id is the file stem (``rock.00012``, the
  stimuli's clip ids, so a corpus that holds the stimuli can leave each query's own clip out) and the genre
  the folder.
- ``fma``: ``fma_large/000/000002.mp3`` with FMA's ``tracks.csv`` (two header rows; ``track.genre_top``);
  the track id is the number (``fma-2``), the genre the top genre (empty where FMA gives none).
- ``folder``: any audio file under the root; the track id is the path without suffix; no labels.

``index_corpus`` embeds the first ``seconds`` (15 s, as the paper) of each track with the extractor's
windows and averages them, exactly as a stimulus clip's windows are averaged for clip-level decoding. It
works in chunks written atomically under ``<out>/chunks``, so a rerun resumes where a stopped one ended (a
chunk is reused only for the same tracks, extractor, model options and excerpt);
a track that cannot be read is skipped with its reason logged and listed in ``skipped.tsv``, never silently.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.data.events import window_starts
from b2m.errors import InputError
from b2m.features.audio import excerpt, load_audio, resample
from b2m.io import atomic_path, load_npy, read_parquet_provenance, write_npy, write_parquet
from b2m.layout import CorpusFiles
from b2m.options import CorpusOptions, ExcerptOptions

# The extractor options that change a corpus vector (batch size and device do not): a finished chunk embedded
# with other values is not reused. Unset ones are None, as in the chunks indexed before b2m 0.1's option objects.
FINGERPRINT_KEYS = ("backend", "model", "checkpoint", "amodel", "layer")

log = logging.getLogger(__name__)

LAYOUTS = ("gtzan", "fma", "folder")
CORPUS_SUFFIXES = (".wav", ".au", ".flac", ".mp3", ".ogg")
TRACK_COLUMNS = ["track_id", "source", "path", "genre"]


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in CORPUS_SUFFIXES and not p.name.startswith("."))


def fma_genres(tracks_csv) -> pd.Series:
    """FMA's ``tracks.csv`` → top genre by integer track id (NaN → empty string)."""
    path = Path(tracks_csv)
    try:
        table = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
        genres = table[("track", "genre_top")]
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"not FMA's tracks.csv ({type(err).__name__}: {err})",
                         "point `tracks_csv` to fma_metadata/tracks.csv (two header rows, track.genre_top)") from err
    genres.index = genres.index.astype(int)
    return genres.fillna("").astype(str)


def list_tracks(root, layout: str, tracks_csv=None, source: str = "") -> pd.DataFrame:
    """The tracks of one corpus folder: track_id, source, path (absolute), genre ('' when unknown)."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise InputError(root, f"unknown corpus layout {layout!r}", f"use one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise InputError(root, "corpus folder does not exist", "fix the corpus `path` in the config")
    files = _audio_files(root)
    if layout == "gtzan":
        rows = [(p.stem, str(p), p.parent.name) for p in files if p.stem.split(".")[0] == p.parent.name]
    elif layout == "fma":
        if tracks_csv is None:
            raise InputError(root, "the fma layout needs FMA's tracks.csv for the genres",
                             "set `tracks_csv` of this corpus source (fma_metadata/tracks.csv)")
        genres = fma_genres(tracks_csv)
        rows = [(f"fma-{int(p.stem)}", str(p), genres.get(int(p.stem), "")) for p in files if p.stem.isdigit()]
    else:
        rows = [(str(p.relative_to(root).with_suffix("")), str(p), "") for p in files]
    if not rows:
        raise InputError(root, f"no audio files in the {layout} layout under this folder",
                         "check the corpus `path` and `layout` in the config")
    if len(rows) < len(files):
        log.warning("%s: %d audio files do not follow the %s layout and are left out (e.g. %s)", root,
                    len(files) - len(rows), layout, next(p for p in files if str(p) not in {r[1] for r in rows}))
    table = pd.DataFrame(rows, columns=["track_id", "path", "genre"]).assign(source=source or root.name)
    return table[TRACK_COLUMNS]


def corpus_tracks(sources: list[dict]) -> pd.DataFrame:
    """Every source's tracks, in order; a track id in two sources is an error (ids must be unique)."""
    table = pd.concat([list_tracks(s["path"], s.get("layout", "folder"), s.get("tracks_csv"), s.get("name", ""))
                       for s in sources], ignore_index=True)
    duplicated = table.track_id[table.track_id.duplicated()]
    if len(duplicated):
        raise InputError(table.path[table.track_id.duplicated()].iloc[0],
                         f"{len(duplicated)} track ids appear twice in the corpus (e.g. {duplicated.iloc[0]})",
                         "list each folder once in the corpus sources")
    return table


def embed_track(path, extractor, seconds: float, offset: float = 0.0) -> np.ndarray:
    """Mean over the extractor's windows of ``seconds`` of the track from ``offset`` (dim,); the excerpt is
    faded and normalised as the stimuli were. Raises ``InputError`` for an unreadable or too-short track."""
    audio, sr = load_audio(path)
    length = min(seconds, len(audio) / sr - offset)
    if length < extractor.window:
        raise InputError(path, f"{len(audio) / sr:.2f} s of audio: shorter than one {extractor.window:g} s window "
                         f"after the {offset:g} s offset", "drop the track or lower `offset_s`")
    piece = resample(excerpt(audio, sr, offset, offset + length, path), sr, extractor.sample_rate)
    return extractor.embed(piece, window_starts(extractor.window, extractor.stride, length)).mean(axis=0)


def _chunk_done(chunk_dir: Path, number: int, track_ids: list[str], fingerprint: dict) -> bool:
    """A finished chunk of the same tracks, embedded with the same extractor and settings."""
    table_path = chunk_dir / f"{number:06d}.parquet"
    if not (table_path.exists() and (chunk_dir / f"{number:06d}.npy").exists()):
        return False
    same_work = read_parquet_provenance(table_path).get("params", {}).get("fingerprint") == fingerprint
    return same_work and pd.read_parquet(table_path, columns=["track_id"]).track_id.tolist() == track_ids


def index_corpus(tracks: pd.DataFrame, extractor, out_dir, seconds: float = ExcerptOptions.seconds,
                 offset: float = ExcerptOptions.offset_s, chunk_tracks: int = CorpusOptions.chunk_tracks,
                 params: dict | None = None,
                 model_options: dict | None = None) -> dict:
    """Embed every track (resuming from finished chunks) and write ``vectors.npy`` (indexed tracks × dim,
    float32), ``tracks.parquet`` (one row per vector, in order) and ``skipped.tsv`` (track_id, path, reason).
    ``model_options`` (the extractor's options, ``ExtractorOptions.model_options()``) are part of what makes a
    finished chunk reusable."""
    if extractor.input != "audio":
        raise InputError(extractor.name, "a corpus is indexed from audio; this extractor embeds clip labels or "
                         "captions", "index the corpus with an audio extractor (acoustic, clap-audio, w2v-bert, mert)")
    files, params = CorpusFiles(out_dir), params or {}
    chunk_dir = files.chunks
    # What makes a chunk reusable: the extractor, its options and the excerpt.
    fingerprint = json.loads(json.dumps({"extractor": extractor.name, "dim": extractor.dim, "window": extractor.window,
                                         "stride": extractor.stride, "seconds": seconds, "offset": offset,
                                         **{k: (model_options or {}).get(k) for k in FINGERPRINT_KEYS}},
                                        default=str))
    began, n_chunks = time.perf_counter(), -(-len(tracks) // chunk_tracks)
    for number in range(n_chunks):
        chunk = tracks.iloc[number * chunk_tracks:(number + 1) * chunk_tracks]
        if _chunk_done(chunk_dir, number, chunk.track_id.tolist(), fingerprint):
            log.info("chunk %d/%d already indexed: resumed", number + 1, n_chunks)
            continue
        vectors, reasons = np.zeros((len(chunk), extractor.dim), dtype=np.float32), []
        for row, track in enumerate(chunk.itertuples()):
            try:
                vectors[row] = embed_track(track.path, extractor, seconds, offset)
                reasons.append("")
            except InputError as err:
                log.warning("skipped %s: %s", track.track_id, err.problem)
                reasons.append(err.problem)
        write_npy(chunk_dir / f"{number:06d}.npy", vectors, params)
        write_parquet(chunk_dir / f"{number:06d}.parquet", chunk.assign(skipped=reasons),
                      {**params, "fingerprint": fingerprint})
        done = min((number + 1) * chunk_tracks, len(tracks))
        elapsed = time.perf_counter() - began
        log.info("%s: %d/%d tracks indexed (%.1f s)", extractor.name, done, len(tracks), elapsed)
    vectors = np.concatenate([load_npy(chunk_dir / f"{n:06d}.npy") for n in range(n_chunks)])
    table = pd.concat([pd.read_parquet(chunk_dir / f"{n:06d}.parquet") for n in range(n_chunks)], ignore_index=True)
    kept = (table.skipped == "").to_numpy()
    skipped = table.loc[~kept, ["track_id", "path", "skipped"]].rename(columns={"skipped": "reason"})
    with atomic_path(files.skipped) as tmp:
        skipped.to_csv(tmp, sep="\t", index=False)
    write_npy(files.vectors, vectors[kept], {**params, "dim": extractor.dim})
    write_parquet(files.tracks, table.loc[kept, TRACK_COLUMNS].reset_index(drop=True), params)
    log.info("corpus index: %d tracks, %d skipped (listed in %s)", int(kept.sum()), len(skipped), files.skipped)
    return {"n_tracks": int(kept.sum()), "n_skipped": len(skipped), "dim": extractor.dim}


def read_index(index_dir) -> tuple[np.ndarray, pd.DataFrame]:
    """Corpus vectors (tracks × dim) and their track table, as ``index_corpus`` wrote them."""
    files = CorpusFiles(index_dir)
    vectors, tracks = load_npy(files.vectors), pd.read_parquet(files.tracks)
    if len(vectors) != len(tracks):
        raise InputError(files.path, f"{len(vectors)} vectors but {len(tracks)} track rows",
                         "rebuild the corpus index (delete the folder and rerun b2m index)")
    return vectors, tracks
