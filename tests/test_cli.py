"""The b2m command line: every stage is listed, and bad input exits with the file and the fix."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict

from b2m.data.simulate import DESIGN
from b2m.jobs import JOBS
from conftest import SUBPROCESS_ENV

# The options document of ds003720's design (the simulated study's), as a rule passes it.
DESIGN_DOCUMENT = json.dumps({"design": asdict(DESIGN)})


def b2m(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "b2m", *args], capture_output=True, text=True, timeout=120,
                          env=SUBPROCESS_ENV)


def test_help_lists_every_stage():
    """Every subcommand a rule of the workflow calls (its job's stage) is listed, with its help line, by
    `b2m --help`."""
    result = b2m("--help")
    assert result.returncode == 0
    called = {job.stage for job in JOBS.values()}
    assert len(called) >= 17 and {"report-figures", "listening-page", "download", "generate"} <= called
    listed = set(re.findall(r"^    ([a-z-]+) ", result.stdout, re.MULTILINE)) | set(
        re.findall(r"^    ([a-z-]+)\n", result.stdout, re.MULTILINE))
    assert called <= listed, called - listed


def test_missing_dataset_exits_with_the_path_and_the_fix(tmp_path):
    result = b2m("clean-bold", "--bids", str(tmp_path / "nowhere"), "--subject", "sub-001",
                 "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert f"{tmp_path / 'nowhere'}: dataset folder not found" in result.stderr
    assert "fix: set `dataset.bids_root`" in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_stimulus_audio_names_the_clip(tiny_study, tmp_path):
    result = b2m("features", "--bids", str(tiny_study["bids_root"]), "--stimuli", str(tmp_path),
                 "--feature", "acoustic", "--out", str(tmp_path / "acoustic.parquet"), "--options", DESIGN_DOCUMENT)
    assert result.returncode == 2 and "no audio file for stimulus" in result.stderr
    assert not (tmp_path / "acoustic.parquet").exists()


def test_find_duplicates_lists_copies_of_the_test_clips_and_a_missing_clip_writes_nothing(tiny_study, tmp_path):
    """Copies of a test clip and a training clip (the query of a cv or genre fold) under other names in a folder
    source, beside the study's extra corpus tracks, fingerprinted in two chunks: the stage lists exactly them; with
    the stimuli folder wrong it exits 2 and writes nothing."""
    import shutil

    import pandas as pd

    from b2m.data.bids import BidsDataset
    from b2m.features.audio import stimulus_path

    table = BidsDataset(tiny_study["bids_root"], DESIGN).stimulus_table()
    copied = table[table.clip_id.isin([table.clip_id[table.split == split].iloc[0] for split in ("test", "train")])]
    (tmp_path / "copies").mkdir()
    for number, relative in enumerate(copied.path):
        shutil.copy(stimulus_path(tiny_study["stimuli"], relative), tmp_path / "copies" / f"upload-{number}.wav")
    sources = ['{"path": "%s", "layout": "gtzan"}' % tiny_study["corpus"],
               '{"path": "%s", "layout": "folder", "name": "uploads"}' % (tmp_path / "copies")]
    chunks = [tmp_path / f"fingerprints/chunk-{n}.parquet" for n in range(2)]
    for n, chunk in enumerate(chunks):
        listing = str(tmp_path / f"listing/chunk-{n}.parquet")
        listed = b2m("list-chunk", "--sources", *sources, "--chunks", "2", "--chunk", str(n), "--out", listing)
        done = b2m("fingerprint-chunk", "--tracks", listing, "--out", str(chunk))
        assert listed.returncode == done.returncode == 0, listed.stderr + done.stderr
    args = ["find-duplicates", "--bids", str(tiny_study["bids_root"]), "--fingerprints", *map(str, chunks),
            "--options", DESIGN_DOCUMENT]
    result = b2m(*args, "--stimuli", str(tiny_study["stimuli"]), "--out", str(tmp_path / "duplicates.tsv"))
    assert result.returncode == 0, result.stderr
    found = pd.read_csv(tmp_path / "duplicates.tsv", sep="\t")
    assert list(zip(found.clip_id, found.track_id)) == [(clip, f"upload-{n}") for n, clip in enumerate(copied.clip_id)]
    assert (found.source == "uploads").all() and not found.same_id.any()
    assert f"2 duplicates of {len(table)} stimulus clips" in result.stderr
    missing = b2m(*args, "--stimuli", str(tmp_path / "copies"), "--out", str(tmp_path / "none.tsv"))
    assert missing.returncode == 2 and "no audio file for stimulus" in missing.stderr
    assert not (tmp_path / "none.tsv").exists()
