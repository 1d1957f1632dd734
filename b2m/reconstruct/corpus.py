"""A music corpus to retrieve from, and its index: one vector per track, embedded with the decoder's target
extractor, plus a metadata table.

Layouts (``list_tracks``):

- ``gtzan``: ``<genre>/<genre>.<nnnnn>.wav|.au|.flac``; the track id is the file stem (``rock.00012``, the
  stimuli's clip ids, so a corpus that holds the stimuli can leave each query's own clip out) and the genre
  the folder.
- ``fma``: ``fma_large/000/000002.mp3`` with FMA's ``tracks.csv`` (two header rows; ``track.genre_top``);
  the track id is the number (``fma-2``), the genre the top genre (empty where FMA gives none).
- ``folder``: any audio file under the root; the track id is its path under the root without suffix (a stimulus
  directly in a study's stimuli folder keeps its clip id; one in a subfolder is found as its clip's duplicate by
  b2m.reconstruct.duplicates); no classes.

The index embeds the first ``seconds`` (15 s, as the paper) of each track with the extractor's windows and
averages them, exactly as a stimulus clip's windows are averaged for clip-level decoding. It is made in
chunks, each a job of its own: a track's chunk is a hash of its id (``chunk_of``), so adding, removing or
changing a track remakes its own chunk only. A chunk takes each track's vector from a content-addressed
cache (``VectorCache``: the sha256 of the track's bytes and the extractor's settings) where any run, config
or study embedded the same audio the same way before, so a remade chunk embeds only the tracks that changed,
and a stopped chunk resumes. ``gather_index`` joins the chunks in the listing's order. A track that cannot
be read is skipped with its reason logged and listed in ``skipped.tsv``, never silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from b2m import __version__
from b2m.data.design import window_starts
from b2m.errors import InputError
from b2m.features.audio import excerpt, load_audio, resample
from b2m.io import (WriteOnly, atomic_path, file_digest, load_npy, npy_shape, regular_file, write_npy,
                    write_parquet)
from b2m.layout import CorpusChunkFiles, CorpusFiles
from b2m.options import ExcerptOptions

# The extractor options that do not change a corpus vector (the device is keyed as the extractor resolved it).
VECTOR_NEUTRAL_OPTIONS = ("batch_size", "device")

log = logging.getLogger(__name__)

LAYOUTS = ("gtzan", "fma", "folder")
CORPUS_SUFFIXES = (".wav", ".au", ".flac", ".mp3", ".ogg")
TRACK_COLUMNS = ["track_id", "source", "path", "genre"]
CHUNK_COLUMNS = ["track_id", "source", "path", "sha256"]
PROGRESS_TRACKS = 64  # a chunk job logs its progress every this many tracks


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in CORPUS_SUFFIXES and not p.name.startswith("."))


def fma_genres(tracks_csv) -> pd.Series:
    """FMA's ``tracks.csv`` → top genre by integer track id (NaN → empty string)."""
    fix = "point `tracks_csv` to fma_metadata/tracks.csv (two header rows, track.genre_top)"
    path = regular_file(tracks_csv, "FMA tracks.csv", fix)
    try:
        table = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
        genres = table[("track", "genre_top")]
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"not FMA's tracks.csv ({type(err).__name__}: {err})", fix) from err
    genres.index = genres.index.astype(int)
    return genres.fillna("").astype(str)


def list_track_files(root, layout: str, source: str = "") -> pd.DataFrame:
    """The tracks of one corpus folder as its layout names them, without reading any audio or label file:
    track_id, source, path (absolute), genre (the folder in the gtzan layout, else '')."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise InputError(root, f"unknown corpus layout {layout!r}", f"use one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise InputError(root, "corpus folder does not exist", "fix the corpus `path` in the config")
    files = _audio_files(root)
    if layout == "gtzan":
        rows = [(p.stem, str(p), p.parent.name) for p in files if p.stem.split(".")[0] == p.parent.name]
    elif layout == "fma":
        rows = [(f"fma-{int(p.stem)}", str(p), "") for p in files if p.stem.isdigit()]
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


def list_tracks(root, layout: str, tracks_csv=None, source: str = "") -> pd.DataFrame:
    """``list_track_files`` with the fma layout's genres from FMA's ``tracks.csv`` (empty where FMA gives none)."""
    table = list_track_files(root, layout, source)
    if layout != "fma":
        return table
    if tracks_csv is None:
        raise InputError(root, "the fma layout needs FMA's tracks.csv for the genres",
                         "set `tracks_csv` of this corpus source (fma_metadata/tracks.csv)")
    numbers = table.track_id.str.removeprefix("fma-").astype(int)
    return table.assign(genre=fma_genres(tracks_csv).reindex(numbers).fillna("").to_numpy())


def _unique_ids(table: pd.DataFrame) -> pd.DataFrame:
    """``table``, refused when a track id appears twice (ids must be unique)."""
    duplicated = table.track_id[table.track_id.duplicated()]
    if len(duplicated):
        raise InputError(table.path[table.track_id.duplicated()].iloc[0],
                         f"{len(duplicated)} track ids appear twice in the corpus (e.g. {duplicated.iloc[0]})",
                         "list each folder once in the corpus sources, and keep one file of each name in a "
                         "`folder` source (its ids are the paths without suffix: x.wav and x.mp3 are both x) and "
                         "across sources")
    return table


def corpus_track_files(sources: list[dict]) -> pd.DataFrame:
    """Every source's tracks (``list_track_files``), in order: what a plan and a chunk job list."""
    return _unique_ids(pd.concat([list_track_files(s["path"], s.get("layout", "folder"), s.get("name", ""))
                                  for s in sources], ignore_index=True))


def corpus_tracks(sources: list[dict]) -> pd.DataFrame:
    """Every source's tracks with their labels (``list_tracks``), in order: the index's track table."""
    return _unique_ids(pd.concat([list_tracks(s["path"], s.get("layout", "folder"), s.get("tracks_csv"),
                                              s.get("name", "")) for s in sources], ignore_index=True))


def embed_track(path, extractor, seconds: float, offset: float = 0.0) -> np.ndarray:
    """Mean over the extractor's windows of ``seconds`` of the track from ``offset`` (dim,) (``track_windows``)."""
    return track_windows(path, extractor, seconds, offset).mean(axis=0)


def track_windows(path, extractor, seconds: float, offset: float = 0.0, n_windows: int | None = None) -> np.ndarray:
    """The extractor's window embeddings (windows × dim) of ``seconds`` of the track from ``offset``, on its window
    grid (the first ``n_windows`` of it: a clip's windows, where they fit); the excerpt is faded and normalised as
    the stimuli were. Raises ``InputError`` for an unreadable or too-short track."""
    audio, sr = load_audio(path)
    length = min(seconds, len(audio) / sr - offset)
    if length < extractor.window:
        raise InputError(path, f"{len(audio) / sr:.2f} s of audio: shorter than one {extractor.window:g} s window "
                         f"after the {offset:g} s offset", "drop the track or lower `offset_s`")
    piece = resample(excerpt(audio, sr, offset, offset + length, path), sr, extractor.sample_rate)
    return extractor.embed(piece, window_starts(extractor.window, extractor.stride, length)[:n_windows])


def chunk_of(track_ids, n_chunks: int) -> np.ndarray:
    """The chunk of each track id (0 .. n_chunks - 1), from a hash of the id alone: a track added or removed
    changes its own chunk only, whatever its place in the listing."""
    return np.array([int.from_bytes(hashlib.sha256(str(t).encode()).digest()[:8], "big") % n_chunks
                     for t in track_ids], dtype=np.int64)


def chunk_listing(tracks: pd.DataFrame, chunk: int, n_chunks: int) -> pd.DataFrame:
    """The rows of ``tracks`` in chunk ``chunk`` of ``n_chunks``, in listing order, with the sha256 of each
    track's bytes (``track_digest``): the chunk's listing (CHUNK_COLUMNS)."""
    mine = tracks[chunk_of(tracks.track_id, n_chunks) == chunk].reset_index(drop=True)
    return mine.assign(sha256=[track_digest(path) for path in mine.path])[CHUNK_COLUMNS]


def extractor_fingerprint(extractor, seconds: float, offset: float, model_options: dict | None = None,
                          weights: tuple[str, ...] = ()) -> dict:
    """What makes a corpus vector: b2m's version, the extractor and every option set that changes its output, the
    device it runs on, its weights (``weights``: their snapshot paths in the model cache, which name the revision),
    its windows and the excerpt."""
    options = {k: v for k, v in (model_options or {}).items() if k not in VECTOR_NEUTRAL_OPTIONS}
    return json.loads(json.dumps({"b2m": __version__, "extractor": extractor.name, "dim": extractor.dim,
                                  "window": extractor.window, "stride": extractor.stride, "seconds": seconds,
                                  "offset": offset, "device": str(getattr(extractor, "device", "cpu")),
                                  "weights": list(weights), **options}, default=str, sort_keys=True))


class VectorCache:
    """Corpus vectors kept across runs, configs and studies, content-addressed: ``<root>/<extractor key>/<aa>/
    <sha256 of the track's bytes>.npy`` (dim,) float32. The extractor key digests ``extractor_fingerprint``
    (written beside the entries as ``fingerprint.json``), so a changed track or setting finds no entry and is
    embedded again, alone. A track that could not be embedded is not kept: its reason may be the machine's (a
    decoder missing, a passing read error), so it is tried again."""

    def __init__(self, root, fingerprint: dict):
        text = json.dumps(fingerprint, sort_keys=True)
        self.folder = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:16]
        if not (self.folder / "fingerprint.json").exists():
            with atomic_path(self.folder / "fingerprint.json") as tmp:
                tmp.write_text(text + "\n")

    def _entry(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        """The vector (dim,) of the audio whose sha256 is ``digest``, where it was embedded before."""
        return load_npy(self._entry(digest)) if self._entry(digest).exists() else None

    def put(self, digest: str, vector: np.ndarray) -> None:
        with atomic_path(self._entry(digest)) as tmp, open(tmp, "wb") as stream:
            np.save(WriteOnly(stream), vector.astype(np.float32), allow_pickle=False)


def _require_audio_extractor(extractor) -> None:
    if extractor.input != "audio":
        raise InputError(extractor.name, "a corpus is indexed from audio; this extractor embeds clip labels or "
                         "captions", "index the corpus with an audio extractor (acoustic, clap-audio, w2v-bert, mert)")


def index_chunk(tracks: pd.DataFrame, extractor, out: CorpusChunkFiles, cache: VectorCache,
                seconds: float = ExcerptOptions.seconds, offset: float = ExcerptOptions.offset_s,
                params: dict | None = None) -> dict:
    """Embed one chunk's tracks (its listing, ``chunk_listing``), each taken from ``cache`` where its audio (its
    sha256) was embedded with the same settings before, and write ``out``: ``vectors.npy`` (tracks × dim float32,
    zeros where skipped) and ``tracks.parquet`` (the listing with why a track was skipped, '' if it was not)."""
    _require_audio_extractor(extractor)
    vectors = np.zeros((len(tracks), extractor.dim), dtype=np.float32)
    reasons, embedded, began = [], 0, time.perf_counter()
    for row, track in enumerate(tracks.itertuples()):
        vector, reason = cache.get(track.sha256), ""
        if vector is None:
            vector, reason = _embed_or_reason(track, extractor, seconds, offset)
            if vector is not None:
                cache.put(track.sha256, vector)
                embedded += 1
        if vector is not None:
            vectors[row] = vector
        reasons.append(reason)
        if (row + 1) % PROGRESS_TRACKS == 0:
            log.info("%s: %d/%d tracks (%d embedded, %.1f s)", extractor.name, row + 1, len(tracks), embedded,
                     time.perf_counter() - began)
    write_npy(out.vectors, vectors, params or {})
    write_parquet(out.tracks, tracks[CHUNK_COLUMNS].assign(skipped=reasons), params or {})
    skipped = sum(map(bool, reasons))
    log.info("chunk: %d tracks, %d embedded, %d from the cache, %d skipped (%.1f s)", len(tracks), embedded,
             len(tracks) - embedded - skipped, skipped, time.perf_counter() - began)
    return {"n_tracks": len(tracks), "n_embedded": embedded, "n_skipped": skipped}


def track_digest(path) -> str:
    """sha256 of a track's bytes. A file that is not a regular, non-empty file (never opened: a FIFO would block)
    or cannot be read gets a digest of its path instead, so that it is skipped with its reason, not fatal."""
    try:
        return file_digest(regular_file(path, "corpus track", "drop or replace the track"), "sha256")
    except (InputError, OSError):
        return hashlib.sha256(f"unreadable:{path}".encode()).hexdigest()


def _embed_or_reason(track, extractor, seconds: float, offset: float) -> tuple[np.ndarray | None, str]:
    try:
        return embed_track(track.path, extractor, seconds, offset), ""
    except InputError as err:
        log.warning("skipped %s: %s", track.track_id, err.problem)
        return None, err.problem


def gather_index(tracks: pd.DataFrame, chunk_folders: list[CorpusChunkFiles], out_dir,
                 params: dict | None = None) -> dict:
    """Join the chunks into the index of ``tracks`` (the whole listing, with labels), in its order: write
    ``vectors.npy`` (indexed tracks × dim, float32), ``tracks.parquet`` (one row per vector) and ``skipped.tsv``
    (track_id, path, reason). A listed track missing from its chunk (the corpus changed since the chunk was
    made) is an error."""
    files, params = CorpusFiles(out_dir), params or {}
    tables = [pd.read_parquet(folder.tracks).assign(chunk=n) for n, folder in enumerate(chunk_folders)]
    made = pd.concat(tables, ignore_index=True).assign(row=np.concatenate([np.arange(len(t)) for t in tables]))
    found = made.set_index("track_id").reindex(tracks.track_id)
    if found.chunk.isna().any():
        missing = found.index[found.chunk.isna()]
        raise InputError(tracks.path[tracks.track_id == missing[0]].iloc[0],
                         f"{len(missing)} corpus tracks are in no chunk of the index (e.g. {missing[0]}): the "
                         "corpus changed after its chunks were made", "rerun the workflow (it reindexes the "
                         "changed chunks)")
    dim = npy_shape(chunk_folders[0].vectors)[1]
    vectors = np.zeros((len(tracks), dim), dtype=np.float32)
    for n, folder in enumerate(chunk_folders):
        here = (found.chunk == n).to_numpy()
        vectors[here] = load_npy(folder.vectors)[found.row[here].astype(int).to_numpy()]
    kept = (found.skipped == "").to_numpy()
    skipped = tracks.loc[~kept, ["track_id", "path"]].assign(reason=found.skipped.to_numpy()[~kept])
    with atomic_path(files.skipped) as tmp:
        skipped.to_csv(tmp, sep="\t", index=False)
    write_npy(files.vectors, vectors[kept], {**params, "dim": dim})
    write_parquet(files.tracks, tracks.loc[kept, TRACK_COLUMNS].reset_index(drop=True), params)
    log.info("corpus index: %d tracks from %d chunks, %d skipped (listed in %s)", int(kept.sum()),
             len(chunk_folders), len(skipped), files.skipped)
    return {"n_tracks": int(kept.sum()), "n_skipped": len(skipped), "dim": dim}


def read_index(index_dir) -> tuple[np.ndarray, pd.DataFrame]:
    """Corpus vectors (tracks × dim) and their track table, as ``index_corpus`` wrote them."""
    files = CorpusFiles(index_dir)
    vectors, tracks = load_npy(files.vectors), pd.read_parquet(files.tracks)
    if len(vectors) != len(tracks):
        raise InputError(files.path, f"{len(vectors)} vectors but {len(tracks)} track rows",
                         "rebuild the corpus index (delete the folder and rerun b2m index)")
    return vectors, tracks
