"""Two encodings of the same responses compared against the tolerance of a change of arithmetic (issue 37): r
within 1e-5 of each other, and the counts of voxels at q < 0.05 within 1 %. Either two voxel tables
(``encode_profile.py --save``) or two results trees, whose encoding voxel tables (``*/encoding/voxels.parquet``)
are paired by path.

    python benchmarks/compare_encodings.py BEFORE AFTER
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

R_TOLERANCE, COUNT_TOLERANCE = 1e-5, 0.01


def pairs(before: Path, after: Path) -> dict[str, tuple[Path, Path]]:
    """The voxel tables to compare: the two files, or each encoding of ``before``'s tree with ``after``'s."""
    if before.is_file():
        return {before.name: (before, after)}
    return {str(path.relative_to(before)): (path, after / path.relative_to(before))
            for path in sorted(before.rglob("encoding/voxels.parquet"))}


def compared(before: Path, after: Path) -> dict:
    """Largest |Δr|, voxels past the r tolerance, and the q < 0.05 counts of two voxel tables."""
    one, two = (pd.read_parquet(path) for path in (before, after))
    gap = np.abs(one.r.to_numpy() - two.r.to_numpy())
    counts = [int((table.q < 0.05).sum()) for table in (one, two)]
    return {"voxels": len(one), "max |Δr|": float(gap.max()), f"|Δr| > {R_TOLERANCE:g}": int((gap > R_TOLERANCE).sum()),
            "q<0.05 before": counts[0], "q<0.05 after": counts[1],
            "count change": abs(counts[1] - counts[0]) / max(counts[0], 1),
            "significance changed": int(((one.q < 0.05) != (two.q < 0.05)).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    table = pd.DataFrame({name: compared(*paths) for name, paths in pairs(args.before, args.after).items()}).T
    print(table.to_markdown())
    within = (table["max |Δr|"] <= R_TOLERANCE) & (table["count change"] <= COUNT_TOLERANCE)
    print(f"\nwithin the tolerance (r within {R_TOLERANCE:g}, q < 0.05 counts within {COUNT_TOLERANCE:.0%}): "
          f"{int(within.sum())} of {len(table)}")


if __name__ == "__main__":
    main()
