"""The k-shot curve of the second demo: each subject left out of the pooled-aligned decoder in turn, aligned to the
other subjects' shared space from the first m minutes of its training runs (m = 0: zero-shot, anatomical),
identification accuracy on its test fold beside its own full-data whole-mask decoder, per feature space and level.

The second demo (config/decoders.yaml over config/config.yaml, `decoding.pooled.kshot_minutes` on) is run by
Snakemake in the repository unless ``--no-run``; the table is read from its results/summary/kshot.parquet and
printed as Markdown (BENCHMARKS.md's "k-shot").

    python benchmarks/kshot_curve.py [--cores 1] [--no-run]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pandas as pd
import yaml

from b2m.layout import Layout
from full_size import REPO, machine

CONFIGS = [REPO / "config/config.yaml", REPO / "config/decoders.yaml"]


def run_demo(cores: int) -> float:
    """The second demo's DAG, run in the repository; its wall time (s)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--directory", str(REPO),
                    "--snakefile", str(REPO / "Snakefile"), "--configfile", *map(str, CONFIGS)], check=True)
    return time.perf_counter() - started


def point_label(row) -> str:
    """A column of the curve: the zero-shot and full-data ends marked, the k-shot points by their minutes."""
    if row.point == "full-data":
        return f"full data ({row.minutes:g} min, own decoder)"
    return "0 min (zero-shot)" if row.point == "zero-shot" else f"{row.minutes:g} min"


def curve(table: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per feature × subject, identification accuracy [95 % CI] at each point (n/a: not available, its reason
    below the table), in the points' order."""
    rows = table[(table.metric == "identification_accuracy") & (table.level == level)].copy()
    rows["column"] = [point_label(row) for row in rows.itertuples()]
    rows["cell"] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(v) else "n/a"
                    for v, lo, hi in zip(rows.value, rows.ci_low, rows.ci_high)]
    order = list(dict.fromkeys(rows.sort_values(["point", "minutes"], key=lambda c: c.map(
        {"zero-shot": 0, "k-shot": 1, "full-data": 2}) if c.name == "point" else c).column))
    return rows.pivot(index=["feature", "subject"], columns="column", values="cell")[order]


def chance(table: pd.DataFrame) -> pd.DataFrame:
    """The measured chance (mean ± sd over the points made) per feature × level."""
    rows = table[(table.metric == "identification_accuracy") & table.value.notna()]
    return rows.groupby(["feature", "level"])[["chance_mean", "chance_sd"]].mean().round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--no-run", action="store_true", help="read the results of an earlier run")
    args = parser.parse_args()
    wall = None if args.no_run else run_demo(args.cores)
    config = yaml.safe_load(CONFIGS[1].read_text())
    table = pd.read_parquet(REPO / Layout(config["results"]).summary("kshot"))
    print(f"machine: {machine()}" + (f"; the second demo's DAG: {wall:.0f} s on {args.cores} core(s)" if wall else ""))
    print(f"kshot_minutes: {config['decoding']['pooled']['kshot_minutes']}\n")
    for level in ("clip", "window"):
        print(f"{level} level:\n")
        print(curve(table, level).reset_index().to_markdown(index=False) + "\n")
    refused = table.loc[table.reason.fillna("") != "", ["subject", "feature", "minutes", "reason"]].drop_duplicates()
    print("not available:\n" + (refused.to_markdown(index=False) if len(refused) else "none") + "\n")
    print("measured chance (mean over the points):\n\n" + chance(table).reset_index().to_markdown(index=False))


if __name__ == "__main__":
    main()
