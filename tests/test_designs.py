"""Any design, end to end: the planted-truth twins of three real designs (shared/real), made by `b2m simulate --like`,
go through `b2m init-config` → `b2m validate` → `snakemake` with no hand edit, and recover their planted truth.

- ds004007: continuous listening, whole pieces in `stim_file`, TR 1 s, two runs playing every piece (cv by stimulus).
- ds000171: a block design with labels only (`trial_type`), TR 3 s, unpadded run numbers (cv by run).
- ds003720: repeated-test excerpts named by genre and track, a declared test task.

Where there are stimuli, clip identification's 95 % interval lies above the measured chance; where there are only
labels, label decoding's does; everywhere, the encoding maps' q < 0.05 voxels are at least 90 % planted and find at
least half of the planted ones.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, SUBPROCESS_ENV


@dataclass(frozen=True)
class Twin:
    """A real design, the flags that make and describe its twin, and what it must recover."""

    like: tuple[str, ...]
    init: tuple[str, ...]
    space: str
    identification: bool


TWINS = {
    "ds004007": Twin(("--subjects", "2", "--max-seconds", "700"), (), "acoustic", True),
    "ds000171": Twin(("--subjects", "2", "--labels", "trial_type"), ("--labels", "trial_type"), "trial-type", False),
    "ds003720": Twin(("--subjects", "2", "--runs", "3", "--stimulus-template", "{genre}/{genre}.{track:05d}",
                      "--excerpt", "start", "end", "--labels", "genre"),
                     ("--stimulus-template", "{genre}/{genre}.{track:05d}", "--labels", "genre"), "acoustic", True),
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
    folds = sorted(set(scores.fold))
    if twin.identification:
        pooled = "test" if "test" in folds else "cv-all"
        clip = scores[(scores.fold == pooled) & (scores.feature == twin.space) & (scores.model == "whole-mask")
                      & (scores.level == "clip") & (scores.metric == "identification_accuracy")]
        assert len(clip) == 2 and (clip.ci_low > clip.chance_mean).all(), clip
    else:
        labels = pd.read_csv(results / "summary/label_decoding.tsv", sep="\t")
        pooled = labels[(labels.fold == "cv-all") & (labels.feature == twin.space) & (labels.model == "whole-mask")
                        & (labels.level == "clip")]
        assert len(pooled) == 2 and (pooled.ci_low > pooled.chance_mean).all(), pooled
    for subject in sorted(set(scores.subject)):
        for fold in (f for f in folds if f != "cv-all"):
            precision, recall = planted_recovery(results, truth, subject, fold, twin.space)
            assert precision >= 0.9 and recall >= 0.5, (subject, fold, precision, recall)
