"""Exact retrieval at FMA scale: 600 queries (the test clips' windows of one subject) against 1,000,000 corpus
vectors of 512-d, with b2m's blocked top-k against a baseline in the same process: one full similarity matrix
(queries × corpus) and a top-k by ``argpartition`` then sort.

    python benchmarks/retrieval_scale.py [--corpus 1000000] [--queries 600] [--k 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np

from b2m.reconstruct.retrieval import top_k_cosine, unit_rows


def baseline(queries: np.ndarray, corpus: np.ndarray, k: int) -> np.ndarray:
    similarity = unit_rows(queries) @ unit_rows(corpus).T
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((args.corpus, args.dims), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dims), dtype=np.float32)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.queries} queries × {args.corpus:,} corpus vectors × {args.dims}-d, top-{args.k}")
    began = time.perf_counter()
    index, _ = top_k_cosine(queries, corpus, args.k)
    blocked = time.perf_counter() - began
    rss_blocked = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    began = time.perf_counter()
    expected = baseline(queries, corpus, args.k)
    full = time.perf_counter() - began
    rss_full = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"blocked top-k: {blocked:.1f} s (peak RSS so far {rss_blocked:.2f} GiB)")
    print(f"baseline, full matrix: {full:.1f} s (peak RSS so far {rss_full:.2f} GiB)")
    print(f"ratio baseline / blocked: {full / blocked:.2f}; same neighbours: {np.array_equal(index, expected)}")


if __name__ == "__main__":
    main()
