"""Where an encoding fit's time goes: cProfile of b2m's ``RidgeCV`` as the encode rule runs it (17 alphas,
5 folds grouped by run, ``n_targets_batch`` 20,000), or with ``--banded`` its ``BandedRidgeCV`` (bands of
512 + 123 + 10 columns, 20 draws), on random float32 data of the real training size. The fit is split into the
stimulus side (``stimulus_side``: the SVDs of the features and the validation predictors, the same for every
subject) and the voxel side (everything that scales with voxels).

    python benchmarks/ridge_profile.py [--samples 4800] [--dims 512] [--voxels 10000] [--backend cpu] [--banded]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import time

import numpy as np
from sklearn.model_selection import GroupKFold

from b2m.models.backend import use_backend
from b2m.models.ridge import BandedRidgeCV, RidgeCV

# b2m.models.ridge functions of the fit, by what they scale with
STIMULUS_SIDE = ("stimulus_side", "svd")  # svd: the part of stimulus_side spent in the SVDs
VOXEL_SIDE = ("validation_scores", "best_alpha_indices")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4800)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--voxels", type=int, default=10_000)
    parser.add_argument("--backend", default="cpu", help="himalaya backend (b2m's names: cpu, numpy, torch, ...)")
    parser.add_argument("--banded", action="store_true", help="banded ridge: 512 + 123 + 10 columns, 20 draws")
    args = parser.parse_args()
    backend = use_backend(args.backend)
    rng = np.random.default_rng(0)
    dims = 645 if args.banded else args.dims
    X = rng.standard_normal((args.samples, dims), dtype=np.float32)
    Y = 0.05 * X @ rng.standard_normal((dims, args.voxels), dtype=np.float32)
    Y += rng.standard_normal(Y.shape, dtype=np.float32)
    groups = np.repeat(np.arange(12), args.samples // 12 + 1)[:args.samples]
    cv = list(GroupKFold(5).split(X, groups=groups))
    alphas, solver_params = np.logspace(-1, 7, 17), {"n_targets_batch": 20000}
    model = (BandedRidgeCV(np.repeat([0, 1, 2], [512, 123, 10]), alphas, cv, n_iter=20,
                           solver_params=solver_params) if args.banded
             else RidgeCV(alphas=alphas, cv=cv, solver_params=solver_params))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, backend {backend}; X {args.samples} × {dims}, Y {args.samples} × "
          f"{args.voxels:,}")
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.runcall(model.fit, X, Y)
    total = time.perf_counter() - began
    stats = pstats.Stats(profile).stats  # (file, line, name) → (calls, primitive calls, own, cumulative, ...)
    cumulative = {}  # svd: the outermost of the nested backend / scipy svd wrappers
    for (path, _, name), (_, _, _, cum, _) in stats.items():
        if path.endswith("ridge.py") or name == "svd":
            cumulative[name] = max(cumulative.get(name, 0.0), cum)
    print(f"fit: {total:.1f} s")
    for name in STIMULUS_SIDE + VOXEL_SIDE:
        side = "stimulus side" if name in STIMULUS_SIDE else "voxel side"
        print(f"  {name} ({side}): {cumulative[name]:.2f} s ({100 * cumulative[name] / total:.1f} %)")
    rest = total - sum(cumulative[name] for name in ("stimulus_side",) + VOXEL_SIDE)
    print(f"  refit products and transfers (voxel side): {rest:.2f} s ({100 * rest / total:.1f} %)")


if __name__ == "__main__":
    main()
