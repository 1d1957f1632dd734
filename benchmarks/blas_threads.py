"""An SVD, a product and an eigendecomposition at the demo's size (1270 × 1088 float32) on 1 and on 2 BLAS
threads, each in a fresh process (the thread count is read at import): why decode and encode run on one thread
(factorise runs on two: its window's decoders wait for it). Prints the seconds and a digest of the results (the
bits differ between thread counts).

    python benchmarks/blas_threads.py
"""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import hashlib, time
import numpy as np, scipy.linalg as la
rng = np.random.default_rng(0)
X = rng.standard_normal((1270, 1088)).astype(np.float32)
Y = rng.standard_normal((1270, 123)).astype(np.float32)
began = time.perf_counter()
U, s, Vt = la.svd(X, full_matrices=False)
K = X @ X.T
results = (U, s, Vt, U.T @ Y, K, *la.eigh(K[:600, :600]))
print(f"{time.perf_counter() - began:.2f} s, digest {hashlib.md5(b''.join(a.tobytes() for a in results)).hexdigest()}")
"""

for threads in ("1", "2"):
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    print(f"{threads} thread(s): {done.stdout.strip()}")
