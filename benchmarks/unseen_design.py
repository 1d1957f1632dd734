"""A design that is in no test and not in shared/: its metadata written here, its planted-truth twin run through
the three commands of the README's "Your study" with no hand edit, and scored against the twin's truth.

The design (issue 34's description of a public dataset kept out of shared/): session folders (one subject's runs
over two sessions), one top-level `task-music_bold.json` with TR 2 s, 6 s clips named in a `stim` column, five
genres that are not GTZAN's (a `genre` column), every clip once in each of 8 runs, in shuffled order.

    python benchmarks/unseen_design.py --workdir /tmp/unseen      # about 12 min on 2 cores (3 subjects)

Prints, per subject, fold cv-all's clip identification of the acoustic space (with its 95 % interval and the
measured chance) and the share of the encoding map's q < 0.05 voxels that are planted and of the planted found.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd

GENRES = ("ambient", "country", "metal", "rocknroll", "symphonic")
CLIPS_PER_GENRE, RUNS, SUBJECTS, TR_S, CLIP_S = 6, 8, 3, 2.0, 6.0


def write_metadata(root: Path, seed: int = 0) -> None:
    """The design's BIDS metadata: events and sidecars, no images (the twin writes them)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "unseen", "BIDSVersion": "1.8.0"}))
    (root / "task-music_bold.json").write_text(json.dumps({"RepetitionTime": TR_S, "TaskName": "music"}))
    (root / "participants.tsv").write_text("participant_id\n" + "".join(f"sub-{s:02d}\n" for s in range(1, 4)))
    clips = [(g, f"stimuli/{g}_{i:02d}.wav") for g in GENRES for i in range(1, CLIPS_PER_GENRE + 1)]
    for subject in range(1, SUBJECTS + 1):
        for run in range(1, RUNS + 1):
            session = "ses-02" if subject == SUBJECTS and run > RUNS // 2 else "ses-01"
            func = root / f"sub-{subject:02d}" / session / "func"
            func.mkdir(parents=True, exist_ok=True)
            order, onset, rows = rng.sample(clips, len(clips)), 4.0, ["onset\tduration\ttrial_type\tstim\tgenre"]
            for genre, stim in order:
                rows.append(f"{onset:.1f}\t{CLIP_S}\tmusic\t{stim}\t{genre}")
                onset += CLIP_S + rng.choice([2.0, 4.0, 6.0])
            (func / f"sub-{subject:02d}_{session}_task-music_run-{run}_events.tsv").write_text("\n".join(rows) + "\n")


def run(*command, cwd: Path) -> None:
    subprocess.run([str(c) for c in command], cwd=cwd, check=True)


def planted_recovery(results: Path, truth: Path, subject: str) -> tuple[float, float]:
    """(share of the q < 0.05 voxels that are planted, share of the planted voxels found), fold cv-all, acoustic."""
    positions = pd.read_parquet(results / subject / "responses/voxels.parquet").reset_index(drop=True)
    scores = pd.read_parquet(results / subject / "cv-all/acoustic/encoding/voxels.parquet").reset_index(drop=True)
    planted = pd.read_parquet(truth / f"{subject}_voxels.parquet")[["i", "j", "k", "planted"]]
    voxels = pd.concat([positions, scores], axis=1).merge(planted, on=["i", "j", "k"], how="left")
    voxels = voxels.fillna({"planted": False})
    found = voxels.q < 0.05
    return float(voxels.planted[found].mean()), float(found[voxels.planted.astype(bool)].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    work, repo = args.workdir.resolve(), Path(__file__).resolve().parents[1]
    write_metadata(work / "metadata" / "unseen")
    b2m = (sys.executable, "-m", "b2m")
    run(*b2m, "simulate", "--like", work / "metadata/unseen", work / "twin", "--stimulus-column", "stim", cwd=work)
    run(*b2m, "init-config", work / "twin/unseen", "--stimulus-column", "stim", "--results", "results", "-o",
        "study.yaml", cwd=work)
    run(*b2m, "validate", "--config", "study.yaml", cwd=work)
    run(sys.executable, "-m", "snakemake", "--snakefile", repo / "Snakefile", "--directory", work, "--configfile",
        "study.yaml", "--cores", args.cores, cwd=work)
    scores = pd.read_csv(work / "results/summary/identification.tsv", sep="\t")
    clip = scores[(scores.fold == "cv-all") & (scores.feature == "acoustic") & (scores.model == "whole-mask")
                  & (scores.level == "clip") & (scores.metric == "identification_accuracy")]
    print("subject  identification  95% CI          chance  planted share  planted found")
    for row in clip.itertuples():
        precision, recall = planted_recovery(work / "results", work / "twin/truth", row.subject)
        print(f"{row.subject}  {row.value:.3f}           {row.ci_low:.3f}-{row.ci_high:.3f}     "
              f"{row.chance_mean:.3f}   {precision:.3f}          {recall:.3f}")


if __name__ == "__main__":
    main()
