"""The whole DAG on a full-size synthetic study: every rule's wall time and peak memory, and where the time goes.

Simulates ds003720 at its real size (`b2m simulate --full --gzip`: 5 subjects × 18 runs of 96×96×68×410,
gzipped as OpenNeuro serves them, 27 GB), then runs the Snakemake pipeline on it with the demo's
configuration (config/config.yaml: its features, folds and models) and only the paths, the five subjects and
the real config's target batch changed (the overlay this script writes). The run goes under py-spy
(`pip install py-spy`), which samples every b2m process's Python and native stack; samples are sorted into
numeric kernels (BLAS/LAPACK, element-wise math) and the rest (reading, writing, conversion, imports,
interpreter).

    python benchmarks/full_size.py --work /tmp/b2m-full-study          # simulate, run, tabulate
    python benchmarks/full_size.py --work /tmp/b2m-full-study --tables # tabulate again
    python benchmarks/full_size.py --work /tmp/b2m-full-study --drop-consumed  # go on with 39 GB less disk

Prints the machine, the per-rule table (from the rules' `benchmark:` files), the run's total, and the
per-rule share of time outside numeric kernels (from the profile). An interrupted run (Ctrl-C, which lets
py-spy write its profile) goes on where it stopped when the command is given again: each sitting keeps its
own Snakemake log and profile, the tables count the jobs that finished, and the total is the sum of the
sittings' wall times (first job's start to last job's end). `--drop-consumed` deletes the BOLD runs and the
cleaned scans (22 + 17 GB) once every subject's responses are windowed, for a disk that cannot hold the study,
its results and anything else at once: Snakemake does not rerun a finished job whose inputs are gone, so the
rest of the DAG runs as before (re-windowing with another window would need them again).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
GIB = 1024 ** 3
SUBJECTS = [f"sub-{i:03d}" for i in range(1, 6)]

# Sample categories, tested in this order on a sample's stack (its frames joined by ";").
CATEGORIES = {
    "imports": re.compile(r"_find_and_load|_call_with_frames_removed"),
    "reading and writing": re.compile(
        r"libz\.|zlib|gzip\.py|nibabel|pyarrow|libarrow|libparquet|_format_impl\.py|format\.py|b2m/io\.py|"
        r"soundfile|libsndfile|_io_|^(__libc_|__GI___libc_)?(p?read|p?write)(64)? \(libc|"
        r"^(fsync|fdatasync|open64|openat64) \(libc"),
    "BLAS/LAPACK": re.compile(r"openblas|libmkl|lapack|blas|libgomp|gemm|syevd|gesdd"),
    "conversion and copies": re.compile(r"cast|memcpy|memmove|memset|astype|copy"),
    "element-wise math": re.compile(
        r"_multiarray_umath|_umath_linalg|bottleneck|move_median|move_template|scipy|libtorch|_pocketfft"),
}
NUMERIC = ("BLAS/LAPACK", "element-wise math")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}"


def overlay(work: Path) -> dict:
    """What differs from config/config.yaml: the full-size study's paths, five subjects, batched targets."""
    data = work / "data"
    return {
        "results": str(work / "results"),
        "simulate": {"enabled": False},
        "dataset": {"bids_root": str(data / "ds003720"), "stimuli": str(data / "stimuli"),
                    "captions": str(data / "captions.csv")},
        "subjects": SUBJECTS,
        "responses": {"mask": str(data / "atlas/cortex_mask.nii.gz"), "atlas": str(data / "atlas/atlas.nii.gz"),
                      "atlas_labels": str(data / "atlas/atlas.tsv")},
        "ridge": {"n_targets_batch": 20000},
        "reconstruction": {"corpus": {"sources": [{"path": str(data / "stimuli"), "layout": "gtzan"},
                                                  {"path": str(data / "corpus"), "layout": "gtzan"}]}},
    }


def drop_consumed(work: Path) -> None:
    """Delete each subject's BOLD runs and cleaned scans once all its windowed responses are written."""
    for subject in SUBJECTS:
        responses = work / "results" / subject / "responses"
        windows = list(responses.glob("window-*"))
        if not windows or not all((window / f"{split}.npy").exists() for window in windows
                                  for split in ("train", "test", "test_repeats")):
            sys.exit(f"--drop-consumed: {subject}'s responses are not all windowed yet; run without it first")
        consumed = [*sorted((work / "data/ds003720" / subject / "func").glob("*_bold.nii.gz")),
                    responses / "scans.npy"]
        freed = sum(path.stat().st_size for path in consumed if path.exists())
        for path in consumed:
            path.unlink(missing_ok=True)
        print(f"{subject}: deleted its BOLD runs and scans.npy ({freed / GIB:.1f} GiB)", flush=True)


def run(command: list[str], log: Path) -> float:
    """Run ``command`` from the repository with its output in ``log``; the wall seconds."""
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode
    if code:
        sys.exit(f"failed ({code}): {shlex.join(command)}; see {log}")
    return time.perf_counter() - start


def jobs_from_log(snakemake_log: Path) -> pd.DataFrame:
    """One row per job that finished: rule, benchmark file and the b2m command line (as the process saw it)."""
    rows, current, finished = {}, {}, set()
    for line in snakemake_log.read_text().splitlines():
        if match := re.match(r"(?:local)?rule (\w+):$", line):
            current = {"rule": match.group(1)}
        elif match := re.match(r"\s+(benchmark|jobid): (\S+)$", line):
            current[match.group(1)] = match.group(2)
        elif line.startswith("Shell command: ") and line != "Shell command: None" and current:  # None: `all`
            words = shlex.split(line.removeprefix("Shell command: "))
            start = words.index("-m") - 1 if "-m" in words else 0
            stop = next((i for i, w in enumerate(words) if w.startswith((">", "2>", "&>"))), len(words))
            rows[current["jobid"]] = {**current, "command": " ".join(words[start:stop])}
            current = {}
        elif match := re.match(r"Finished jobid: (\d+)", line):
            finished.add(match.group(1))
    jobs = pd.DataFrame([row for jobid, row in rows.items() if jobid in finished],
                        columns=["rule", "jobid", "benchmark", "command"])
    return jobs.drop(columns="jobid")


def elapsed_s(snakemake_log: Path) -> float:
    """A sitting's wall seconds: from its first job's start to its last finished job."""
    first = stamp = last_finished = None
    for line in snakemake_log.read_text().splitlines():
        if match := re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
        elif line.startswith("Finished jobid"):
            last_finished = stamp
    return (last_finished - first).total_seconds() if last_finished else 0.0


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, summed and longest wall time (s), peak RSS (GiB) and CPU time (s) from `benchmark:`."""
    measured = []
    for job in jobs.itertuples():
        path = Path(job.benchmark) if Path(job.benchmark).is_absolute() else REPO / job.benchmark
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        measured.append({"rule": job.rule, "wall_s": bench["s"], "max_rss_gib": bench["max_rss"] / 1024,
                         "cpu_s": bench["cpu_time"]})
    frame = pd.DataFrame(measured)
    table = frame.groupby("rule").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"),
                                      longest_job_s=("wall_s", "max"), peak_rss_gib=("max_rss_gib", "max"),
                                      cpu_s=("cpu_s", "sum"))
    return table.sort_values("wall_s", ascending=False)


def categorise(stack: str) -> str:
    for name, pattern in CATEGORIES.items():
        if any(pattern.search(frame) for frame in stack.split(";")):
            return name
    return "interpreter and other"


PROCESS = re.compile(r'process \d+:"(.*?)";')


def profile_table(profiles: list[Path], jobs: pd.DataFrame, rate: float) -> pd.DataFrame:
    """Per rule: profiled seconds of the b2m processes' main threads, and each category's share (%). A raw
    py-spy line is its processes (``process <pid>:"<command line>";``, outermost first), the stack, a count."""
    rule_of = dict(zip(jobs["command"], jobs["rule"]))
    seconds: dict[str, Counter] = defaultdict(Counter)
    for line in (line for profile in profiles for line in profile.read_text().splitlines()):
        commands, position = [], 0
        while match := PROCESS.match(line, position):
            commands.append(match.group(1))
            position = match.end()
        stack, _, count = line[position:].rpartition(" ")
        words = commands[-1].split() if commands else []
        rule = rule_of.get(" ".join(words[words.index("-m") - 1:])) if "-m" in words else None
        if rule is not None and "threading.py" not in stack:
            seconds[rule][categorise(stack)] += int(count) / rate
    table = pd.DataFrame(seconds).T.fillna(0.0)
    table = table[[name for name in [*CATEGORIES, "interpreter and other"] if name in table]]
    total = table.sum(axis=1)
    shares = table.div(total, axis=0) * 100
    shares.insert(0, "profiled_s", total)
    shares["outside_numeric_%"] = 100 - shares[[c for c in NUMERIC if c in shares]].sum(axis=1)
    return shares.sort_values("profiled_s", ascending=False)


def markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """``table`` as a Markdown table: integer columns as integers, the others with ``digits`` decimals."""
    columns = [table[c].map(str) if pd.api.types.is_integer_dtype(table[c]) else table[c].map(f"{{:.{digits}f}}".format)
               for c in table.columns]
    lines = ["| " + " | ".join([table.index.name or "rule", *table.columns]) + " |",
             "|" + "---|" * (len(table.columns) + 1)]
    lines += ["| " + " | ".join([str(name), *cells]) + " |" for name, *cells in zip(table.index, *columns)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/b2m-full-study"),
                        help="where the study (data/), the results and the logs go (about 60 GB)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rate", type=float, default=10, help="py-spy samples per second")
    parser.add_argument("--tables", action="store_true", help="only tabulate the run's sittings so far")
    parser.add_argument("--drop-consumed", action="store_true",
                        help="first delete the BOLD runs and scans.npy of subjects whose responses are windowed")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}", flush=True)
    if not args.tables:
        if args.drop_consumed:
            drop_consumed(work)
        elif not (work / "data/truth/truth.json").exists():  # the simulation's last file
            seconds = run([sys.executable, "-m", "b2m", "simulate", str(work / "data"), "--full", "--gzip",
                           "--jobs", str(args.cores)], work / "simulate.log")
            print(f"b2m simulate --full --gzip --jobs {args.cores}: {seconds:.0f} s", flush=True)
        config = work / "full_size.yaml"
        config.write_text(yaml.safe_dump(overlay(work), sort_keys=False))
        py_spy = shutil.which("py-spy") or sys.exit("py-spy is not installed: pip install py-spy")
        sitting = len(list(work.glob("snakemake.*.log"))) + 1
        snakemake = [str(Path(sys.executable).with_name("snakemake")), "--profile", "profiles/local",
                     "--cores", str(args.cores), "--configfile", "config/config.yaml", str(config)]
        # An interrupted sitting leaves Snakemake's lock; this script is the only Snakemake on its results.
        run([*snakemake, "--unlock"], work / "unlock.log")
        log = work / f"snakemake.{sitting}.log"
        run([py_spy, "record", "--native", "--idle", "--subprocesses", "--rate", str(args.rate), "--format", "raw",
             "--output", str(work / f"profile.{sitting}.txt"), "--", *snakemake], log)
        if "steps (100%) done" not in log.read_text():  # py-spy exits 0 whatever Snakemake did
            print(f"sitting {sitting} ended before the DAG was done (see {log}); the same command goes on")
    logs = sorted(work.glob("snakemake.*.log"))
    jobs = pd.concat([jobs_from_log(log) for log in logs], ignore_index=True)
    rules = rule_table(jobs)
    total = sum(elapsed_s(log) for log in logs)
    print(f"\nper rule ({len(jobs)} jobs in {len(logs)} sitting(s), {args.cores} cores):\n")
    print(markdown(rules.round(2), digits=2))
    print(f"\nthe run: {total:.0f} s wall ({total / 3600:.2f} h); jobs' summed wall {rules['wall_s'].sum():.0f} s; "
          f"largest peak RSS {rules['peak_rss_gib'].max():.2f} GiB ({rules['peak_rss_gib'].idxmax()})")
    profiles = sorted(work.glob("profile.*.txt"))
    if not profiles:
        print("\nno profile yet: py-spy writes a sitting's profile when the sitting ends")
        return
    shares = profile_table(profiles, jobs, args.rate)
    weights = shares["profiled_s"]
    overall = (shares.drop(columns="profiled_s").mul(weights, axis=0).sum() / weights.sum()).to_frame("all rules").T
    overall.insert(0, "profiled_s", weights.sum())
    print("\nwhere each rule's time goes (% of its profiled main-thread time):\n")
    print(markdown(pd.concat([shares, overall])))


if __name__ == "__main__":
    main()
