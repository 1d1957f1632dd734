"""The b2m command line: every stage is listed, and bad input exits with the file and the fix."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO, SUBPROCESS_ENV


def b2m(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "b2m", *args], capture_output=True, text=True, timeout=120,
                          env=SUBPROCESS_ENV)


def test_help_lists_every_stage():
    """Every subcommand a rule of the workflow calls is listed, with its help line, by `b2m --help`."""
    result = b2m("--help")
    assert result.returncode == 0
    rules = "".join(path.read_text() for path in (REPO / "workflow/rules").glob("*.smk"))
    called = set(re.findall(r"python -m b2m ([a-z-]+)", rules))
    assert len(called) >= 17 and {"report-figures", "listening-page", "download", "generate"} <= called
    listed = set(re.findall(r"^    ([a-z-]+) ", result.stdout, re.MULTILINE)) | set(
        re.findall(r"^    ([a-z-]+)\n", result.stdout, re.MULTILINE))
    assert called <= listed, called - listed


def test_missing_dataset_exits_with_the_path_and_the_fix(tmp_path):
    result = b2m("clean-bold", "--bids", str(tmp_path / "nowhere"), "--subject", "sub-001",
                 "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert f"{tmp_path / 'nowhere'}: dataset folder not found" in result.stderr
    assert "fix: set `bids_root`" in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_stimulus_audio_names_the_clip(tiny_study, tmp_path):
    result = b2m("features", "--bids", str(tiny_study["bids_root"]), "--stimuli", str(tmp_path),
                 "--feature", "acoustic", "--out", str(tmp_path / "acoustic.parquet"))
    assert result.returncode == 2 and "no audio file for clip" in result.stderr
    assert not (tmp_path / "acoustic.parquet").exists()
