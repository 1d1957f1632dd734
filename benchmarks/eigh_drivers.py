"""The eigendecomposition of a linear kernel the size of a full-size inner split (3811 training windows of
ds003720's 4764, float32) by each symmetric eigensolver at hand, in one process: scipy's default LAPACK driver
(syevr, what himalaya's numpy backend calls; the baseline), scipy's divide-and-conquer driver (syevd, what
b2m's numpy backend calls, ``b2m.models.numpy_backend.eigh``), numpy's ``eigh`` and torch's, with the
eigenvalues' largest difference from the baseline's.

    python benchmarks/eigh_drivers.py [--rows 3811] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3811)
    parser.add_argument("--threads", default="2")
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = args.threads  # before numpy is imported
    import numpy as np
    import scipy.linalg as linalg

    X = np.random.default_rng(0).standard_normal((args.rows, 6000)).astype(np.float32)
    K = X @ X.T
    solvers = {"scipy syevr (default)": lambda: linalg.eigh(K)[0],
               "scipy syevd (driver='evd')": lambda: linalg.eigh(K, driver="evd")[0],
               "numpy eigh": lambda: np.linalg.eigh(K)[0]}
    try:
        import torch

        torch.set_num_threads(int(args.threads))
        solvers["torch eigh"] = lambda: torch.linalg.eigh(torch.from_numpy(K))[0].numpy()
    except ImportError:
        pass
    print(f"{args.rows} × {args.rows} float32 kernel, {args.threads} threads")
    baseline = None
    for name, solve in solvers.items():
        began = time.perf_counter()
        values = solve()
        seconds = time.perf_counter() - began
        baseline = baseline if baseline is not None else (seconds, values)
        print(f"{name}: {seconds:.2f} s ({seconds / baseline[0]:.3f} of syevr's), eigenvalues within "
              f"{np.abs(values - baseline[1]).max() / np.abs(baseline[1]).max():.1e} of syevr's (relative)")


if __name__ == "__main__":
    main()
