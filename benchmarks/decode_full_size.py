"""The decode of one full-size subject × fold for the demo's two spaces (acoustic, genre): a baseline checkout's
decode jobs against this tree's factorise and decode jobs on the same responses, and the scores of the two
compared; with ``--rois N`` this tree's again with the subject's ROIs split into N parcels (148: the real
Destrieux atlas's count).

Prepared once in ``--work``: ``b2m simulate --full --subjects 1`` (uncompressed), then this tree's pipeline up
to the windowed responses and the two spaces' features, with the demo's configuration and ``full_size.py``'s
full-size overlay cut to one subject and the test fold. Each timed run is one tree's Snakemake run (its own
rules, threads and resources, on ``--cores``) in its own copy of those results (hard links, without Snakemake's
metadata), so only the decoding jobs are missing; each ends at ``decode`` (``--until``).

    python benchmarks/decode_full_size.py --work /tmp/b2m-decode-full --baseline /work/base
    python benchmarks/decode_full_size.py --work /tmp/b2m-decode-full --runs rois --rois 148

Prints the wall time of every run made so far in ``--work`` (``--runs`` with none: only that), each job's (from
its ``benchmark:`` file: wall s, peak RSS, CPU s), the size of the factorisation, and the largest difference
between the two trees' scores per model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from full_size import GIB, REPO, machine, markdown, overlay

SUBJECT, FOLD, SPACES = "sub-001", "test", ("acoustic", "genre")


def study_overlay(work: Path, results: Path) -> dict:
    """``full_size.overlay`` for one subject and the test fold, writing to ``results``."""
    return {**overlay(work), "results": str(results), "subjects": [SUBJECT], "folds": [FOLD]}


def snakemake(tree: Path, work: Path, results: Path, *args: str) -> float:
    """A Snakemake run of ``tree``'s workflow (its own venv's b2m) on the study in ``work``, writing ``results``;
    its wall seconds. The log goes beside ``results``."""
    config = results.parent / "overlay.yaml"
    config.write_text(yaml.safe_dump(study_overlay(work, results)))
    command = [str(tree / ".venv/bin/python"), "-m", "snakemake", "--snakefile", str(tree / "Snakefile"),
               "--configfile", str(tree / "config/config.yaml"), str(config), *args]
    env = {**os.environ, "PATH": f"{tree / '.venv/bin'}:{os.environ['PATH']}"}
    start = time.perf_counter()
    with open(results.parent / "snakemake.log", "w") as log:
        code = subprocess.run(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if code:
        sys.exit(f"snakemake failed ({code}) in {tree}; see {results.parent / 'snakemake.log'}")
    return time.perf_counter() - start


def prepare(work: Path, cores: int) -> Path:
    """The simulated subject and this tree's results up to the responses and features (made once)."""
    data, results = work / "data", work / "prepared" / "results"
    if not (data / "ds003720").exists():
        subprocess.run([str(REPO / ".venv/bin/b2m"), "simulate", "--full", "--subjects", "1", "--no-gzip",
                        "--jobs", str(cores), str(data)], check=True)
    if not list(results.glob(f"{SUBJECT}/responses/window-*/train.npy")):
        results.parent.mkdir(parents=True, exist_ok=True)
        wall = snakemake(REPO, work, results, "--cores", str(cores), "--until", "window_responses", "features")
        print(f"prepared the responses and features in {wall:.0f} s", flush=True)
    return results


def rewrite_keeping_time(path: Path, table: pd.DataFrame) -> None:
    """Write ``table`` to the Parquet file ``path`` anew (not through its hard links) with the old file's
    modification time, so that Snakemake sees nothing upstream change."""
    stamp = path.stat()
    path.unlink()
    table.to_parquet(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def relabel(results: Path, n_parcels: int) -> None:
    """Split the subject's ROIs into ``n_parcels`` parcels, each ROI into parcels in proportion to its voxels (runs
    of consecutive voxels of the mask's order), in the voxel table (``rewrite_keeping_time``)."""
    path = results / SUBJECT / "responses" / "voxels.parquet"
    voxels = pd.read_parquet(path)
    labelled = voxels["roi"].fillna(0).to_numpy(dtype=int)
    rois, sizes = np.unique(labelled[labelled > 0], return_counts=True)
    shares = np.maximum(1, np.round(n_parcels * sizes / sizes.sum()).astype(int))
    shares[np.argmax(shares)] += n_parcels - shares.sum()
    parcels, first = np.zeros_like(labelled), 1
    for roi, share in zip(rois, shares):
        members = np.flatnonzero(labelled == roi)
        for k, chunk in enumerate(np.array_split(members, share)):
            parcels[chunk] = first + k
        first += share
    rewrite_keeping_time(path, voxels.assign(roi=parcels))
    print(f"{len(rois)} ROIs split into {first - 1} parcels of {sizes.sum() // (first - 1)} voxels on average")


def timed(name: str, tree: Path, work: Path, prepared: Path, cores: int, n_parcels: int | None = None) -> dict:
    """One tree's decoding of the subject × fold, in a fresh copy of the prepared results."""
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    subprocess.run(["cp", "-al", str(prepared), str(out / "results")], check=True)
    if n_parcels:
        relabel(out / "results", n_parcels)
    wall = snakemake(tree, work, out / "results", "--cores", str(cores), "--until", "decode")
    (out / "wall_s.txt").write_text(f"{wall}\n")
    return collected(work, name)


def collected(work: Path, name: str) -> dict:
    """A finished run: its wall time, each job's benchmark (wall s, peak RSS GiB, CPU s), its results folder."""
    results = work / name / "results"
    wall = float((work / name / "wall_s.txt").read_text())
    jobs = []
    for path in sorted((results / "logs" / SUBJECT / FOLD).rglob("*.benchmark.tsv")):
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        job = str(path.relative_to(results / "logs" / SUBJECT / FOLD)).removesuffix(".benchmark.tsv")
        jobs.append({"job": f"{name}: {job}", "wall_s": bench["s"], "max_rss_gib": bench["max_rss"] / 1024,
                     "cpu_s": bench["cpu_time"]})
    factors = sum(path.stat().st_size for path in results.rglob("factors.npz")) / GIB
    print(f"{name}: {wall:.1f} s for the decoding of {SUBJECT} × {FOLD}"
          + (f"; factors.npz {factors:.2f} GiB" if factors else ""), flush=True)
    return {"name": name, "wall_s": wall, "jobs": jobs, "results": results}


def score_differences(baseline: Path, candidate: Path) -> pd.DataFrame:
    """Per space and model both trees have: the largest absolute difference of any score (value, chance mean and
    sd, CI bounds, p) between the trees, and the window identification accuracy of each."""
    rows = []
    for space in SPACES:
        tables = [pd.read_parquet(root / SUBJECT / FOLD / space / "decoding" / "scores.parquet")
                  for root in (baseline, candidate)]
        keys = [c for c in tables[0].columns if not pd.api.types.is_numeric_dtype(tables[0][c])
                and c in tables[1].columns]
        merged = tables[0].merge(tables[1], on=keys, suffixes=("_baseline", "_new"))
        numeric = [c.removesuffix("_baseline") for c in merged.columns if c.endswith("_baseline")
                   and pd.api.types.is_numeric_dtype(merged[c])]
        for model, group in merged.groupby("model"):
            diff = max(float(np.nanmax(np.abs(group[f"{c}_baseline"] - group[f"{c}_new"]))) for c in numeric)
            accuracy = group[(group.level == "window") & (group.metric == "identification_accuracy")]
            rows.append({"decoder": f"{space} {model}", "scores": len(group), "largest_difference": diff,
                         "window_identification_baseline": float(accuracy.value_baseline.iloc[0]),
                         "window_identification_new": float(accuracy.value_new.iloc[0])})
    return pd.DataFrame(rows).set_index("decoder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/b2m-decode-full"))
    parser.add_argument("--baseline", type=Path, help="a checkout with its .venv, the tree before the change")
    parser.add_argument("--runs", nargs="*", choices=("baseline", "new", "rois"), default=["baseline", "new"],
                        help="runs to make now (none: only tabulate the runs made before)")
    parser.add_argument("--rois", type=int, default=148, help="parcels of the `rois` run")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    if "baseline" in args.runs and not args.baseline:
        parser.error("the baseline run needs --baseline")
    print(machine(), flush=True)
    prepared = prepare(args.work, args.cores)
    runs = {"baseline": lambda: timed("baseline", args.baseline, args.work, prepared, args.cores),
            "new": lambda: timed("new", REPO, args.work, prepared, args.cores),
            "rois": lambda: timed(f"new-{args.rois}-rois", REPO, args.work, prepared, args.cores, args.rois)}
    for name in args.runs:
        runs[name]()
    by_name = {path.parent.name: collected(args.work, path.parent.name)
               for path in sorted(args.work.glob("*/wall_s.txt"))}
    print(markdown(pd.DataFrame([job for run in by_name.values() for job in run["jobs"]]).set_index("job"), 2))
    if "baseline" in by_name and "new" in by_name:
        print(f"\nnew / baseline wall time: {by_name['new']['wall_s'] / by_name['baseline']['wall_s']:.3f}")
        print(markdown(score_differences(by_name["baseline"]["results"], by_name["new"]["results"]), 8))


if __name__ == "__main__":
    main()
