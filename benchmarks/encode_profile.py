"""Where a full-size encode job's time goes, step by step, on random float32 data of ds003720's real-study shape:
4800 training rows (12 runs × 40 clips × 10 windows of 1.5 s), 600 test rows (60 clips × 10 windows, their
4 repeats kept for the noise ceiling), ``--voxels`` voxels (121,792: the simulated full-size cortex). A plain
encode (one space of ``--dims``) or with ``--banded`` an encode_banded (bands of 512 + 123 + 10 columns, 20
draws) runs as its stage runs it: the fit (``RidgeEncoder`` / ``BandedEncoder``), the prediction of the test
rows, the scores (``score_encoding`` / ``score_banded``: r, both nulls with ``--permutations``, BH, the noise
ceiling). Each step's wall time and the fit's cProfile split (stimulus side, validation scores, refit) are
printed.

    python benchmarks/encode_profile.py [--voxels 121792] [--dims 123] [--permutations 5000] [--banded]
        [--save voxels.parquet]

Run under a baseline checkout's b2m (``PYTHONPATH=<checkout>``) and this one's, alternately, to compare the two:
``compare_encodings.py`` then reads the two voxel tables.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import time
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.data.windowed import EncodingFold, FoldData, TestRepeats
from b2m.models.backend import use_backend
from b2m.models.encoding import (BandedEncoder, RidgeEncoder, predict_held_out, predict_held_out_bands,
                                 score_banded, score_encoding)

RUNS, CLIPS_PER_RUN, WINDOWS, TEST_CLIPS, REPEATS = 12, 40, 10, 60, 4
BANDS = {"clap-text": 512, "acoustic": 123, "genre": 10}
PROFILED = ("stimulus_side", "validation_scores", "refit_coef", "best_alpha_indices")


def rows_of(clips: list[str], runs: np.ndarray) -> pd.DataFrame:
    """The row table of ``clips`` (each ``WINDOWS`` windows of 1.5 s) in runs ``runs`` (one per clip)."""
    return pd.DataFrame({"clip_id": np.repeat(clips, WINDOWS), "run": np.repeat(runs, WINDOWS),
                         "event": np.repeat(np.arange(len(clips)), WINDOWS), "group": np.repeat(runs, WINDOWS),
                         "window": np.tile(np.arange(WINDOWS), len(clips)),
                         "start_s": np.tile(np.arange(WINDOWS) * 1.5, len(clips))})


def fold(voxels: int, dims: dict, seed: int = 0) -> tuple[EncodingFold, TestRepeats]:
    """A random encoding fold of the real study's shape with planted maps (signal on a tenth of the voxels)."""
    rng = np.random.default_rng(seed)
    train_clips = [f"train-{i:03d}" for i in range(RUNS * CLIPS_PER_RUN)]
    test_clips = [f"test-{i:02d}" for i in range(TEST_CLIPS)]
    train_rows = rows_of(train_clips, np.repeat(np.arange(RUNS), CLIPS_PER_RUN))
    test_rows = rows_of(test_clips, np.zeros(TEST_CLIPS, int))
    n_train, n_test = len(train_rows), len(test_rows)
    features = {name: (rng.standard_normal((n_train, dim), dtype=np.float32),
                       rng.standard_normal((n_test, dim), dtype=np.float32)) for name, dim in dims.items()}
    signal = [np.hstack(sides) for sides in zip(*features.values())]
    weights = rng.standard_normal((signal[0].shape[1], voxels), dtype=np.float32) / np.sqrt(signal[0].shape[1])
    weights[:, voxels // 10:] = 0
    train = signal[0] @ weights + rng.standard_normal((n_train, voxels), dtype=np.float32)
    repeats = (signal[1] @ weights)[None] + rng.standard_normal((REPEATS, n_test, voxels), dtype=np.float32)
    repeat_rows = pd.concat([test_rows.assign(repeat=k) for k in range(REPEATS)], ignore_index=True)
    data = FoldData(train_rows, train, test_rows, repeats.mean(axis=0))
    return EncodingFold(data, features), TestRepeats(repeats.reshape(-1, voxels), repeat_rows)


def profiled(profile: cProfile.Profile) -> dict:
    """Cumulative seconds of the ridge functions ``PROFILED`` in ``profile``."""
    stats = pstats.Stats(profile).stats
    return {name: max((cum for (path, _, fn), (_, _, _, cum, _) in stats.items()
                       if fn == name and path.endswith("ridge.py")), default=0.0) for name in PROFILED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=121_792)
    parser.add_argument("--dims", type=int, default=123)
    parser.add_argument("--permutations", type=int, default=5000)
    parser.add_argument("--banded", action="store_true")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--save", type=Path, help="write the voxel table (r, p, q) here, to compare two trees'")
    args = parser.parse_args()
    backend = use_backend(args.backend)
    dims = BANDS if args.banded else {"space": args.dims}
    data, repeats = fold(args.voxels, dims)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, backend "
          f"{backend}; {len(data.data.train_rows)} training rows, {args.voxels:,} voxels, dims {dims}", flush=True)
    encoder = (BandedEncoder(n_iter=20, solver_params={"n_targets_batch": 20000}) if args.banded
               else RidgeEncoder(solver_params={"n_targets_batch": 20000}))
    predict = predict_held_out_bands if args.banded else predict_held_out
    profile = cProfile.Profile()
    began = time.perf_counter()
    held_out = profile.runcall(predict, data, encoder)
    fitted = time.perf_counter()
    if args.banded:
        result = score_banded(held_out, list(BANDS), "test", repeats, args.permutations)
    else:
        result = score_encoding(held_out, "test", repeats, args.permutations)
    scored = time.perf_counter()
    print(f"fit + prediction: {fitted - began:.1f} s")
    for name, seconds in profiled(profile).items():
        print(f"  {name}: {seconds:.1f} s")
    print(f"scores (r, nulls with {args.permutations} permutations, BH, noise ceiling): {scored - fitted:.1f} s")
    if args.save:
        result.voxels.to_parquet(args.save)
    planted = np.arange(args.voxels) < args.voxels // 10
    found = (result.voxels.q < 0.05).to_numpy()
    print(f"total {scored - began:.1f} s; q < 0.05: {found.sum()} voxels, {found[planted].mean():.3f} of the planted, "
          f"precision {planted[found].mean():.3f}; median r {result.voxels.r.median():.4f}")


if __name__ == "__main__":
    main()
