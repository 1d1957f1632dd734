"""profiles/slurm with its GPU layer, on a real SLURM cluster without accounting (status from squeue, the
account unchecked) whose node declares one GPU: the model rules ask for it on the GPU partition, the others do not, and
their outputs are byte-identical to profiles/local's."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from b2m.layout import Layout
from conftest import reduced_demo, run_snakemake
from helpers import differing_files, filled_profiles, slurm_cluster

pytestmark = pytest.mark.slurm

LAYOUT = Layout("results")
DECODING, ENCODING = LAYOUT.decoding("sub-001", "test", "acoustic"), LAYOUT.encoding("sub-001", "test", "acoustic")


def test_gpu_layer_without_accounting(tmp_path, reduced_demo_run):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(reduced_demo()))
    profiles = filled_profiles(tmp_path / "profiles", gpu=True)
    with slurm_cluster(tmp_path / "cluster", "--no-accounting", "--gpu") as env:
        done = run_snakemake(tmp_path, *[a for p in profiles for a in ("--profile", str(p))], "--",
                             str(DECODING.scores), str(ENCODING.summary), env=env)
        assert done.returncode == 0, done.stderr[-4000:]
        # finished jobs stay in slurmctld for MinJobAge (300 s)
        jobs = [dict(item.split("=", 1) for item in line.split() if "=" in item) for line in subprocess.run(
            ["scontrol", "show", "job", "--oneliner"], env=env, capture_output=True, text=True).stdout.splitlines()]
    assert "sacct: invalid option" not in done.stderr and "trying to guess" not in done.stderr
    assert "Proceeding without account validation" in done.stderr  # the account is given, and unchecked
    by_rule = {job["Comment"].split("_wildcards_")[0].removeprefix("rule_"): job for job in jobs}
    assert set(by_rule) == {"clean_bold", "window_responses", "features", "factorise", "decode", "encode"}, by_rule
    for rule, job in by_rule.items():
        on_gpu = rule in ("factorise", "decode", "encode")
        assert job["JobState"] == "COMPLETED" and job["Partition"] == ("gpu" if on_gpu else "cpu"), job
        assert (job.get("TresPerJob") == "gres:gpu:ci:1") == on_gpu, job
    for folder in (DECODING.path, ENCODING.path):
        for pattern in ("*.parquet", "*.npy"):
            assert differing_files(tmp_path, reduced_demo_run, f"{folder}/{pattern}") == [], folder
