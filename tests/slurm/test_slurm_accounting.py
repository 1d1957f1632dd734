"""The reduced demo through profiles/slurm on a real SLURM cluster with accounting and no GPU (the CPU-only
profile, no GRES asked): outputs byte-identical to profiles/local's, a job cancelled while it runs noticed within
a minute and retried with twice the memory and a runtime capped at the partition's limit, and the pre-flight
check naming exactly the retries the honest node cannot hold."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest
import yaml

from conftest import REPO, reduced_demo, run_snakemake
from helpers import MAX_TIME_MIN, Canceller, differing_files, filled_profiles, sacct, slurm_cluster, write_profile

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with slurm_cluster(tmp_path_factory.mktemp("slurm-accounting") / "cluster") as env:
        yield env


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The reduced demo through the filled-in profiles/slurm, its first decode job cancelled while it runs."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    (workdir / "run.yaml").write_text(yaml.safe_dump(reduced_demo()))
    profiles = filled_profiles(workdir / "profiles", gpu=False)
    canceller = Canceller(cluster, "decode")
    canceller.start()
    done = run_snakemake(workdir, "--profile", str(profiles[0]), env=cluster)
    canceller.join(timeout=1)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, done, canceller, profiles


def test_reduced_demo_through_slurm_matches_the_local_run(slurm_run, reduced_demo_run):
    workdir = slurm_run[0]
    for pattern in ("results/summary/*.tsv", "results/sub-001/**/*.parquet", "results/sub-001/**/*.npy"):
        assert differing_files(workdir, reduced_demo_run, pattern) == [], pattern


def test_a_cancelled_job_is_noticed_and_retried_with_more_memory(slurm_run, cluster):
    _, done, canceller, _ = slurm_run
    assert canceller.job_id is not None, "no decode job was seen running"
    jobs = sacct(cluster, "JobIDRaw", "State", "Comment", "ReqMem", "Timelimit", "Submit", "End")
    cancelled = next(j for j in jobs if j["JobIDRaw"] == canceller.job_id)
    assert cancelled["State"].startswith("CANCELLED")
    retry = next(j for j in jobs if j["Comment"] == cancelled["Comment"] and int(j["JobIDRaw"]) > int(canceller.job_id))
    assert retry["State"] == "COMPLETED"
    assert (cancelled["ReqMem"], retry["ReqMem"]) == ("10000M", "20000M")  # decode's mem_mb: 10000 × attempt
    # runtime: min(240 × attempt, the partition's 360): attempt 2 asks 360, not 480
    assert (cancelled["Timelimit"], retry["Timelimit"]) == ("04:00:00", "06:00:00")
    noticed = datetime.fromisoformat(retry["Submit"]) - datetime.fromisoformat(cancelled["End"])
    assert noticed.total_seconds() <= 60, noticed
    assert f"SLURM-job '{canceller.job_id}' failed, SLURM status is: 'CANCELLED'" in done.stderr


def test_every_job_asked_the_cpus_it_uses_and_no_gpu(slurm_run, cluster):
    jobs = sacct(cluster, "Comment", "ReqTRES")
    decode = [j for j in jobs if j["Comment"].startswith("rule_decode_")]
    assert decode and all("cpu=1" in j["ReqTRES"] for j in decode)  # decode's threads: 1
    banded = [j for j in jobs if j["Comment"].startswith("rule_encode_banded_")]
    assert banded and all("cpu=2" in j["ReqTRES"] for j in banded)  # encode_banded's threads: 2
    assert not any("gres/gpu" in j["ReqTRES"] for j in jobs)


def cluster_check(env, profiles, workdir) -> subprocess.CompletedProcess:
    named = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run([sys.executable, "-m", "b2m", "cluster-check", *named, "--", "--configfile",
                           str(workdir / "run.yaml"), "--directory", str(workdir)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_cluster_check_names_the_retries_the_node_cannot_hold(slurm_run, cluster):
    workdir, _, _, profiles = slurm_run
    check = cluster_check(cluster, profiles, workdir)
    assert check.returncode == 1, check.stderr
    problems = [line for line in check.stdout.splitlines() if line.startswith("- ")]
    hardware = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout
    node_mb = int(hardware.split("RealMemory=")[1].split()[0])
    assert 20000 <= node_mb < 30000, "the expectations below are for a 24 GB machine (CI's)"
    assert sorted(problems) == [f"- {rule} (attempt 3 of 3): asks 30000 MB, the largest node of cpu has {node_mb} MB; "
                                "fix: retries: 1 in the profile"
                                for rule in ("decode", "encode", "encode_banded", "factorise")]
    table = [line.split("\t") for line in check.stdout.splitlines() if line.startswith("decode\t")]
    assert table == [["decode", "1", "2", "1", "10000", "240", "0", "cpu"],
                     ["decode", "3", "2", "1", "30000", str(MAX_TIME_MIN), "0", "cpu"]]
    fixed = yaml.safe_load((profiles[0] / "config.yaml").read_text()) | {"retries": 1}
    check = cluster_check(cluster, [write_profile(workdir / "profiles/fixed", fixed)], workdir)
    assert check.returncode == 0, check.stdout
    assert check.stdout.rstrip().endswith("every job can start on this cluster, at every attempt")
