"""The whole-mask decoder against ``whole-mask-selected`` (voxel selection inside the training folds) on the second
demo: identification accuracy per subject (window and clip level, 95 % bootstrap CIs, measured chance) on the test
fold, each subject's paired difference on the same test items, the candidate the inner CV chose and the decode
jobs' times. Only the decode jobs of the subjects asked (and what they need) run, in ``--work``, with
config/config.yaml, config/decoders.yaml and benchmarks/voxel_selection.yaml.

    python benchmarks/voxel_selection.py [--work .] [--cores 1] [--subjects sub-001 sub-005]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from b2m.layout import Layout
from decoder_comparison import comparison, paired_differences, predictions
from full_size import REPO, machine

CONFIGS = [REPO / "config/config.yaml", REPO / "config/decoders.yaml", REPO / "benchmarks/voxel_selection.yaml"]
FEATURE = "acoustic"


def run_decodes(work: Path, layout: Layout, subjects: list[str], cores: int) -> None:
    """The test fold's decode jobs of ``subjects`` (and what they need), by Snakemake in ``work``."""
    targets = [str(layout.decoding(s, "test", FEATURE).scores) for s in subjects]
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--directory", str(work),
                    "--snakefile", str(REPO / "Snakefile"), *targets, "--configfile", *map(str, CONFIGS)], check=True)


def choices(work: Path, results: str, subjects: list[str]) -> pd.DataFrame:
    """Per subject: the candidate the inner CV chose, the voxels kept of the mask, and the decode job's time (s)."""
    records = []
    for subject in subjects:
        logs = work / results / "logs" / subject / "test" / FEATURE
        line = re.search(r"candidate (\S+) chosen by the inner CV, (\d+) of (\d+) voxels; scores (.*)",
                         (logs / "decode.log").read_text())
        records.append({"subject": subject, "chosen": line[1], "voxels kept": f"{line[2]} of {line[3]}",
                        "inner CV scores (l2)": line[4],
                        "decode job (s)": pd.read_csv(logs / "decode.benchmark.tsv", sep="\t")["s"].iloc[-1]})
    return pd.DataFrame(records).set_index("subject")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("."))
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--subjects", nargs="+", default=["sub-001", "sub-002", "sub-003", "sub-004", "sub-005"])
    args = parser.parse_args()
    results = yaml.safe_load(CONFIGS[-1].read_text())["results"]
    layout = Layout(str(args.work / results))
    print(f"machine: {machine()}")
    run_decodes(args.work, layout, args.subjects, args.cores)
    scores = pd.concat([pd.read_parquet(layout.decoding(s, "test", FEATURE).scores) for s in args.subjects])
    print(comparison(scores).to_markdown())
    print(f"\n{FEATURE}: paired differences from whole-mask on the same test items")
    print(paired_differences(predictions(layout, args.subjects, FEATURE)).to_markdown())
    print()
    print(choices(args.work, results, args.subjects).to_markdown())


if __name__ == "__main__":
    main()
