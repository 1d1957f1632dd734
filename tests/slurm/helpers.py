"""A real SLURM cluster for the tests (tests/slurm/cluster-up, cluster-down) and the shipped profiles filled in
for it, as a user fills them in for theirs."""

from __future__ import annotations

import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from conftest import REPO, SUBPROCESS_ENV

HERE = Path(__file__).resolve().parent
MAX_TIME_MIN = 360  # both partitions' MaxTime in cluster-up (06:00:00)


@contextmanager
def slurm_cluster(state: Path, *flags: str):
    """Bring a cluster up in ``state`` (an empty folder); yields the environment that talks to it, and stops every
    daemon at the end, also when the test fails."""
    up = subprocess.run([str(HERE / "cluster-up"), str(state), *flags], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr[-4000:]
    try:
        yield {**SUBPROCESS_ENV, "SLURM_CONF": str(state / "slurm.conf")}
    finally:
        subprocess.run([str(HERE / "cluster-down"), str(state)], timeout=300)


def filled_profiles(folder: Path, gpu: bool) -> list[Path]:
    """profiles/slurm (and profiles/slurm-gpu) with their CHANGE_ME values filled for the test cluster, written
    under ``folder``: what the README asks a user to edit, and nothing else."""
    base = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    defaults = base["default-resources"]
    defaults["slurm_partition"] = "cpu"
    defaults["runtime"] = defaults["runtime"].replace("1440", str(MAX_TIME_MIN))
    defaults["slurm_account"] = "b2m"  # registered in cluster-up's accounting; unchecked without accounting
    profiles = [write_profile(folder / "slurm", base)]
    if gpu:
        layer = yaml.safe_load((REPO / "profiles/slurm-gpu/config.yaml").read_text())
        for resources in layer["set-resources"].values():
            resources.update(slurm_partition="gpu", gpu_model="ci",
                             runtime=resources["runtime"].replace("1440", str(MAX_TIME_MIN)))
        profiles.append(write_profile(folder / "slurm-gpu", layer))
    return profiles


def write_profile(folder: Path, values: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(values))
    return folder


def sacct(env: dict, *fields: str) -> list[dict[str, str]]:
    """Every job of the cluster's accounting, one dict a job (``sacct -X``)."""
    out = subprocess.run(["sacct", "-X", "-a", "--parsable2", "--noheader", "--format", ",".join(fields)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]


class Canceller(threading.Thread):
    """Cancels (``scancel``) the first job of ``rule`` once it has been RUNNING for a second; ``job_id`` and
    ``cancelled_at`` (time.time()) say which and when. Gives up after ``timeout_s``."""

    def __init__(self, env: dict, rule: str, timeout_s: float = 900):
        super().__init__(daemon=True)
        self.env, self.rule, self.timeout_s = env, rule, timeout_s
        self.job_id: str | None = None
        self.cancelled_at: float | None = None

    def run(self) -> None:
        deadline, seen = time.time() + self.timeout_s, {}
        while time.time() < deadline and self.job_id is None:
            out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], env=self.env, capture_output=True,
                                 text=True).stdout
            for line in out.splitlines():
                job, comment = line.split("|", 1)
                if comment.startswith(f"rule_{self.rule}_"):
                    if time.time() - seen.setdefault(job, time.time()) >= 1:
                        subprocess.run(["scancel", job], env=self.env, check=True)
                        self.job_id, self.cancelled_at = job, time.time()
                        break
            time.sleep(0.5)


def differing_files(first: Path, second: Path, pattern: str) -> list[str]:
    """The files matching ``pattern`` under ``first`` whose bytes differ in ``second`` (or that it lacks)."""
    files = sorted(p.relative_to(first) for p in first.glob(pattern) if p.is_file())
    assert files, f"no {pattern} under {first}"
    return [str(f) for f in files
            if not (second / f).is_file() or (first / f).read_bytes() != (second / f).read_bytes()]
