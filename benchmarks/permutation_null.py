"""The encoding's clip-block permutation null at ds003720 scale: b2m's ``permutation_p`` (blocks' cross-products
once per voxel, then every permutation as one row of a sparse selection) against the baseline in the same process,
b2m's previous implementation (a pass over every row per permutation), on the same permutations.

    python benchmarks/permutation_null.py [--voxels 60000] [--clips 60] [--windows 10] [--permutations 5000]
        [--baseline-permutations 100]

The baseline's time grows linearly with the permutations; it runs ``--baseline-permutations`` of them and is
compared with b2m on the same count, then scaled to ``--permutations`` (printed as an estimate).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np

from b2m.models.encoding import block_permutations, permutation_p


def baseline(true: np.ndarray, predicted: np.ndarray, clips, n_permutations: int, seed: int) -> np.ndarray:
    """b2m's previous null: both sides z-scored once, then for every row order that exchanges whole clips, the
    column sums of the elementwise product (one pass over all rows × voxels per permutation)."""
    def zscore(a):
        a = a - a.mean(axis=0)
        return a / np.sqrt((a ** 2).sum(axis=0))

    t, p = zscore(true.astype(np.float64)), zscore(predicted.astype(np.float64))
    observed = (t * p).sum(axis=0)
    exceed = np.zeros(true.shape[1])
    for order in block_permutations(clips, n_permutations, seed):
        exceed += (t * p[order]).sum(axis=0) >= observed
    return (1 + exceed) / (1 + n_permutations)


def timed(function, *args) -> tuple[np.ndarray, float]:
    began = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=60_000)
    parser.add_argument("--clips", type=int, default=60, help="test clips (ds003720: 60)")
    parser.add_argument("--windows", type=int, default=10, help="windows per clip (1.5 s windows: 10)")
    parser.add_argument("--permutations", type=int, default=5000, help="the real config's encoding.n_permutations")
    parser.add_argument("--baseline-permutations", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    clips = np.repeat([f"clip{i}" for i in range(args.clips)], args.windows)
    true = rng.standard_normal((len(clips), args.voxels)).astype(np.float32)
    predicted = (0.1 * true + rng.standard_normal(true.shape)).astype(np.float32)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}; {len(clips)} test rows ({args.clips} clips × {args.windows} windows) × "
          f"{args.voxels:,} voxels")

    permutation_p(true[:, :10], predicted[:, :10], clips, 2, 0)  # imports scipy.sparse outside the timings
    n = args.baseline_permutations
    reference, baseline_s = timed(baseline, true, predicted, clips, n, 0)
    blocked, blocked_s = timed(permutation_p, true, predicted, clips, n, 0)
    print(f"{n} permutations: baseline {baseline_s:.1f} s, b2m {blocked_s:.2f} s, ratio {baseline_s / blocked_s:.1f}; "
          f"same p-values: {np.array_equal(reference, blocked)}")
    _, full_s = timed(permutation_p, true, predicted, clips, args.permutations, 0)
    estimate = baseline_s * args.permutations / n
    print(f"{args.permutations} permutations: b2m {full_s:.1f} s; baseline estimated {estimate:.0f} s "
          f"({estimate / full_s:.0f} times b2m)")
    print(f"peak RSS of the script: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB")


if __name__ == "__main__":
    main()
