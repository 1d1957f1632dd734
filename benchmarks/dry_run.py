"""The dry run of the real study (config/ds003720.yaml, 5 subjects, on the real ds003720 metadata of shared/real)
with every dataset file a job reads among its inputs, against a baseline revision of the workflow in the same
process: how much listing the files (each run's events, sidecar and image, the stimuli's audio) costs a plan.

    python benchmarks/dry_run.py [--baseline e397b51] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("B2M_SHARED_REAL", REPO.parent / "shared" / "real"))


def study_config(work: Path, tree: Path = REPO) -> Path:
    """``tree``'s ds003720.yaml pointed at the real metadata, stimuli and captions, and an FMA tree (empty unless
    ``work``/fma holds one)."""
    (work / "fma/fma_large").mkdir(parents=True, exist_ok=True)
    (work / "fma/tracks.csv").touch()
    config = yaml.safe_load((tree / "config/ds003720.yaml").read_text())
    config["dataset"].update(bids_root=str(REAL / "ds003720"), stimuli=str(REAL / "gtzan-sample"),
                             captions=str(REAL / "brain2music-captions/brain2music-captions.csv"))
    config["reconstruction"]["corpus"]["sources"] = [{"path": str(work / "fma/fma_large"), "layout": "fma",
                                                      "tracks_csv": str(work / "fma/tracks.csv")}]
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def job_counts(output: str) -> Counter:
    """Rule → jobs of a dry run's job stats table."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0].splitlines()[3:]
    return Counter({name: int(count) for name, count in (line.split() for line in table) if name != "total"})


def dry_run(tree: Path, work: Path, config: Path) -> tuple[float, int, Counter]:
    """Seconds of one `snakemake -n` of the study with the workflow of ``tree``, the number of input files and the
    jobs of each rule."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(tree / "Snakefile"),
                           "--directory", str(work), "--configfile", str(config), "--profile",
                           str(tree / "profiles/slurm")], capture_output=True, text=True, cwd=work)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"dry run failed in {tree}:\n{done.stderr[-2000:]}")
    inputs = sum(len(line.split(":", 1)[1].split(", ")) for line in done.stdout.splitlines()
                 if line.strip().startswith("input:"))
    return seconds, inputs, job_counts(done.stdout)


def compare(baseline: str, repeats: int, prepare=lambda work: None) -> dict[str, list]:
    """``dry_run``'s results, ``repeats`` times, with the workflow of revision ``baseline`` and with the current one
    (``prepare(work)`` readies each work folder before its config is written)."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tree = scratch / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), baseline],
                       check=True, capture_output=True)
        try:
            results = {}
            for name, workflow in (("baseline", tree), ("current", REPO)):
                work = scratch / f"work-{name}"
                work.mkdir()
                prepare(work)
                config = study_config(work, workflow)
                results[name] = [dry_run(workflow, work, config) for _ in range(repeats)]
            return results
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="e397b51", help="revision whose rules take the dataset folder only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    seconds = {}
    for name, runs in compare(args.baseline, args.repeats).items():
        seconds[name] = statistics.median(s for s, _, _ in runs)
        print(f"{name}: {seconds[name]:.2f} s (median of {args.repeats}), {runs[0][1]} input files")
    print(f"current / baseline: {seconds['current'] / seconds['baseline']:.2f}")


if __name__ == "__main__":
    main()
