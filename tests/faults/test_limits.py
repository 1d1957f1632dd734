"""Limits: config values out of range or contradicting another key or the data, a full disk, a killed job's
leftovers. Each class is tried with several cases; each case checks the message (it names the key or the output,
and the fix), and that nothing is written or left running.

- A value out of range or contradicting another key is refused before the first job: by the schema or the study
  model at planning (``load_study``, as ``snakemake`` validates and plans), or, where the data it contradicts is
  made by a job (a simulated or downloaded study), by the job's first step with the study model's message.
- ``ridge.cv_folds`` larger than a fold's training runs is not refused: the inner CV makes one split per run, and
  the log and the outputs' provenance say so.
- A full disk (ENOSPC) names the output and the bytes it needed, leaves nothing at its name, and exits 3.
- A job whose shell is killed (what Snakemake kills) takes its b2m command with it: no output appears later.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from b2m.cli import main
from b2m.errors import ConfigError, NoSpaceError
from b2m.io import NpyRowWriter, write_json, write_npy, write_parquet
from b2m.job import DIE_WITH_SHELL, JOB_SHELL_PREFIX
from b2m.study import load_study
from conftest import REPO, SUBPROCESS_ENV
from test_bad_input import DESIGN_OPTIONS, windowed_responses
from test_crash import temporaries

# ---------------------------------------------------------------- config values at planning

# Config mutation of the demo → a pattern its ConfigError must match (the key, and the fix where the study model
# speaks; the schema's messages name the key and its bound).
PLANNING_LIMITS = {
    "lag_s beyond the hemodynamic response": (lambda c: c["responses"].update(lag_s=10000),
                                              r"10000 is greater than the maximum of 20 \(at responses\.lag_s\)"),
    "a window of no length": (lambda c: c["features"]["acoustic"].update(window_s=0),
                              r"0 is less than or equal to the minimum of 0 \(at features\.acoustic\.window_s\)"),
    "outer_folds beyond the simulated training runs": (
        lambda c: c.update(folds=["test", "cv-1"], outer_folds=5),
        r"outer_folds = 5 exceeds the training runs of a subject \(4\).*fix: set outer_folds to at most 4"),
    "a cv fold beyond outer_folds": (lambda c: c.update(folds=["test", "cv-5"]),
                                     r"folds \['cv-5'\] are not among cv-1 .. cv-4 \(outer_folds = 4\)"),
    "an alpha grid upside down": (lambda c: c["ridge"].update(alpha_min_exp=8),
                                  r"ridge\.alpha_min_exp \(8\) exceeds ridge\.alpha_max_exp \(7\); fix: "),
}


@pytest.mark.parametrize("case", PLANNING_LIMITS, ids=["lag", "window", "outer-folds", "cv-fold", "alphas"])
def test_a_value_out_of_range_is_refused_at_planning_naming_the_key(case, tmp_path):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    mutate, message = PLANNING_LIMITS[case]
    mutate(config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message):
        load_study(tmp_path / "config.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_outer_folds_are_checked_against_the_runs_of_a_bids_folder_before_the_first_job(tiny_study, tmp_path):
    """Data there at planning (not simulated by the workflow): the dry run counts the events files' training runs
    and stops with the study model's message; no job runs, nothing is written."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["simulate"]["enabled"] = False
    config["dataset"].update(bids_root=str(tiny_study["bids_root"]), stimuli=str(tiny_study["stimuli"]))
    config.update(subjects=["sub-001"], folds=["test", "cv-1"], outer_folds=4, results=str(tmp_path / "results"))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                          "--directory", str(tmp_path), "--configfile", str(tmp_path / "run.yaml")],
                         cwd=REPO, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert dry.returncode != 0
    expected = "config: outer_folds = 4 exceeds the training runs of a subject (3)"
    assert expected in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- config values against data made by a job


@pytest.fixture(scope="module")
def responses(tiny_study, tmp_path_factory) -> dict:
    """The tiny study's sub-001 (3 training runs): cleaned scans and windowed responses, by the command line;
    ``responses`` dealt into the design's outer_folds = 4 cv folds (more than the runs: none), ``responses-3`` into
    3 (one run each)."""
    out = tmp_path_factory.mktemp("limits")
    windowed_responses(tiny_study, out)
    bids = str(tiny_study["bids_root"])
    assert main(["window-responses", "--bids", bids, *DESIGN_OPTIONS, "--outer-folds", "3", "--subject", "sub-001",
                 "--clean", str(out / "clean"), "--out", str(out / "responses-3")]) == 0
    return {"bids": bids, "clean": out / "clean", "responses": out / "responses", "responses-3": out / "responses-3"}


# Command line of a job (the data came from a job, so planning could not check) → the study model's message.
JOB_LIMITS = {
    "lag_s past the end of every run": (
        lambda r, out: ["window-responses", "--bids", r["bids"], "--subject", "sub-001", "--clean", str(r["clean"]),
                        "--out", str(out), "--lag", "10000", *DESIGN_OPTIONS],
        "config: responses.lag_s = 10000 s leaves sub-001_task-Training_run-01 no window"),
    # outer_folds (4) beyond the 3 training runs: the window stage dealt no row into a cv fold, the job stops.
    "outer_folds beyond the training runs (factorise)": (
        lambda r, out: ["factorise", "--responses", str(r["responses"]), "--positions", str(r["clean"]),
                        "--out", str(out), "--subject", "sub-001", "--fold", "cv-1"],
        "fold cv-1: no row to test on"),
    "outer_folds beyond the training runs (encode)": (
        lambda r, out: ["encode", "--responses", str(r["responses"]), "--features", str(r["responses"] / "none"),
                        "--out", str(out), "--subject", "sub-001", "--fold", "cv-2"],
        "fold cv-2: no row to test on"),
}


@pytest.mark.parametrize("case", JOB_LIMITS, ids=["lag", "outer-folds-factorise", "outer-folds-encode"])
def test_a_value_contradicting_the_data_stops_the_job_before_it_computes(case, responses, tmp_path, caplog):
    command, message = JOB_LIMITS[case]
    out = tmp_path / "out"
    assert main(command(responses, out)) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "fix: " in errors[0], errors
    assert not out.exists()


@pytest.mark.parametrize("fold, windowed, runs", [("test", "responses", 3), ("cv-1", "responses-3", 2)])
def test_more_inner_folds_than_runs_makes_one_split_per_run_and_says_so(fold, windowed, runs, responses, tmp_path,
                                                                        caplog):
    """ridge.cv_folds = 5 over a fold of fewer training runs (as the demo: 5 over 4): not refused; the log and the
    output's provenance give the splits made."""
    caplog.set_level("WARNING")
    out = tmp_path / "factors"
    assert main(["factorise", "--responses", str(responses[windowed]), "--positions", str(responses["clean"]),
                 "--out", str(out), "--subject", "sub-001", "--fold", fold, "--cv-folds", "5", "--n-iter", "1"]) == 0
    said = (f"ridge.cv_folds = 5 but the fold trains on {runs} groups: the inner CV makes {runs} splits, one group "
            "each")
    assert said in [r.getMessage() for r in caplog.records]
    sidecar = json.loads((out / "factors.npz.json").read_text())
    assert sidecar["params"]["inner_cv"] == {"cv_folds": 5, "training_runs": runs, "splits": runs}


# ---------------------------------------------------------------- a full disk

ARRAY = np.arange(20_000, dtype=np.float32).reshape(100, 200)  # 80,000 bytes


def npy_rows(path):
    writer = NpyRowWriter(path, *ARRAY.shape, {})
    for block in np.array_split(ARRAY, 10):
        writer.write(block)
    writer.close()


# Writer → (what it writes to a path, the bytes its message must give: known up front for arrays).
WRITERS = {
    "write_npy": (lambda path: write_npy(path, ARRAY, {}), "it needs 80,000 bytes"),
    "NpyRowWriter": (npy_rows, "it needs 80,000 bytes"),
    "write_parquet": (lambda path: write_parquet(path, pd.DataFrame(np.random.default_rng(0).random((100, 200)),
                                                                     columns=list(map(str, range(200)))), {}),
                      "its size is not known before it is written"),
    "write_json": (lambda path: write_json(path, {"values": ARRAY.ravel().tolist()}),
                   "its size is not known before it is written"),
}
NAMES = {"write_npy": "x.npy", "NpyRowWriter": "x.npy", "write_parquet": "x.parquet", "write_json": "x.json"}


def assert_no_space_named(refused, path: Path, size: str) -> None:
    message = str(refused.value)
    assert message.startswith(f"{path}: no room left on the device ({size}; ") and "\n  fix: free space" in message
    assert not path.exists() and temporaries(path.parent) == [] and list(path.parent.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB file system (tmpfs; needs root): writes past it fail with ENOSPC."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True) if shutil.which("mount") else None
    if mounted is None or mounted.returncode:
        pytest.skip(f"cannot mount a 64 KiB tmpfs here ({mounted.stderr.strip() if mounted else 'no mount'}); "
                    "the injected ENOSPC tests cover the writers")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_full_disk_names_the_output_and_its_size_and_writes_nothing(writer, small_disk):
    write, size = WRITERS[writer]
    path = small_disk / NAMES[writer]
    with pytest.raises(NoSpaceError) as refused:
        write(path)
    assert_no_space_named(refused, path, size)


@pytest.mark.parametrize("writer", WRITERS)
def test_an_injected_enospc_names_the_output_and_its_size_and_writes_nothing(writer, tmp_path, monkeypatch):
    """The write of any file object fails with ENOSPC after its first 1000 bytes, as a disk filling up does."""
    import builtins
    import io

    real_open = builtins.open

    class FillingFile(io.FileIO):
        written = 0

        def write(self, data):
            FillingFile.written += len(memoryview(data).cast("B"))
            if FillingFile.written > 1000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    def filling_open(file, mode="r", *args, **kwargs):
        if "w" in mode and "b" in mode:
            return FillingFile(file, "w")
        if "w" in mode:
            return io.TextIOWrapper(io.BufferedWriter(FillingFile(file, "w")), encoding="utf-8")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", filling_open)
    def write_text(self, text, **_):
        with filling_open(self, "w") as stream:
            stream.write(text)

    monkeypatch.setattr(Path, "write_text", write_text)
    write, size = WRITERS[writer]
    path = tmp_path / "out" / NAMES[writer]
    with pytest.raises(NoSpaceError) as refused:
        write(path)
    monkeypatch.undo()
    assert_no_space_named(refused, path, size)


def test_a_full_disk_stops_the_command_with_exit_3_naming_the_output(responses, small_disk, caplog):
    out = small_disk / "responses"
    assert main(["window-responses", "--bids", responses["bids"], "--subject", "sub-001", "--clean",
                 str(responses["clean"]), "--out", str(out), *DESIGN_OPTIONS]) == 3
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    train = np.load(responses["responses"] / "train.npy", mmap_mode="r")
    assert len(errors) == 1 and errors[0].startswith(f"disk full: {out}/train.npy: no room left on the device "
                                                     f"(it needs {train.nbytes:,} bytes; "), errors
    assert [p for p in small_disk.rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------- a killed job's leftovers

SIMULATE = [sys.executable, "-m", "b2m", "simulate", "--subjects", "1", "--training-runs", "2", "--test-runs", "1",
            "--jobs", "1"]


def start_job(out: Path, prefix: str) -> tuple[subprocess.Popen, psutil.Process]:
    """A job as Snakemake runs it: bash -c "<the workflow's shell prefix>python -m b2m simulate ... 2> log"; the
    shell, and its b2m child once it runs."""
    command = f"{prefix}{shlex.join([*SIMULATE, str(out)])} 2> {shlex.quote(str(out))}.log"
    shell = subprocess.Popen(["bash", "-c", command], env=SUBPROCESS_ENV)
    deadline = time.monotonic() + 30
    while not (children := psutil.Process(shell.pid).children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return shell, children[0]


def shell_killed_while_the_command_runs(out: Path) -> psutil.Process:
    shell, child = start_job(out, JOB_SHELL_PREFIX)
    time.sleep(2)  # the command is past its start: importing, simulating
    os.kill(shell.pid, signal.SIGKILL)
    shell.wait(timeout=10)
    return child


def shell_gone_before_the_command_asked(out: Path) -> psutil.Process:
    """The race: the shell died before its command asked to die with it (its parent is then another process)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return psutil.Process(subprocess.Popen([*SIMULATE, str(out)], env={**SUBPROCESS_ENV, DIE_WITH_SHELL: str(gone.pid)},
                                           stderr=subprocess.DEVNULL).pid)


KILLS = {"the shell killed while its command runs": shell_killed_while_the_command_runs,
         "the shell gone before its command asked to die with it": shell_gone_before_the_command_asked}


@pytest.mark.parametrize("case", KILLS, ids=["running", "race"])
def test_a_killed_jobs_command_dies_with_it_and_writes_nothing(case, tmp_path):
    out = tmp_path / "study"
    command = KILLS[case](out)
    _, alive = psutil.wait_procs([command], timeout=10)
    assert alive == [], "the b2m command outlived its killed shell"
    time.sleep(1)
    assert not (out / "truth/truth.json").exists()


def test_without_the_prefix_the_command_outlives_its_shell(tmp_path):
    """The control of the test above: the same job without the workflow's prefix keeps running (so the test
    above can fail); the orphan is killed here by its id."""
    shell, child = start_job(tmp_path / "study", "")
    time.sleep(2)
    os.kill(shell.pid, signal.SIGKILL)
    shell.wait(timeout=10)
    try:
        time.sleep(1)
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    finally:
        child.kill()
        child.wait(timeout=10)
