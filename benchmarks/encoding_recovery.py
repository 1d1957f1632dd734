"""Encoding recovery on a finished demo run: for each subject × fold × feature, the planted voxels found at
q < 0.05 (hits), the signal-free voxels found (false discoveries, and their proportion among discoveries), and
the share of signal-free voxels at p < 0.05 under the paper's Gaussian null and under the clip-block
permutation null. Reads the planted truth, which no pipeline rule does.

    make demo && python benchmarks/encoding_recovery.py [--results results --truth data/synthetic/truth]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def recovery(results: Path, truth: Path) -> pd.DataFrame:
    records = []
    for path in sorted(results.glob("sub-*/*/*/encoding/voxels.parquet")):
        subject, fold, feature = path.parts[-5:-2]
        positions = pd.read_parquet(results / subject / "responses/voxels.parquet")
        planted = positions.merge(pd.read_parquet(truth / f"{subject}_voxels.parquet"), on=["i", "j", "k"],
                                  how="left", validate="one_to_one").planted.to_numpy()
        voxels = pd.read_parquet(path)
        found = voxels.q.to_numpy() < 0.05
        record = {"subject": subject, "fold": fold, "feature": feature, "planted": int(planted.sum()),
                  "hits": int((found & planted).sum()), "false": int((found & ~planted).sum()),
                  "false_discovery_proportion": round((found & ~planted).sum() / max(found.sum(), 1), 3),
                  "null_p05_gaussian": round(float((voxels.p_gaussian[~planted] < 0.05).mean()), 3)}
        if "p_permutation" in voxels:
            record["null_p05_permutation"] = round(float((voxels.p_permutation[~planted] < 0.05).mean()), 3)
        records.append(record)
    return pd.DataFrame(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--truth", type=Path, default=Path("data/synthetic/truth"))
    args = parser.parse_args()
    print(recovery(args.results, args.truth).to_string(index=False))


if __name__ == "__main__":
    main()
