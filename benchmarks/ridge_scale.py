"""Ridge encoding and decoding at ds003720 scale: b2m's CV ridge (``RidgeCV``, primal or kernel
form) against himalaya's ``RidgeCV`` (the previous solver, the baseline) and
scikit-learn's ``RidgeCV(alpha_per_target=True)`` on the same data, each case in a fresh process for its peak
memory.

Data: random float32 with a planted linear map (4800 samples as the real training set, 60,000 voxels, 512-d or
1024-d embeddings, optionally with FIR delays). Reported: wall time, peak RSS, and achieved GFLOP/s of the
products a CV ridge needs (counted below) against this machine's measured sgemm rate.

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
BANDS, N_DRAWS = (512, 123, 10), 20  # banded ridge: the real study's spaces (clap-text, acoustic, genre), n_iter
# case → (direction, embedding dims, delays, solver, himalaya backend for b2m's solver)
CASES = {
    "encode-512": ("encode", 512, 1, "b2m", "cpu"),
    "encode-512-torch": ("encode", 512, 1, "b2m", "torch"),
    "encode-512-himalaya": ("encode", 512, 1, "himalaya", "numpy"),
    "encode-512-sklearn": ("encode", 512, 1, "sklearn", None),
    "encode-1024x4-delays": ("encode", 1024, 4, "b2m", "cpu"),
    "decode-512": ("decode", 512, 1, "b2m", "cpu"),
    "decode-512-sklearn": ("decode", 512, 1, "sklearn", None),
    "banded-645": ("banded", sum(BANDS), 1, "b2m", "cpu"),
    "banded-645-himalaya": ("banded", sum(BANDS), 1, "himalaya", "numpy"),
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
    if direction in ("encode", "banded"):
        return embedding, responses
    return responses, embedding[:, :dims]


def counted_flops(direction: str, n: int, p: int, t: int) -> float:
    """The products a run-grouped CV ridge over N_ALPHAS needs. Primal form (p ≤ n), per fold: the targets
    projected on the training SVD (2·n_train·p·t) and the validation predictions of every alpha
    (N_ALPHAS·2·n_val·p·t), for each of N_DRAWS band weightings in banded ridge; then the refit (2·n·p·t).
    Kernel form (p > n): the n×n Gram matrix (2·n²·p), per fold the same with n_train in place of p, and the
    refit (2·n²·t). The SVDs and eigendecompositions (of the stimulus side in the primal form) are not
    counted."""
    n_val, n_train = n / CV_FOLDS, n * (CV_FOLDS - 1) / CV_FOLDS
    if p <= n:
        per_fold = 2 * n_train * p * t + N_ALPHAS * 2 * n_val * p * t
        return (N_DRAWS if direction == "banded" else 1) * CV_FOLDS * per_fold + 2 * n * p * t
    per_fold = 2 * n_train ** 2 * t + N_ALPHAS * 2 * n_val * n_train * t
    return 2 * n ** 2 * p + CV_FOLDS * per_fold + 2 * n ** 2 * t


def fit(direction: str, solver: str, backend_name: str | None, X: np.ndarray, Y: np.ndarray, alphas: np.ndarray,
        groups: np.ndarray) -> tuple[str, str]:
    """Fit one solver; returns (backend, form)."""
    from sklearn.model_selection import GroupKFold

    if solver == "sklearn":
        from sklearn.linear_model import RidgeCV

        RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
        return "sklearn (efficient leave-one-out)", "gcv"
    from himalaya.ridge import BandedRidgeCV, RidgeCV

    from b2m.models import ridge
    from b2m.models.backend import get_backend, use_backend

    form = ridge.ridge_form(*X.shape)
    backend = use_backend(backend_name)
    cv = list(GroupKFold(n_splits=CV_FOLDS).split(X, groups=groups))
    bands = np.repeat(np.arange(len(BANDS)), BANDS)
    if solver == "himalaya" and direction == "banded":
        BandedRidgeCV(groups=bands, cv=cv, solver_params={"n_iter": N_DRAWS, "alphas": alphas,
                                                          "progress_bar": False}).fit(X, Y)
    elif solver == "himalaya":
        RidgeCV(alphas=alphas, cv=cv, fit_intercept=False).fit(X, Y)
    elif direction == "banded":
        get_backend().to_numpy(ridge.BandedRidgeCV(bands, alphas, cv, n_iter=N_DRAWS).fit(X, Y).best_alphas_)
    else:
        get_backend().to_numpy(ridge.RidgeCV(alphas, cv, form=form).fit(X, Y).best_alphas_)
    return backend, form + (", banded" if direction == "banded" else "")


def run_case(name: str, samples: int, voxels: int) -> dict:
    direction, dims, delays, solver, backend_name = CASES[name]
    X, Y = make_data(direction, dims, delays, samples, voxels)
    alphas = np.logspace(-1, 7, N_ALPHAS)
    groups = np.repeat(np.arange(12), samples // 12)
    began = time.perf_counter()
    backend, form = fit(direction, solver, backend_name, X, Y, alphas, groups)
    wall = time.perf_counter() - began
    flops = counted_flops(direction, X.shape[0], X.shape[1], Y.shape[1])
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return {"case": name, "solver": solver, "backend": backend, "form": form, "X": list(X.shape),
            "Y": list(Y.shape), "wall_s": round(wall, 1), "peak_rss_gib": round(peak_gib, 2),
            "gflops_counted": round(flops / 1e9), "gflop_per_s": round(flops / wall / 1e9, 1)}


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
