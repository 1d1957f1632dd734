"""Where a finished demo's time went: per rule, the jobs, the sum and mean of their wall times and their CPU time,
from the benchmark tables Snakemake wrote (``results/logs/**/*.benchmark.tsv``).

    python benchmarks/demo_rules.py [--tree .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    rows = [{"rule": path.name.removesuffix(".benchmark.tsv"), "s": table["s"].iloc[-1],
             "cpu": table["cpu_time"].iloc[-1]}
            for path in (args.tree / "results/logs").rglob("*.benchmark.tsv")
            for table in [pd.read_csv(path, sep="\t")]]
    jobs = pd.DataFrame(rows)
    by_rule = jobs.groupby("rule").agg(jobs=("s", "size"), wall_s=("s", "sum"), mean_s=("s", "mean"),
                                       cpu_s=("cpu", "sum")).sort_values("wall_s", ascending=False)
    print(by_rule.round(1).to_markdown())
    print(f"\nall jobs: wall {jobs.s.sum():.1f} s, CPU {jobs.cpu.sum():.1f} s")


if __name__ == "__main__":
    main()
