"""Corpus tracks that duplicate a query's audio, found by an acoustic fingerprint, so that retrieval and its
chance rows leave them out like the query's own clip.

The fingerprint is Haitsma & Kalker's (2002, "A Highly Robust Audio Fingerprinting System", ISMIR; also
J. New Music Res. 32(2), 2003): the audio, mono, resampled to ``RATE`` Hz, cut into Hann frames of ``FRAME``
samples (0.37 s) every ``HOP`` samples (11.6 ms); each frame's energy in 33 bands log-spaced over
300-2000 Hz gives one 32-bit sub-fingerprint, bit m of frame n being

    (E[n, m] - E[n, m+1]) - (E[n-1, m] - E[n-1, m+1]) > 0.

Bits compare energies, so a gain change leaves them as they are; resampling and lossy re-encoding flip a few.

Lookup, as the paper: every corpus frame whose sub-fingerprint equals one of a query's (silent frames, all
zero bits, are left out) votes for the offset "track frame - query frame"; the ``CANDIDATES`` most voted
offsets of each query × track are checked by the bit error rate (BER) over the frames the two share. A track
duplicates the query when some offset shares at least ``MIN_OVERLAP`` of the query's frames (a track trimmed
by a second still holds most of the excerpt) at a BER of at most ``THRESHOLD``.

The threshold was measured (``benchmarks/duplicate_scores.py``) on the 20 real GTZAN test clips of shared/real
(16 kHz; each query the presented excerpt ``start``..``end``) against the clips and 10 copies of each, as
``tests/test_duplicates.py`` plants them (exact; resampled to 44.1 kHz FLAC; 22.05 kHz OGG Vorbis; MP3; 1 s cut
off the start or the end; the excerpt less 1 s at either end; -6 dB; the excerpt alone; the excerpt inside other
audio). All 200 true copies were found, at a BER of 0.000-0.074; the 12 pairs of different clips that shared a
sub-fingerprint scored 0.490-0.502 at their best offset, as random bits do. ``THRESHOLD`` = 0.25 lies far from
both, below the paper's 0.35 for 3 s blocks because our overlaps are longer (at least half of the excerpt).

Queries are the presented excerpts without the fades (fades change energy differences, and a duplicate
holds the clip as it is in its file). ``fingerprint_tracks`` works on any subset of the corpus (one chunk of
a scattered job) and writes one Parquet file; ``find_duplicates`` reads any number of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.fft

from b2m.errors import InputError
from b2m.features.audio import load_audio, resample, silent_excerpt
from b2m.io import atomic_path, read_parquet_provenance, write_parquet

log = logging.getLogger(__name__)

RATE = 5512  # Hz
FRAME = 2048  # samples: 0.37 s
HOP = 64  # samples: 11.6 ms, 1/32 of a frame
BANDS = np.geomspace(300.0, 2000.0, 34)  # edges (Hz) of 33 bands: 32 differences
HOP_S = HOP / RATE
CANDIDATES = 3
MIN_OVERLAP = 0.5
THRESHOLD = 0.25
FINGERPRINT_COLUMNS = ["track_id", "source", "path", "words", "reason"]
DUPLICATE_COLUMNS = ["clip_id", "track_id", "source", "path", "offset_s", "overlap_s", "ber", "same_id"]


@dataclass
class Fingerprint:
    """Sub-fingerprints (frames,) uint32, one every ``HOP_S`` s."""

    words: np.ndarray


def _band_matrix() -> np.ndarray:
    """(33, FRAME // 2 + 1) float32: which FFT bins sum into each band."""
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    return ((freqs >= BANDS[:-1, None]) & (freqs < BANDS[1:, None])).astype(np.float32)


def fingerprint_audio(audio: np.ndarray, rate: int) -> Fingerprint:
    """Haitsma & Kalker sub-fingerprints of mono ``audio`` at ``rate`` Hz (none when shorter than 2 frames)."""
    signal = resample(np.asarray(audio, dtype=np.float32), rate, RATE).astype(np.float32)
    if len(signal) < FRAME + HOP:
        return Fingerprint(np.zeros(0, dtype=np.uint32))
    frames = np.lib.stride_tricks.sliding_window_view(signal, FRAME)[::HOP] * np.hanning(FRAME).astype(np.float32)
    spectrum = scipy.fft.rfft(frames, axis=1)
    energy = (spectrum.real ** 2 + spectrum.imag ** 2) @ _band_matrix().T  # frames × 33
    step = np.diff(energy, axis=1)  # E[n, m+1] - E[n, m]
    bits = (step[:-1] - step[1:]) > 0  # (E[n,m] - E[n,m+1]) - (E[n-1,m] - E[n-1,m+1]) > 0
    return Fingerprint(np.packbits(bits, axis=1, bitorder="little").view("<u4").ravel().astype(np.uint32))


def fingerprint_file(path, start: float = 0.0, end: float | None = None) -> Fingerprint:
    """The fingerprint of a file's ``start``..``end`` s (default: all of it). Raises ``InputError`` for an
    unreadable file, a span outside it, or a silent span (a stimulus excerpt with nothing to match)."""
    audio, rate = load_audio(path)
    a, b = int(round(start * rate)), len(audio) if end is None else int(round(end * rate))
    if b > len(audio) + 1 or a >= b:
        raise InputError(path, f"span {start:g}-{end} s lies outside the {len(audio) / rate:.2f} s audio",
                         "check the clip file (a truncated copy?) and the events' start/end columns")
    if end is not None and not np.any(audio[a:b]):
        raise silent_excerpt(path, start, end)
    return fingerprint_audio(audio[a:b], rate)


def fingerprint_tracks(tracks: pd.DataFrame, out, params: dict) -> dict:
    """Fingerprint every track of ``tracks`` (track_id, source, path: any subset of a corpus) into one Parquet
    file ``out`` (FINGERPRINT_COLUMNS; ``words``: the little-endian uint32 bytes, ``reason``: why a track was
    skipped, '' when it was not)."""
    words, reasons = [], []
    for track in tracks.itertuples():
        try:
            words.append(fingerprint_file(track.path).words.tobytes())
            reasons.append("")
        except InputError as err:
            log.warning("skipped %s: %s", track.track_id, err.problem)
            words.append(b"")
            reasons.append(err.problem)
    table = tracks[["track_id", "source", "path"]].assign(words=words, reason=reasons)
    write_fingerprints(out, table, params)
    return {"n_tracks": len(table), "n_skipped": int((table.reason != "").sum())}


def fingerprint_settings() -> dict:
    """What makes two fingerprint files comparable."""
    return {"method": "haitsma-kalker-2002", "rate": RATE, "frame": FRAME, "hop": HOP,
            "bands_hz": [float(BANDS[0]), float(BANDS[-1]), len(BANDS) - 1]}


def write_fingerprints(out, table: pd.DataFrame, params: dict) -> None:
    """A fingerprint table (FINGERPRINT_COLUMNS) as Parquet, with the settings it was made with."""
    write_parquet(out, table[FINGERPRINT_COLUMNS].reset_index(drop=True),
                  {**params, "fingerprint": fingerprint_settings()})


def query_fingerprints(clips: pd.DataFrame) -> dict[str, Fingerprint]:
    """clip_id → the fingerprint of its presented excerpt (``clips``: clip_id, path, start, end in s)."""
    return {clip.clip_id: fingerprint_file(clip.path, clip.start, clip.end) for clip in clips.itertuples()}


@dataclass
class _QueryIndex:
    """Every query's sub-fingerprints sorted by value, for the lookup of a track's frames."""

    values: np.ndarray
    query: np.ndarray
    frame: np.ndarray

    @classmethod
    def of(cls, queries: list[np.ndarray]) -> "_QueryIndex":
        values = np.concatenate(queries) if queries else np.zeros(0, dtype=np.uint32)
        query = np.repeat(np.arange(len(queries)), [len(q) for q in queries])
        frame = np.concatenate([np.arange(len(q)) for q in queries]) if queries else np.zeros(0, dtype=np.int64)
        keep = values != 0
        order = np.argsort(values[keep], kind="stable")
        return cls(values[keep][order], query[keep][order], frame[keep][order])

    def votes(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, offset) of every exact match of a track's ``words``, offset = track frame - query frame."""
        left = np.searchsorted(self.values, words, "left")
        count = np.searchsorted(self.values, words, "right") - left
        hits = np.flatnonzero(count)
        if not len(hits):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        n = count[hits]
        position = np.repeat(left[hits] - np.cumsum(n) + n, n) + np.arange(n.sum())
        return self.query[position], np.repeat(hits, n) - self.frame[position]


def bit_error_rate(query: np.ndarray, track: np.ndarray, offset: int) -> tuple[float, int]:
    """BER of the frames ``query`` and ``track`` share when query frame i lies at track frame i + offset, and
    how many frames they share."""
    first, last = max(0, -offset), min(len(query), len(track) - offset)
    if last <= first:
        return 1.0, 0
    errors = np.bitwise_count(query[first:last] ^ track[first + offset:last + offset]).sum()
    return float(errors) / (32 * (last - first)), last - first


def best_match(query: np.ndarray, track: np.ndarray, offsets: np.ndarray) -> tuple[float, int, int]:
    """(BER, offset, shared frames) of the best of the ``CANDIDATES`` most voted ``offsets`` that share at least
    ``MIN_OVERLAP`` of the query's frames (BER 1 when none does)."""
    values, votes = np.unique(offsets, return_counts=True)
    best = (1.0, 0, 0)
    for offset in values[np.argsort(-votes, kind="stable")[:CANDIDATES]]:
        ber, shared = bit_error_rate(query, track, int(offset))
        if shared >= MIN_OVERLAP * len(query) and ber < best[0]:
            best = (ber, int(offset), shared)
    return best


def match_scores(queries: dict[str, Fingerprint], tracks: pd.DataFrame) -> pd.DataFrame:
    """Every query × track pair with an exact sub-fingerprint match: clip_id, track_id, source, path, offset_s,
    overlap_s, ber (``tracks``: a fingerprint table). The decision is ``find_duplicates``'s."""
    names, words = list(queries), [queries[name].words for name in queries]
    index, rows = _QueryIndex.of(words), []
    for track in tracks.itertuples():
        track_words = np.frombuffer(track.words, dtype="<u4")
        query, offset = index.votes(track_words)
        for q in np.unique(query):
            ber, best, shared = best_match(words[q], track_words, offset[query == q])
            if shared:
                rows.append((names[q], track.track_id, track.source, track.path, best * HOP_S, shared * HOP_S, ber))
    return pd.DataFrame(rows, columns=DUPLICATE_COLUMNS[:-1])


def read_fingerprints(files) -> pd.DataFrame:
    """The fingerprint tables of ``files`` (from ``fingerprint_tracks``), skipped tracks left out."""
    tables = [pd.read_parquet(path) for path in files]
    for path, table in zip(files, tables):
        if list(table.columns) != FINGERPRINT_COLUMNS:
            raise InputError(path, f"not a fingerprint table (columns {FINGERPRINT_COLUMNS})",
                             "rebuild it with b2m fingerprint-chunk")
        if read_parquet_provenance(path).get("params", {}).get("fingerprint") != fingerprint_settings():
            raise InputError(path, "fingerprinted with other settings than this version of b2m's",
                             "delete the file and rerun b2m fingerprint-chunk")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=FINGERPRINT_COLUMNS)
    return table[table.reason == ""].reset_index(drop=True)


def find_duplicates(queries: dict[str, Fingerprint], files) -> pd.DataFrame:
    """DUPLICATE_COLUMNS: each corpus track (of the fingerprint ``files``, read one at a time) that holds a
    query's excerpt, BER ≤ ``THRESHOLD`` over ≥ ``MIN_OVERLAP`` of it. ``offset_s``: where the excerpt begins in
    the track (negative when the track begins inside it); ``same_id``: the track is the query's own clip (left
    out by id anyway)."""
    scores = pd.concat([match_scores(queries, read_fingerprints([path])) for path in files], ignore_index=True)
    found = scores[scores.ber <= THRESHOLD].assign(same_id=lambda t: t.clip_id == t.track_id)
    return found.sort_values(["clip_id", "ber", "track_id"]).reset_index(drop=True)[DUPLICATE_COLUMNS]


def excluded_ids(clip_ids, duplicates: pd.DataFrame | None) -> list[set[str]]:
    """For each query clip, the corpus ids it must never be given: its own and its duplicates'."""
    found = {} if duplicates is None else duplicates.groupby("clip_id").track_id.agg(set).to_dict()
    return [{clip_id} | found.get(clip_id, set()) for clip_id in clip_ids]


def write_duplicates(path, table: pd.DataFrame) -> None:
    """The duplicates table as TSV, written atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")


def read_duplicates(path) -> pd.DataFrame:
    """A duplicates table written by ``write_duplicates``."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"clip_id": str, "track_id": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(path, f"unreadable duplicates table ({err})", "rerun b2m find-duplicates") from err
    if list(table.columns) != DUPLICATE_COLUMNS:
        raise InputError(path, f"columns {list(table.columns)}, not {DUPLICATE_COLUMNS}",
                         "rerun b2m find-duplicates")
    return table


def log_exclusions(clip_ids, duplicates: pd.DataFrame | None, track_ids) -> None:
    """Log how many corpus tracks each query leaves out: its own clip and its duplicates."""
    present = set(track_ids)
    for clip_id, ids in zip(clip_ids, excluded_ids(clip_ids, duplicates)):
        copies = sorted((ids - {clip_id}) & present)
        log.info("%s: %d corpus tracks excluded (own clip %s, %d duplicates%s)", clip_id, len(ids & present),
                 "in the corpus" if clip_id in present else "not in the corpus", len(copies),
                 f": {', '.join(copies)}" if copies else "")
