"""The real study's plan with an FMA-large-size corpus: `snakemake -n` of config/ds003720.yaml (on the real ds003720
metadata of shared/real) over 106,574 placeholder tracks in FMA's layout, with the workflow of a baseline revision
(one index job per space, the corpus folder its input) and the current one (chunk jobs, each track file an input
of its chunk), in the same process; then each chunk job's time projected from the measured per-track costs.

    python benchmarks/corpus_plan.py [--baseline f7ba5ee] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from dry_run import REPO, compare, machine

FMA_TRACKS = 106_574  # FMA-large's tracks
FMA_LAST_ID = 155_320  # its highest track id
# Seconds per corpus track on 2 cores (BENCHMARKS.md, "The real study's whole DAG", study_projection.py): CLAP audio
# 1.47 s a clip (random weights at HTSAT-base size), acoustic 1.33 h for the 106,574 tracks.
SECONDS_PER_TRACK = {"clap-audio": 1.47, "clap-musicldm": 1.47, "acoustic": 1.33 * 3600 / FMA_TRACKS}
ATTEMPT_MINUTES = 240  # profiles/slurm's runtime of a first attempt


def fma_ids() -> list[int]:
    """``FMA_TRACKS`` seeded track ids up to FMA's highest, sorted."""
    return sorted(np.random.default_rng(0).choice(np.arange(2, FMA_LAST_ID + 1), FMA_TRACKS, replace=False).tolist())


def placeholder_fma(root: Path) -> list[int]:
    """Empty files at the ``fma_ids``, in FMA's ``<id // 1000:03d>/<id:06d>.mp3`` layout."""
    ids = fma_ids()
    for folder in {i // 1000 for i in ids}:
        (root / f"{folder:03d}").mkdir(parents=True, exist_ok=True)
    for i in ids:
        (root / f"{i // 1000:03d}/{i:06d}.mp3").touch()
    return ids


def chunk_projection(ids: list[int], chunks: int) -> list[str]:
    """Markdown rows: each corpus space's chunk jobs, their sizes and projected times against one attempt."""
    from b2m.reconstruct.corpus import chunk_of

    sizes = np.bincount(chunk_of([f"fma-{i}" for i in ids], chunks), minlength=chunks)
    rows = []
    for space, seconds in SECONDS_PER_TRACK.items():
        longest = sizes.max() * seconds / 60
        rows.append(f"| {space} | {chunks} | {sizes.min()} / {int(np.median(sizes))} / {sizes.max()} | "
                    f"{sizes.mean() * seconds / 60:.1f} | {longest:.1f} | {longest / ATTEMPT_MINUTES:.2f} |")
    return rows


def gather_cost(chunks: int, dim: int, scratch: Path) -> tuple[float, float]:
    """Seconds and peak RSS (GiB) of gathering ``chunks`` chunks of random ``dim``-d vectors for the placeholder ids
    into one index, in a process of its own (``--gather``)."""
    done = subprocess.run([sys.executable, __file__, "--gather", str(scratch), "--chunks", str(chunks), "--dim",
                           str(dim)], check=True, capture_output=True, text=True)
    seconds, peak = done.stdout.split()
    return float(seconds), float(peak)


def measure_gather(scratch: Path, chunks: int, dim: int) -> None:
    """Print the seconds and peak RSS (GiB) of this process's gather (``gather_cost``)."""
    import pandas as pd

    from b2m.io import write_npy, write_parquet
    from b2m.layout import CorpusFiles
    from b2m.reconstruct.corpus import chunk_of, gather_index

    ids = fma_ids()
    tracks = pd.DataFrame({"track_id": [f"fma-{i}" for i in ids], "source": "fma_large",
                           "path": [f"/fma_large/{i // 1000:03d}/{i:06d}.mp3" for i in ids], "genre": "Rock"})
    where, corpus, rng = chunk_of(tracks.track_id, chunks), CorpusFiles(scratch / "index"), np.random.default_rng(0)
    for n in range(chunks):
        mine = tracks[where == n]
        write_npy(corpus.chunk(n).vectors, rng.standard_normal((len(mine), dim), dtype=np.float32), {})
        write_parquet(corpus.chunk(n).tracks, mine[["track_id", "source", "path"]].assign(sha256="", skipped=""), {})
    began = time.perf_counter()
    gather_index(tracks, [corpus.chunk(n) for n in range(chunks)], corpus.path)
    print(time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def decode_seconds(seconds: float = 15.0, rate: int = 48000) -> float:
    """Mean seconds to read a real GTZAN clip (shared/real/gtzan-sample) and its MP3 copy, cut its first ``seconds``
    and resample them to ``rate`` (a CLAP space's): the part of a corpus track's cost that two spaces of one rate
    could share."""
    import soundfile as sf

    from b2m.features.audio import excerpt, load_audio, resample
    from dry_run import REAL

    clips = sorted((REAL / "gtzan-sample").rglob("*.wav"))
    with tempfile.TemporaryDirectory() as scratch:
        copies = []
        for clip in clips:
            audio, sr = sf.read(clip, dtype="float32")
            copies.append(Path(scratch) / f"{clip.stem}.mp3")
            sf.write(copies[-1], audio, sr, format="MP3")
        began = time.perf_counter()
        for path in clips + copies:
            audio, sr = load_audio(path)
            resample(excerpt(audio, sr, 0.0, seconds, path), sr, rate)
        return (time.perf_counter() - began) / len(clips + copies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="f7ba5ee", help="revision with one index job per space")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gather", type=Path, help=argparse.SUPPRESS)  # the child of gather_cost
    parser.add_argument("--chunks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gather:
        return measure_gather(args.gather, args.chunks, args.dim)
    print(machine())
    with tempfile.TemporaryDirectory() as scratch:
        fma = Path(scratch) / "fma"
        ids = placeholder_fma(fma / "fma_large")
        seconds = {}
        for name, runs in compare(args.baseline, args.repeats, lambda work: (work / "fma").symlink_to(fma)).items():
            seconds[name] = statistics.median(s for s, _, _ in runs)
            index_jobs = {rule: n for rule, n in runs[0][2].items() if rule.startswith("index_corpus")}
            print(f"{name}: {seconds[name]:.2f} s (median of {args.repeats}), {runs[0][1]} input files, "
                  f"{sum(runs[0][2].values())} jobs, index jobs {index_jobs}")
        print(f"current / baseline: {seconds['current'] / seconds['baseline']:.2f}")
    chunks = yaml.safe_load((REPO / "config/ds003720.yaml").read_text())["reconstruction"]["corpus"]["chunks"]
    print("| space | chunk jobs | tracks per job (min / median / max) | mean job (min) | longest job (min) |"
          " longest / one attempt |")
    print("|---|---|---|---|---|---|")
    print("\n".join(chunk_projection(ids, chunks)))
    with tempfile.TemporaryDirectory() as scratch:
        gather_s, peak = gather_cost(chunks, 512, Path(scratch))
    print(f"index_corpus (the gather of {chunks} chunks, 512-d): {gather_s:.1f} s, peak RSS {peak:.2f} GiB")
    decode = decode_seconds()
    print(f"reading and resampling a track to 48 kHz: {decode:.3f} s, {decode / SECONDS_PER_TRACK['clap-audio']:.1%} "
          "of a CLAP space's seconds per track")


if __name__ == "__main__":
    main()
