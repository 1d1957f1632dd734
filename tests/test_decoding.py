"""Decoding on the synthetic study: beats chance by a wide margin where signal is planted, sits at chance
where none is, and never trains on a test clip."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from b2m.data.bids import BidsDataset
from b2m.data.responses import clean_subject, window_responses
from b2m.features import extract_features, make_extractor
from b2m.io import write_parquet
from b2m.models.backend import use_backend
from b2m.models.decoding import LeakageError, check_no_leakage, decode_test_fold

ALPHAS = np.logspace(-1, 7, 17)


def prepare(study, folder):
    """Responses and acoustic features of sub-001, ready for decoding."""
    dataset = BidsDataset(study["bids_root"])
    clean_subject(dataset, "sub-001", folder / "clean", mask=str(study["mask"]))
    window_responses(dataset, "sub-001", folder / "clean", folder / "w", 1.5, 1.5)
    features = extract_features(dataset.stimulus_table(), study["stimuli"], make_extractor("acoustic", 1.5, 1.5))
    write_parquet(folder / "acoustic.parquet", features, {})
    use_backend("numpy")
    return folder


@pytest.fixture(scope="module")
def planted(tiny_study, tmp_path_factory):
    return prepare(tiny_study, tmp_path_factory.mktemp("planted"))


def decode(folder, n_permutations=100):
    return decode_test_fold(folder / "w", folder / "acoustic.parquet", ALPHAS, n_permutations=n_permutations)


def scores_by_level(result):
    return result["scores"].set_index("level")


def test_planted_signal_is_decoded_well_above_chance(planted):
    scores = scores_by_level(decode(planted))
    window = scores.loc["window"]
    assert window.n_items == 100 and abs(window.chance_mean - 0.5) < 0.02
    assert window.value > 0.65 and window.value > window.chance_mean + 5 * window.chance_sd
    assert scores.loc["clip", "value"] > 0.6  # 10 clips: chance sd is about 0.1


def test_without_planted_signal_decoding_is_at_chance(null_study, tmp_path):
    window = scores_by_level(decode(prepare(null_study, tmp_path))).loc["window"]
    assert abs(window.value - window.chance_mean) < 4 * window.chance_sd + 0.02


def test_decoding_is_reproducible_bit_for_bit(planted):
    first, second = decode(planted, n_permutations=20), decode(planted, n_permutations=20)
    assert first["predicted"].tobytes() == second["predicted"].tobytes()
    assert first["scores"].equals(second["scores"])


def test_leakage_is_refused():
    with pytest.raises(LeakageError, match="1 test clip"):
        check_no_leakage(["pop.00001", "jazz.00002"], ["jazz.00002", "rock.00003"])
    check_no_leakage(["pop.00001"], ["rock.00003"])


def test_decoder_never_trains_on_a_test_clip(planted, tmp_path):
    """Plant a test clip into the training rows: decoding must refuse to fit."""
    shutil.copytree(planted, tmp_path / "copy")
    rows = pd.read_parquet(tmp_path / "copy/w/train_rows.parquet")
    rows.loc[0, "clip_id"] = pd.read_parquet(tmp_path / "copy/w/test_rows.parquet").clip_id.iloc[0]
    rows.to_parquet(tmp_path / "copy/w/train_rows.parquet")
    with pytest.raises(LeakageError):
        decode(tmp_path / "copy", n_permutations=10)
