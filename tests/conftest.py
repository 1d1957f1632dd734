"""Shared fixtures: the real data in ../shared/real, and tiny synthetic studies made once per session."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from b2m.data.simulate import SimulationConfig, simulate_study

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("B2M_SHARED_REAL", REPO.parent / "shared" / "real"))

# Rules call the `b2m` command: subprocesses find it beside this interpreter.
SUBPROCESS_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

TINY = SimulationConfig(n_subjects=1, n_training_runs=3, n_test_runs=1, shape=(12, 14, 10), snr=0.8,
                        corpus_tracks_per_genre=2, seed=7)


@pytest.fixture(scope="session")
def real() -> Path:
    """The real, externally made test data (ds003720 metadata, captions, GTZAN clips, EPI files)."""
    if not REAL.is_dir():
        message = (f"real test data not found at {REAL}: these tests need the project's shared/real folder "
                   "beside the repository (or B2M_SHARED_REAL pointing to it)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REAL


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> dict:
    """A small synthetic study with planted signal: 1 subject, 3 training + 1 test run."""
    return simulate_study(tmp_path_factory.mktemp("tiny"), TINY)


@pytest.fixture(scope="session")
def null_study(tmp_path_factory) -> dict:
    """The same design with no signal planted (snr 0): decoding must sit at chance."""
    return simulate_study(tmp_path_factory.mktemp("null"), SimulationConfig(**{**TINY.__dict__, "snr": 0.0}))


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, for the listening page's browser tests."""
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium): the browser test cannot run"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
