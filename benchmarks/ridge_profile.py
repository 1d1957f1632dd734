"""Where an encoding fit's time goes: cProfile of b2m's ``PrimalRidgeCV`` as the encode rule runs it (17 alphas,
5 folds grouped by run, ``n_targets_batch`` 20,000) on random float32 data of the real training size, split
into the stimulus side (``stimulus_side``: the SVDs of the features and the validation predictors, the same
for every subject) and the voxel side (everything that scales with voxels).

    python benchmarks/ridge_profile.py [--samples 4800] [--dims 512] [--voxels 10000] [--backend cpu]
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
from b2m.models.ridge import PrimalRidgeCV

# b2m.models.ridge functions of the fit, by what they scale with
STIMULUS_SIDE = ("stimulus_side",)
VOXEL_SIDE = ("validation_scores", "best_alpha_indices")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4800)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--voxels", type=int, default=10_000)
    parser.add_argument("--backend", default="cpu", help="himalaya backend (b2m's names: cpu, numpy, torch, ...)")
    args = parser.parse_args()
    backend = use_backend(args.backend, "primal")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.samples, args.dims), dtype=np.float32)
    Y = 0.05 * X @ rng.standard_normal((args.dims, args.voxels), dtype=np.float32)
    Y += rng.standard_normal(Y.shape, dtype=np.float32)
    groups = np.repeat(np.arange(12), args.samples // 12 + 1)[:args.samples]
    cv = list(GroupKFold(5).split(X, groups=groups))
    model = PrimalRidgeCV(alphas=np.logspace(-1, 7, 17), cv=cv, solver_params={"n_targets_batch": 20000})
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, backend {backend}; X {args.samples} × {args.dims}, Y {args.samples} × "
          f"{args.voxels:,}")
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.runcall(model.fit, X, Y)
    total = time.perf_counter() - began
    stats = pstats.Stats(profile).stats  # (file, line, name) → (calls, primitive calls, own, cumulative, ...)
    cumulative = {name: cum for (path, _, name), (_, _, _, cum, _) in stats.items() if path.endswith("ridge.py")}
    print(f"fit: {total:.1f} s")
    for name in STIMULUS_SIDE + VOXEL_SIDE:
        side = "stimulus side" if name in STIMULUS_SIDE else "voxel side"
        print(f"  {name} ({side}): {cumulative[name]:.2f} s ({100 * cumulative[name] / total:.1f} %)")
    rest = total - sum(cumulative[name] for name in STIMULUS_SIDE + VOXEL_SIDE)
    print(f"  refit products and transfers (voxel side): {rest:.2f} s ({100 * rest / total:.1f} %)")


if __name__ == "__main__":
    main()
