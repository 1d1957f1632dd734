"""Any design, end to end: the planted-truth twins of three real designs (shared/real), made by `b2m simulate --like`,
go through `b2m init-config` → `b2m validate` → `snakemake` with no hand edit, and recover their planted truth.

- ds004007: continuous listening, whole pieces in `stim_file`, TR 1 s, two runs playing every piece (cv by stimulus).
- ds000171: a block design with labels only (`trial_type`), TR 3 s, unpadded run numbers (cv by run).
- ds003720: repeated-test excerpts named by genre and track, a declared test task.

Where there are stimuli, identification's 95 % interval lies above the measured chance (of clips; of whole pieces by
their 15 s segments' time courses); where there are only labels, label decoding's does; everywhere, the study's
encoding maps (of the test set, else of every out-of-fold prediction, cv-all) have q < 0.05 voxels that are at
least 90 % planted and find at least half of the planted ones.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SUBPROCESS_ENV


@dataclass(frozen=True)
class Twin:
    """A real design, the flags that make and describe its twin, and what it must recover."""

    like: tuple[str, ...]
    init: tuple[str, ...]
    space: str
    identified_by: str | None  # the level of identification among stimuli (None: labels only, label decoding)


TWINS = {
    "ds004007": Twin(("--subjects", "2", "--max-seconds", "1300"), (), "acoustic", "segment"),
    "ds000171": Twin(("--subjects", "2", "--labels", "trial_type", "--snr", "1"), ("--labels", "trial_type"),
                     "trial-type", None),
    "ds003720": Twin(("--subjects", "2", "--runs", "3", "--stimulus-template", "{genre}/{genre}.{track:05d}",
                      "--excerpt", "start", "end", "--labels", "genre"),
                     ("--stimulus-template", "{genre}/{genre}.{track:05d}", "--labels", "genre"), "acoustic", "clip"),
}


def b2m(*args, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "b2m", *map(str, args)], cwd=cwd, env=SUBPROCESS_ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"b2m {' '.join(map(str, args))}:\n{result.stderr[-3000:]}"
    return result


def planted_recovery(results: Path, truth: Path, subject: str, fold: str, space: str) -> tuple[float, float]:
    """(share of the q < 0.05 voxels that are planted, share of the planted voxels found) of one encoding map."""
    positions = pd.read_parquet(results / subject / "responses/voxels.parquet").reset_index(drop=True)
    scores = pd.read_parquet(results / subject / fold / space / "encoding/voxels.parquet").reset_index(drop=True)
    voxels = pd.concat([positions, scores], axis=1)
    planted = pd.read_parquet(truth / f"{subject}_voxels.parquet")[["i", "j", "k", "planted"]]
    voxels = voxels.merge(planted, on=["i", "j", "k"], how="left").fillna({"planted": False})
    found = voxels.q < 0.05
    return float(voxels.planted[found].mean()), float(found[voxels.planted].mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TWINS))
def test_a_twin_of_a_real_design_recovers_its_planted_truth(name, real, tmp_path):
    twin = TWINS[name]
    b2m("simulate", "--like", real / name, tmp_path / "twin", *twin.like, cwd=tmp_path)
    bids = tmp_path / "twin" / name
    b2m("init-config", bids, *twin.init, "--results", "results", "-o", "study.yaml", cwd=tmp_path)
    b2m("validate", "--config", "study.yaml", cwd=tmp_path)
    run = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", "study.yaml", "--cores", "2"], cwd=tmp_path,
                         env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]

    results, truth = tmp_path / "results", tmp_path / "twin" / "truth"
    scores = pd.read_csv(results / "summary/identification.tsv", sep="\t")
    study = "test" if "test" in set(scores.fold) else "cv-all"  # the study's own held-out scores and maps
    whole = (scores.fold == study) & (scores.feature == twin.space) & (scores.model == "whole-mask")
    if twin.identified_by:
        found = scores[whole & (scores.level == twin.identified_by) & (scores.metric == "identification_accuracy")]
    else:
        labels = pd.read_csv(results / "summary/label_decoding.tsv", sep="\t")
        found = labels[(labels.fold == study) & (labels.feature == twin.space) & (labels.model == "whole-mask")
                       & (labels.level == "clip")]
    assert len(found) == 2 and (found.ci_low > found.chance_mean).all(), found
    for subject in sorted(set(scores.subject)):
        precision, recall = planted_recovery(results, truth, subject, study, twin.space)
        assert precision >= 0.9 and recall >= 0.5, (subject, study, precision, recall)
