"""Peak memory and wall time of response preparation on a full-size ds003720 subject.

Simulates one subject at the real size (12 + 6 runs of 96×96×68×410 int16, uncompressed .nii, 490 MiB
a run), then runs `b2m clean-bold` and `b2m window-responses` under /usr/bin/time -v and reports their
peak resident memory against the size of one run and of the whole subject held as float32 (the
baseline a load-everything approach would need).

    python benchmarks/prepare_memory.py --workdir /tmp/b2m-full [--mask compute]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024 ** 3


def timed(command: list[str]) -> tuple[float, float]:
    """Run ``command`` under /usr/bin/time -v; return (wall seconds, peak RSS in GiB)."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return wall, peak_kib * 1024 / GIB


def stage_times(bold: Path, mask_path: str) -> dict[str, float]:
    """Seconds spent reading, detrending and z-scoring one run, in this process."""
    import nibabel as nib
    import pandas as pd

    from b2m.data.responses import CleaningOptions, compute_mask, read_masked_run, remove_drift, zscore_scans

    mask = compute_mask(bold) if mask_path == "compute" else nib.load(mask_path).get_fdata() > 0
    times = {}
    start = time.perf_counter()
    data = read_masked_run(bold, mask)
    times["read (baseline)"] = time.perf_counter() - start
    start = time.perf_counter()
    pd.DataFrame(data).rolling(161, center=True, min_periods=1).median()
    times["240 s running median, pandas rolling (reference)"] = time.perf_counter() - start
    start = time.perf_counter()
    remove_drift(data, 1.5, CleaningOptions())
    times["240 s running median, b2m (bottleneck)"] = time.perf_counter() - start
    start = time.perf_counter()
    zscore_scans(data, slice(10, data.shape[0]))
    times["z-score"] = time.perf_counter() - start
    return times


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/out/full"))
    parser.add_argument("--mask", choices=["cortex", "compute"], default="cortex",
                        help="the simulated cortex mask (about 120k voxels) or nilearn's computed brain mask")
    parser.add_argument("--keep", action="store_true", help="keep the 9 GB study afterwards")
    args = parser.parse_args()
    b2m = [sys.executable, "-m", "b2m"]
    study, out = args.workdir / "study", args.workdir / "results"
    if not (study / "ds003720/sub-001/func/sub-001_task-Test_run-06_bold.nii").exists():
        wall, peak = timed([*b2m, "simulate", str(study), "--full", "--subjects", "1"])
        print(f"simulate --full (1 subject): {wall:.0f} s, peak {peak:.2f} GiB")
    bids = ["--bids", str(study / "ds003720")]
    mask = str(study / "atlas/cortex_mask.nii.gz") if args.mask == "cortex" else "compute"
    clean_wall, clean_peak = timed([*b2m, "clean-bold", *bids, "--subject", "sub-001", "--out", str(out / "clean"),
                                    "--mask", mask, "--atlas", str(study / "atlas/atlas.nii.gz")])
    window_wall, window_peak = timed([*b2m, "window-responses", *bids, "--subject", "sub-001", "--clean",
                                      str(out / "clean"), "--out", str(out / "window-1.5s")])
    import numpy as np

    n_voxels = np.load(out / "clean/scans.npy", mmap_mode="r").shape[1]
    run_float32 = 96 * 96 * 68 * 410 * 4 / GIB
    subject_float32 = 18 * run_float32
    print(f"machine: {machine()}")
    print(f"voxels in mask: {n_voxels}")
    print("| step | wall (s) | peak RSS (GiB) | peak / one run as float32 | peak / whole subject as float32 |")
    print("|---|---|---|---|---|")
    for name, wall, peak in (("clean-bold (18 runs)", clean_wall, clean_peak),
                             ("window-responses (1.5 s)", window_wall, window_peak)):
        print(f"| {name} | {wall:.0f} | {peak:.2f} | {peak / run_float32:.2f} | {peak / subject_float32:.3f} |")
    times = stage_times(study / "ds003720/sub-001/func/sub-001_task-Training_run-01_bold.nii", mask)
    print("| one run of clean-bold | seconds | ratio to reading the run |")
    print("|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} | {seconds / times['read (baseline)']:.1f} |")
    if not args.keep:
        shutil.rmtree(args.workdir)


if __name__ == "__main__":
    main()
