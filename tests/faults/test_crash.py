"""Crash safety and determinism: a stage killed mid-write, then the DAG run again, gives the results of an
uninterrupted run bit for bit; a killed writer leaves nothing at the output's name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from b2m.io import NpyRowWriter, read_parquet_provenance
from conftest import REPO, SUBPROCESS_ENV

# The demo DAG on one subject and the test fold, with fewer resamples; the results folder's name needs quoting
# in every command.
SMALL = {"subjects": ["sub-001"], "folds": ["test"], "results": "results dir",
         "decoding": {"n_permutations": 20, "n_bootstrap": 50}, "encoding": {"n_permutations": 100},
         "reconstruction": {"n_chance": 10}}
SUMMARIES = ("identification", "encoding", "reconstruction")

WRITER = """
import sys, time
import numpy as np
from b2m.io import NpyRowWriter
writer = NpyRowWriter(sys.argv[1], 1000, 10, {})
for _ in range(1000):
    writer.write(np.ones((1, 10)))
    time.sleep(0.01)
writer.close()
"""


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp-*"))


def kill_writer_of(temporary: Path) -> None:
    os.kill(int(temporary.name.split(".tmp-", 1)[1].split(".")[0].rsplit("-", 1)[1]), signal.SIGKILL)


def test_killed_writer_leaves_no_output_and_the_next_write_clears_its_temporary(tmp_path):
    target = tmp_path / "scans.npy"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=SUBPROCESS_ENV)
    while not temporaries(tmp_path):
        time.sleep(0.01)
    time.sleep(0.2)
    kill_writer_of(temporaries(tmp_path)[0])
    assert writer.wait(timeout=30) == -signal.SIGKILL
    assert not target.exists() and len(temporaries(tmp_path)) == 1
    again = NpyRowWriter(target, 2, 3, {"run": 2})
    again.write(np.zeros((2, 3)))
    again.close()
    assert temporaries(tmp_path) == [] and np.load(target).shape == (2, 3)


def workflow_copy(folder: Path) -> list[str]:
    """The workflow in ``folder`` with the small config; the Snakemake command that runs it there."""
    for name in ("config", "profiles", "workflow", "envs"):
        shutil.copytree(REPO / name, folder / name)
    (folder / "small.yaml").write_text(yaml.safe_dump(SMALL))
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(folder),
            "--profile", "profiles/local", "--configfile", "config/config.yaml", str(folder / "small.yaml")]


@pytest.mark.slow
def test_a_stage_killed_mid_write_reruns_to_the_uninterrupted_results(tmp_path):
    """Run A from scratch; run B from scratch with clean-bold killed (SIGKILL) while it writes scans.npy, then
    B again. Every summary table of B equals A's byte for byte (determinism, and crash safety), no temporary
    file is left, and the seed of the config is recorded in the outputs."""
    uninterrupted, interrupted = tmp_path / "a", tmp_path / "b"
    result = subprocess.run(workflow_copy(uninterrupted), cwd=REPO, env=SUBPROCESS_ENV, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    command = workflow_copy(interrupted)
    responses = interrupted / SMALL["results"] / "sub-001/responses"
    log = tmp_path / "interrupted.log"  # a file, not a pipe: a full pipe would stop Snakemake before clean-bold
    with open(log, "w") as stderr:
        run = subprocess.Popen(command, cwd=REPO, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 600
        while not list(responses.glob(".scans.tmp-*")) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.01)
        kill_writer_of(next(responses.glob(".scans.tmp-*")))
        run.wait(timeout=900)
    assert run.returncode != 0 and "clean_bold" in log.read_text()
    assert not (responses / "scans.npy").exists()

    result = subprocess.run(command, cwd=REPO, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in SUMMARIES:
        first, second = (folder / SMALL["results"] / f"summary/{name}.tsv" for folder in (uninterrupted, interrupted))
        assert first.read_bytes() == second.read_bytes(), name
    assert temporaries(interrupted / SMALL["results"]) == []

    seed = yaml.safe_load((REPO / "config/config.yaml").read_text())["ridge"]["seed"]
    scores = interrupted / SMALL["results"] / "sub-001/test/acoustic/decoding/scores.parquet"
    assert read_parquet_provenance(scores)["params"]["options"]["ridge"]["seed"] == seed
    simulated = json.loads((interrupted / "data/synthetic/truth/truth.json").read_text())["config"]["seed"]
    assert simulated == yaml.safe_load((REPO / "config/config.yaml").read_text())["simulate"]["seed"]
