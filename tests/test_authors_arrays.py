"""The whole DAG on the authors' arrays (dataset.input: authors-arrays): arrays in the Zenodo format made from the
synthetic study's cleaned scans, run through decoding, encoding, banded ridge, reconstruction and the report, and
decoded as well as the raw BOLD of the same study."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from b2m.data.responses import first_analysed_scan
from b2m.data.events import read_events
from b2m.io import load_npy
from b2m.layout import Layout
from conftest import REPO, SUBPROCESS_ENV, reduced_demo

pytestmark = pytest.mark.slow
CYCLE = 100  # scans in one cycle of a test run's 10 clips (10 × 15 s at TR 1.5 s)


def run_dag(workdir, config: dict) -> subprocess.CompletedProcess:
    path = workdir / f"{config['results']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(path), "--cores", "2"], cwd=REPO, env=SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=1800)


def write_authors_arrays(workdir, raw: Layout, dataset: BidsDataset, subject: str, out) -> None:
    """The Zenodo format from b2m's cleaned scans: voxels × (analysed scans of every training run) and voxels ×
    (100 × test runs), each test run's cycles averaged; unlagged, as the authors published them."""
    scans = load_npy(workdir / raw.scans(subject).scans)
    training, test, offset = [], [], 0
    for run in dataset.runs(subject):
        events = read_events(run.events)
        n_scans = int(round(float((events.onset + events.duration).max()) / run.repetition_time()))
        first = offset + first_analysed_scan(run.analysed(dataset.design), run.repetition_time())
        block = scans[first:offset + n_scans]
        if run.split == "train":
            training.append(block)
        else:
            test.append(block.reshape(-1, CYCLE, block.shape[1]).mean(axis=0))
        offset += n_scans
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{subject}_Resp_Training.npy", np.concatenate(training).T.astype(np.float32))
    np.save(out / f"{subject}_Resp_Test_Mean.npy", np.concatenate(test).T.astype(np.float32))


def test_the_whole_dag_runs_on_the_authors_arrays(tmp_path):
    for folder in ("config", "workflow"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    raw_config = {**reduced_demo(), "results": "results-raw"}
    done = run_dag(tmp_path, raw_config)
    assert done.returncode == 0, done.stderr[-3000:]
    raw = Layout("results-raw")
    data = raw_config["dataset"]
    write_authors_arrays(tmp_path, raw, BidsDataset(tmp_path / data["bids_root"], DESIGN), "sub-001", tmp_path / "zenodo")

    arrays_config = {**raw_config, "results": "results-arrays", "simulate": {"enabled": False},
                     "dataset": {**data, "input": "authors-arrays", "authors_arrays": "zenodo"}}
    done = run_dag(tmp_path, arrays_config)
    assert done.returncode == 0, done.stderr[-3000:]
    arrays = Layout("results-arrays")
    log = (tmp_path / arrays.log("sub-001", "test", "acoustic", "encode")).read_text()
    assert "no noise ceiling: absent: the responses hold only the mean of the test repeats" in log

    encoding = pd.read_csv(tmp_path / arrays.summary("encoding", ".tsv"), sep="\t")
    assert set(encoding.feature) == {"acoustic", "genre", "acoustic+genre"}
    assert encoding.median_noise_ceiling.isna().all() and encoding.noise_ceiling.str.startswith("absent").all()
    raw_encoding = pd.read_csv(tmp_path / raw.summary("encoding", ".tsv"), sep="\t")
    assert raw_encoding.noise_ceiling.str.startswith("from the test repeats").all()
    assert (tmp_path / arrays.summary("reconstruction", ".tsv")).stat().st_size > 0
    assert (tmp_path / arrays.figures().identification).exists() and (tmp_path / arrays.listening_page()).exists()

    def accuracy(layout: Layout) -> pd.Series:
        table = pd.read_csv(tmp_path / layout.summary("identification", ".tsv"), sep="\t")
        chosen = table[(table.metric == "identification_accuracy") & (table.model == "whole-mask")]
        return chosen.set_index(["feature", "level"]).value

    # Training windows are the same scans; test windows average the same 4 presentations except where a lagged
    # window wraps around the cycle (authors.py): decoding agrees with the raw BOLD's to 0.02.
    pd.testing.assert_series_equal(accuracy(arrays), accuracy(raw), atol=0.02, check_exact=False)
