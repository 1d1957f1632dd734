"""Where an encoding fit's time goes: cProfile of himalaya ``RidgeCV`` as b2m runs it (numpy backend, 17 alphas,
5 folds grouped by run) on random float32 data of the real training size, split into the stimulus side (the SVDs
of the training features, the same for every subject) and the voxel side (everything that scales with voxels).

    python benchmarks/ridge_profile.py [--samples 4800] [--dims 512] [--voxels 10000]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import time

import numpy as np
from himalaya.backend import set_backend
from himalaya.ridge import RidgeCV
from sklearn.model_selection import GroupKFold

# himalaya and scipy functions of the fit, by what they scale with
STIMULUS_SIDE = ("svd",)
VOXEL_SIDE = ("solve_group_ridge_random_search", "l2_neg_loss", "_check_finite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4800)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--voxels", type=int, default=10_000)
    args = parser.parse_args()
    set_backend("numpy")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.samples, args.dims), dtype=np.float32)
    Y = 0.05 * X @ rng.standard_normal((args.dims, args.voxels), dtype=np.float32)
    Y += rng.standard_normal(Y.shape, dtype=np.float32)
    groups = np.repeat(np.arange(12), args.samples // 12 + 1)[:args.samples]
    cv = list(GroupKFold(5).split(X, groups=groups))
    model = RidgeCV(alphas=np.logspace(-1, 7, 17), cv=cv, solver_params={"n_targets_batch": 20000})
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}; X {args.samples} × {args.dims}, Y {args.samples} × {args.voxels:,}")
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.runcall(model.fit, X, Y)
    total = time.perf_counter() - began
    stats = pstats.Stats(profile).stats  # (file, line, name) → (calls, primitive calls, own time, cumulative, ...)
    own = {}
    for (_, _, name), (_, _, own_time, _, _) in stats.items():
        own[name] = own.get(name, 0.0) + own_time
    print(f"fit: {total:.1f} s")
    for name in STIMULUS_SIDE + VOXEL_SIDE:
        side = "stimulus side" if name in STIMULUS_SIDE else "voxel side"
        print(f"  {name} ({side}): {own.get(name, 0.0):.1f} s ({100 * own.get(name, 0.0) / total:.1f} %)")


if __name__ == "__main__":
    main()
