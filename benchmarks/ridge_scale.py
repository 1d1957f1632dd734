"""Ridge encoding and decoding at ds003720 scale: himalaya (what b2m runs) against scikit-learn's
``RidgeCV(alpha_per_target=True)`` on the same data, each case in a fresh process for its peak memory.

Data: random float32 with a planted linear map (4800 samples as the real training set, 60,000 voxels, 512-d or
1024-d embeddings, optionally with FIR delays). Reported: wall time, peak RSS, and achieved GFLOP/s from the
dominant matrix products (counted below) against this machine's measured sgemm rate.

    python benchmarks/ridge_scale.py                 # every case
    python benchmarks/ridge_scale.py --case encode-512 --voxels 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

N_ALPHAS, CV_FOLDS = 17, 5
# case → (direction, embedding dims, delays, library)
CASES = {
    "encode-512": ("encode", 512, 1, "himalaya"),
    "encode-512-sklearn": ("encode", 512, 1, "sklearn"),
    "encode-1024x4-delays": ("encode", 1024, 4, "himalaya"),
    "decode-512": ("decode", 512, 1, "himalaya"),
    "decode-512-sklearn": ("decode", 512, 1, "sklearn"),
}


def sgemm_gflops(size: int = 4096, repeats: int = 3) -> float:
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    began = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size ** 3 * repeats / (time.perf_counter() - began) / 1e9


def make_data(direction: str, dims: int, delays: int, samples: int, voxels: int):
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal((samples, dims * delays), dtype=np.float32)
    weights = rng.standard_normal((dims * delays, voxels), dtype=np.float32) / np.sqrt(dims * delays)
    responses = embedding @ weights + 2 * rng.standard_normal((samples, voxels), dtype=np.float32)
    if direction == "encode":
        return embedding, responses
    return responses, embedding[:, :dims]


def counted_flops(direction: str, n: int, p: int, t: int) -> float:
    """Dominant products of a run-grouped CV ridge over N_ALPHAS: per fold, projecting the targets on the
    training decomposition and predicting the validation rows for every alpha; plus the refit. Primal form
    (p ≤ n): 2·n·p·t each; kernel form (p > n): the n×n Gram matrix (2·n²·p) and 2·n²·t products."""
    n_val, n_train = n / CV_FOLDS, n * (CV_FOLDS - 1) / CV_FOLDS
    if p <= n:
        per_fold = 2 * n_train * p * t + N_ALPHAS * 2 * n_val * p * t
        return CV_FOLDS * per_fold + 2 * n * p * t
    per_fold = 2 * n_train ** 2 * t + N_ALPHAS * 2 * n_val * n_train * t
    return 2 * n ** 2 * p + CV_FOLDS * per_fold + 2 * n ** 2 * t


def run_case(name: str, samples: int, voxels: int) -> dict:
    direction, dims, delays, library = CASES[name]
    X, Y = make_data(direction, dims, delays, samples, voxels)
    alphas = np.logspace(-1, 7, N_ALPHAS)
    groups = np.repeat(np.arange(12), samples // 12)
    began = time.perf_counter()
    if library == "himalaya":
        from sklearn.model_selection import GroupKFold

        from b2m.models.backend import use_backend
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.ridge import RidgeCV

        form = "kernel" if X.shape[1] > X.shape[0] else "primal"
        backend = use_backend("auto", form)
        cv = list(GroupKFold(n_splits=CV_FOLDS).split(X, groups=groups))
        model = (KernelRidgeCV if form == "kernel" else RidgeCV)(alphas=alphas, cv=cv)
        model.fit(X, Y)
    else:
        from sklearn.linear_model import RidgeCV

        backend, form = "sklearn (efficient leave-one-out)", "gcv"
        RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
    wall = time.perf_counter() - began
    flops = counted_flops(direction, X.shape[0], X.shape[1], Y.shape[1])
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return {"case": name, "backend": backend, "form": form, "X": list(X.shape), "Y": list(Y.shape),
            "wall_s": round(wall, 1), "peak_rss_gib": round(peak_gib, 2), "gflops_counted": round(flops / 1e9),
            "gflop_per_s": round(flops / wall / 1e9, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=list(CASES))
    parser.add_argument("--samples", type=int, default=4800)
    parser.add_argument("--voxels", type=int, default=60000)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.samples, args.voxels)))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"sgemm {sgemm_gflops():.1f} GFLOP/s (float32 4096², numpy)")
    for name in CASES:
        done = subprocess.run([sys.executable, __file__, "--case", name, "--samples", str(args.samples),
                               "--voxels", str(args.voxels)], capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
