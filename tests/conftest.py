"""Shared fixtures: the real data in ../shared/real, and tiny synthetic studies made once per session."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml

from b2m.data.simulate import DESIGN, SimulationConfig, simulate_study

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("B2M_SHARED_REAL", REPO.parent / "shared" / "real"))

# Rules call the `b2m` command: subprocesses find it beside this interpreter.
SUBPROCESS_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


class GuardedFit(typing.NamedTuple):
    """One fit the leakage guard checked: the module that guarded it, its rows (samples × columns), the clips of
    those rows and the clips held out."""

    module: str
    X: np.ndarray
    clips: frozenset
    held_out: frozenset


def record_guarded_fits(monkeypatch, *modules) -> list[GuardedFit]:
    """Every fit guarded by ``check_training_rows`` in ``modules``, recorded in call order (the guard still runs):
    the list fills as the fits run."""
    calls = []
    for module in modules:
        def check(X, rows, held_out, original=module.check_training_rows, name=module.__name__):
            calls.append(GuardedFit(name, np.asarray(X), frozenset(rows.clip_id), frozenset(held_out)))
            return original(X, rows, held_out)

        monkeypatch.setattr(module, "check_training_rows", check)
    return calls


def reduced_demo() -> dict:
    """The demo config, one subject, the test fold and fewer permutations: every key the demo sets, still set."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["simulate"]["n_subjects"], config["subjects"], config["folds"] = 1, ["sub-001"], ["test"]
    config["decoding"].update(n_permutations=20, n_bootstrap=50)
    config["encoding"].update(n_permutations=50, n_iter=2)
    config["reconstruction"]["n_chance"] = 10
    return config


def reduced_decoders() -> dict:
    """The second demo (config/decoders.yaml over the reduced demo) cut to two subjects and the acoustic space,
    with every decoder, a small contrastive search and two voxel-selection candidates, each decoder option a key
    the config sets (but voxel_selection.by: its other value takes other candidates)."""
    from snakemake.utils import update_config

    config = reduced_demo()
    update_config(config, yaml.safe_load((REPO / "config/decoders.yaml").read_text()))
    config["simulate"]["n_subjects"], config["subjects"] = 2, ["sub-001", "sub-002"]
    config["features"] = {"acoustic": config["features"]["acoustic"]}
    config["encoding"]["banded"] = []
    config["decoding"]["contrastive"] = {"temperatures": [0.1], "weight_decays": [0.01], "epochs": [5, 10],
                                         "learning_rate": 0.003, "batch_size": 512, "components": 64}
    config["decoding"]["models"] = [*config["decoding"]["models"], "whole-mask-selected"]
    config["decoding"]["voxel_selection"] = {"candidates": [200, "all"]}  # by: top (r would refuse counts)
    config["decoding"]["pooled"].pop("kshot_minutes")  # two subjects: a left-out one has no pool of two
    return config


def finish(workdir: Path, config: dict) -> None:
    """Run ``config`` (as ``workdir``'s run.yaml, beside copies of the config and workflow folders) to the end,
    then check that nothing is left to do."""
    for folder in ("config", "workflow"):
        shutil.copytree(REPO / folder, workdir / folder)
    (workdir / "run.yaml").write_text(yaml.safe_dump(config))
    done = run_snakemake(workdir, "--cores", "2", timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    again = run_snakemake(workdir, "--cores", "2", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


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


def prepare(study, folder):
    """Responses and acoustic features of a study's sub-001 under ``folder`` (clean/, clean/w/, acoustic.parquet),
    ready for decoding on the numpy backend; cv-<k> holds out the k-th training run."""
    from b2m.data.bids import BidsDataset
    from b2m.data.responses import clean_subject, window_responses
    from b2m.features import extract_features, make_extractor
    from b2m.io import write_parquet
    from b2m.models.backend import use_backend
    from b2m.options import CleaningOptions

    dataset = BidsDataset(study["bids_root"], dataclasses.replace(DESIGN, outer_folds=TINY.n_training_runs))
    clean_subject(dataset, "sub-001", folder / "clean",
                  CleaningOptions(mask=str(study["mask"]), atlas=str(study["atlas"])))
    window_responses(dataset, "sub-001", folder / "clean", folder / "clean/w", 1.5, 1.5)
    features = extract_features(dataset.stimulus_table(), study["stimuli"], make_extractor("acoustic", 1.5, 1.5))
    write_parquet(folder / "acoustic.parquet", features, {})
    use_backend("numpy")
    return folder


@pytest.fixture(scope="session")
def planted(tiny_study, tmp_path_factory):
    """The tiny study's sub-001, prepared for decoding (``prepare``)."""
    return prepare(tiny_study, tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def unplanted(null_study, tmp_path_factory):
    """The null study's sub-001, prepared for decoding (``prepare``)."""
    return prepare(null_study, tmp_path_factory.mktemp("unplanted"))


POOL_SUBJECTS = ["sub-001", "sub-002", "sub-003"]
POOL = dataclasses.replace(TINY, n_subjects=3, snr_spread=2.0, voxel_dropout=0.2)


@pytest.fixture(scope="session")
def pool(tmp_path_factory):
    """Three tiny subjects who differ in SNR (snr / 2 … snr × 2) and voxels (each mask without its own 20 % of the
    cortex): their window responses (``<subject>/w``) and the acoustic table; the pooled and k-shot tests'."""
    from b2m.data.bids import BidsDataset
    from b2m.data.responses import clean_subject, window_responses
    from b2m.features import extract_features, make_extractor
    from b2m.io import write_parquet
    from b2m.models.backend import use_backend
    from b2m.options import CleaningOptions

    folder = tmp_path_factory.mktemp("pool")
    study = simulate_study(folder / "study", POOL)
    dataset = BidsDataset(study["bids_root"], DESIGN)
    for subject in POOL_SUBJECTS:
        clean_subject(dataset, subject, folder / subject, CleaningOptions(mask=str(study["subject_masks"][subject])))
        window_responses(dataset, subject, folder / subject, folder / subject / "w", 1.5, 1.5)
    write_parquet(folder / "acoustic.parquet", extract_features(dataset.stimulus_table(), study["stimuli"],
                                                                make_extractor("acoustic", 1.5, 1.5)), {})
    use_backend("numpy")
    return folder


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


@pytest.fixture(scope="session")
def reduced_demo_run(tmp_path_factory) -> Path:
    """The workdir of a finished local run (profiles/local) of the reduced demo: the reference outputs."""
    workdir = tmp_path_factory.mktemp("reduced-demo")
    (workdir / "run.yaml").write_text(yaml.safe_dump(reduced_demo()))
    done = run_snakemake(workdir, "--profile", str(REPO / "profiles/local"))
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def decoders_run(tmp_path_factory) -> tuple[Path, dict]:
    """The workdir and config of a finished run of ``reduced_decoders``."""
    workdir, config = tmp_path_factory.mktemp("decoders"), reduced_decoders()
    finish(workdir, config)
    return workdir, config


def run_snakemake(workdir: Path, *args: str, env: dict = SUBPROCESS_ENV, timeout: int = 1500):
    """The workflow on ``workdir``'s run.yaml (a config that stands alone), from the repository."""
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(workdir / "run.yaml"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
