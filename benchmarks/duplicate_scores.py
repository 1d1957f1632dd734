"""The duplicate rule's margin and cost on real audio: every one of the 20 real GTZAN clips of shared/real
(ds003720's test stimuli) is copied in each way tests/test_duplicates.py plants copies (exact, resampled,
re-encoded, trimmed, quieter, the excerpt alone, inside other audio, MP3 where libsndfile writes it), and each clip's
excerpt is matched against them all: the bit error rate (BER) of every true copy against that of every pair of
different clips that share a sub-fingerprint, and the seconds to fingerprint a track.

    python benchmarks/duplicate_scores.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("B2M_SHARED_REAL", REPO.parent / "shared" / "real"))
sys.path.insert(0, str(REPO / "tests"))

from b2m.features.audio import load_audio  # noqa: E402
from b2m.reconstruct import duplicates as dup  # noqa: E402
from b2m.reconstruct.corpus import corpus_tracks  # noqa: E402
from dry_run import machine  # noqa: E402
from test_duplicates import copies_of, real_clips  # noqa: E402


def plant_every_copy(clips, folder: Path) -> int:
    """Each clip's copies under ``folder/<clip>/``; the number of copies."""
    count = 0
    for number, clip in enumerate(clips.itertuples()):
        audio, rate = load_audio(clip.path)
        other, _ = load_audio(clips.path.iloc[-1 - number])
        for name, (samples, sr, keywords, _) in copies_of(audio, rate, clip.start, clip.end, other).items():
            (folder / clip.clip_id).mkdir(exist_ok=True)
            sf.write(folder / clip.clip_id / name, samples, sr, **keywords)
            count += 1
    return count


def main() -> None:
    print(machine())
    clips = real_clips(REAL)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        copies = plant_every_copy(clips, folder)
        tracks = corpus_tracks([{"path": REAL / "gtzan-sample", "layout": "gtzan"},
                                {"path": folder, "layout": "folder", "name": "copies"}])
        began = time.perf_counter()
        dup.fingerprint_tracks(tracks, folder / "fingerprints.parquet", {})
        per_track = (time.perf_counter() - began) / len(tracks)
        scores = dup.match_scores(dup.query_fingerprints(clips), dup.read_fingerprints([folder / "fingerprints.parquet"]))
    owner = scores.track_id.str.split("/").str[0]
    true = scores[(owner == scores.clip_id) & (scores.track_id != scores.clip_id)]
    different = scores[owner != scores.clip_id]
    print(f"{len(clips)} clips, {copies} copies, {len(tracks)} tracks; fingerprinting: {per_track:.3f} s a track")
    print(f"true copies found (BER <= {dup.THRESHOLD}): {int((true.ber <= dup.THRESHOLD).sum())} of {copies}; "
          f"BER {true.ber.min():.3f}-{true.ber.max():.3f}")
    print(f"pairs of different clips sharing a sub-fingerprint: {len(different)}; "
          f"BER {different.ber.min():.3f}-{different.ber.max():.3f}")


if __name__ == "__main__":
    main()
