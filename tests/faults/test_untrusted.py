"""Untrusted files: nothing from outside the run is unpickled. Arrays are read with ``allow_pickle=False``;
checkpoints with ``torch.load(weights_only=True)``, a published one only after its pinned sha256 matches."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from b2m.errors import InputError
from b2m.features.clap import PUBLISHED_SHA256, read_checkpoint
from b2m.io import file_digest, load_npy


class Payload:
    """Unpickling this runs a command: what a hostile checkpoint or array would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_pickles_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "clap.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": Payload(tmp_path / "ran")}, path)
    with pytest.raises(InputError, match="clap.pt: the checkpoint holds more than tensors"):
        read_checkpoint(path)
    assert not (tmp_path / "ran").exists()


def test_tensors_with_numpy_metadata_are_read(tmp_path):
    """laion-clap's checkpoints carry NumPy floats beside the tensors: those are allowed, nothing else."""
    path = tmp_path / "clap.pt"
    torch.save({"state_dict": {"module.w": torch.arange(3.0)}, "epoch": 15, "best_score": np.float64(0.9014)}, path)
    state = read_checkpoint(path)
    assert list(state) == ["w"] and torch.equal(state["w"], torch.arange(3.0))


def test_a_published_checkpoint_must_match_its_pinned_sha256(tmp_path):
    path = tmp_path / "music_audioset_epoch_15_esc_90.14.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    assert file_digest(path, "sha256") != PUBLISHED_SHA256[path.name]
    with pytest.raises(InputError, match="sha256 differs from the published checkpoint's"):
        read_checkpoint(path)


def test_an_array_that_pickles_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "train.npy"
    np.save(path, np.array([Payload(tmp_path / "ran")], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="train.npy: .*pickled objects"):
        load_npy(path)
    assert not (tmp_path / "ran").exists()
