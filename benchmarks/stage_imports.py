"""Import time of every stage command of the demo: one job per stage of a finished `make demo`, run again with
``python -X importtime`` in a scratch copy of the results tree, its top-level imports summed.

    python benchmarks/stage_imports.py [--tree .] [--repeats 3]

``--tree`` is a checkout whose demo has run (its ``results/``, ``data/`` and ``.venv``): run it once in a
baseline checkout and once here to compare. Prints, per stage, the median over repeats of the import seconds and
of the whole command's seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

COMMAND = re.compile(r"^Shell command: (python -m b2m (\S+) .*)$")


def stage_commands(tree: Path) -> dict[str, str]:
    """One shell command of every b2m stage in the demo's DAG (a forced dry run), keyed by stage, in the order of
    the DAG (``preferred`` picks the job)."""
    listing = subprocess.run([str(tree / ".venv/bin/snakemake"), "--profile", "profiles/local", "-n", "-p",
                              "--forceall"], cwd=tree, capture_output=True, text=True,
                             check=True, env={**os.environ, "PATH": f"{tree / '.venv/bin'}:{os.environ['PATH']}"})
    commands = {}
    for line in listing.stdout.splitlines():
        match = COMMAND.match(line)
        if match and (match.group(2) not in commands or preferred(line) > preferred(commands[match.group(2)])):
            commands[match.group(2)] = match.group(1)
    # factorise's output is temporary (gone after the demo): it runs first, to make the one its decode job reads
    return dict(sorted(commands.items(), key=lambda item: item[0] != "factorise"))


def preferred(command: str) -> tuple[bool, bool]:
    """The job of a stage that is timed: sub-001's, on the test fold, where there is one."""
    return "sub-001" in command, "--fold test" in command


def import_seconds(stderr: str) -> float:
    """The sum of the cumulative times of the top-level imports in ``-X importtime`` output (s)."""
    total = 0
    for line in stderr.splitlines():
        if line.startswith("import time:") and not line.startswith("import time: self"):
            _, cumulative, name = line[len("import time:"):].split("|")
            if not name.startswith("  "):  # one space follows the bar; nested imports are indented further
                total += int(cumulative)
    return total / 1e6


def timed_run(command: str, scratch: Path, tree: Path) -> tuple[float, float]:
    """(import s, wall s) of one stage command run in ``scratch`` with -X importtime."""
    words = shlex.split(command.split(" 2> ")[0].split(" > ")[0])
    words[0:1] = [str(tree / ".venv/bin/python"), "-X", "importtime"]
    environment = {**os.environ, "OMP_NUM_THREADS": "2", "PATH": f"{tree / '.venv/bin'}:{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(words, cwd=scratch, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{command}\n{done.stderr[-2000:]}")
    return import_seconds(done.stderr), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tree = args.tree.resolve()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True).stdout
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, tree {tree} at {commit.strip()}")
    commands = stage_commands(tree)
    with tempfile.TemporaryDirectory() as work:
        scratch = Path(work)
        shutil.copytree(tree / "results", scratch / "results", symlinks=True)
        for name in ("data", "config", "models"):
            if (tree / name).exists():
                (scratch / name).symlink_to(tree / name)
        print("| stage | imports (s) | whole command (s) |\n|---|---|---|")
        for stage, command in commands.items():
            runs = [timed_run(command, scratch, tree) for _ in range(args.repeats)]
            print(f"| {stage} | {statistics.median(r[0] for r in runs):.2f} | "
                  f"{statistics.median(r[1] for r in runs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
