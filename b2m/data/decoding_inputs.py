"""The decoders' inputs as the decode stages read and write them: one fold's responses paired with its feature rows
(``TargetFold``; each pooled subject's, ``SubjectFold``), the ROI label of every response column, and the fold's
factorisation, factors.npz (``b2m.models.factors``), written one side at a time and read one side at a time.
Models take the arrays; stages read and write them here."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.data.windowed import align, load_fold
from b2m.layout import ScanFiles
from b2m.models.factors import DecoderFactors, ResponseFactors
from b2m.models.ridge import SplitBasis, StimulusSide

log = logging.getLogger(__name__)


@dataclass
class TargetFold:
    """One outer fold with its targets: training and test rows (row tables), responses (samples × voxels) and the
    feature rows paired with them on (clip_id, window) (samples × dims)."""

    train_rows: pd.DataFrame
    X_train: np.ndarray
    Y_train: np.ndarray
    test_rows: pd.DataFrame
    X_test: np.ndarray
    Y_test: np.ndarray


def load_target_fold(responses_dir, features: pd.DataFrame, features_path, fold: str) -> TargetFold:
    """The fold of one subject's window responses (``load_fold``) with the targets of ``features`` (the table
    read from ``features_path``, which errors name)."""
    data = load_fold(responses_dir, fold)
    train_rows, Y_train = align(data.train_rows, features, features_path)
    test_rows, Y_test = align(data.test_rows, features, features_path)
    return TargetFold(train_rows, data.X_train, Y_train, test_rows, data.X_test, Y_test)


@dataclass
class SubjectFold(TargetFold):
    """One subject's outer fold with its targets (``TargetFold``)."""

    subject: str


def load_subject_folds(responses: dict, features_path, fold: str) -> list[SubjectFold]:
    """Each subject's fold (``responses``: subject → its window-responses folder, in pooling order) with the
    targets of the feature table at ``features_path``."""
    features = pd.read_parquet(features_path)
    return [SubjectFold(**vars(load_target_fold(folder, features, features_path, fold)),
                        subject=subject) for subject, folder in responses.items()]


def voxel_labels(positions: ScanFiles) -> np.ndarray | None:
    """ROI label of every response column, from the subject's voxel table (None: no atlas given)."""
    path = positions.voxels
    voxels = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if "roi" not in voxels.columns or (voxels["roi"].fillna(0) <= 0).all():
        return None
    return voxels["roi"].fillna(0).to_numpy(dtype=int)


SPLIT_FIELDS, REFIT_FIELDS = ("U", "projected", "values"), ("U", "values", "Vt")


def factor_arrays(splits, decoders: Iterable[tuple[str, DecoderFactors]],
                  index: dict) -> Iterator[tuple[str, np.ndarray]]:
    """The factorisation as named numpy arrays, one at a time, each side's as it is made; ``index`` is filled
    with its JSON-able index (``read_factors`` inverts the two)."""
    from b2m.models.backend import get_backend

    to_numpy = get_backend().to_numpy
    index.update(n_splits=len(splits), decoders={})
    for k, (train, validation) in enumerate(splits):
        yield f"splits/{k}/train", np.asarray(train)
        yield f"splits/{k}/validation", np.asarray(validation)
    for name, decoder in decoders:
        yield f"{name}/columns", decoder.columns
        for extra in ("bands", "gammas"):
            if getattr(decoder, extra) is not None:
                yield f"{name}/{extra}", getattr(decoder, extra)
        forms = index["decoders"][name] = []
        for draw, side in enumerate(decoder.sides):
            for k, basis in enumerate(side.splits):
                for key in SPLIT_FIELDS:
                    yield f"{name}/{draw}/{k}/{key}", to_numpy(getattr(basis, key))
            for key in REFIT_FIELDS:
                if getattr(side, key) is not None:
                    yield f"{name}/{draw}/refit/{key}", to_numpy(getattr(side, key))
            forms.append(side.form)


def write_factors(path, splits, decoders: Iterable[tuple[str, DecoderFactors]], params: dict) -> None:
    """factors.npz (uncompressed, as ``np.savez`` writes it) with its index and provenance in the JSON sidecar,
    atomically; each array is written as it is made, so one side is held at a time."""
    from b2m.io import atomic_path, provenance, write_sidecar

    index, count, size = {}, 0, 0
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, array in factor_arrays(splits, decoders, index):
                with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
                count, size = count + 1, size + array.nbytes
    write_sidecar(path, {**index, **provenance(params)})
    log.info("wrote %s: %d arrays, %.1f MB", path, count, size / 1e6)


@dataclass
class StoredSide:
    """One draw's stimulus side of a decoder in factors.npz, read (onto the backend) only when its fit needs it:
    a job holds one draw's bases at a time, however many the file has. ``columns``: as ``StimulusSide``'s."""

    path: object
    name: str
    draw: int
    form: str
    splits: list  # (train, validation) row indices
    columns: object = None

    def load(self) -> StimulusSide:
        from b2m.models.backend import get_backend

        backend = get_backend()
        prefix = f"{self.name}/{self.draw}"
        with np.load(self.path, allow_pickle=False) as stored:
            def on(key):
                return backend.asarray(stored[f"{prefix}/{key}"])

            bases = [SplitBasis(backend.asarray(train), backend.asarray(validation),
                                *(on(f"{k}/{key}") for key in SPLIT_FIELDS))
                     for k, (train, validation) in enumerate(self.splits)]
            refit = {key: on(f"refit/{key}") for key in REFIT_FIELDS if f"{prefix}/refit/{key}" in stored.files}
        return StimulusSide(self.form, bases, **refit, columns=self.columns)


def read_factors(path) -> ResponseFactors:
    """The factorisation written by ``write_factors``: its index and splits now, each side when it is fitted
    (``StoredSide``)."""
    from b2m.io import sidecar_path

    index = json.loads(sidecar_path(path).read_text())
    with np.load(path, allow_pickle=False) as stored:
        small = {key: stored[key] for key in stored.files if key.startswith("splits/")
                 or key.rsplit("/", 1)[-1] in ("columns", "bands", "gammas")}
    splits = [(small[f"splits/{k}/train"], small[f"splits/{k}/validation"]) for k in range(index["n_splits"])]
    decoders = {name: DecoderFactors(small[f"{name}/columns"],
                                     [StoredSide(path, name, draw, form, splits) for draw, form in enumerate(forms)],
                                     small.get(f"{name}/bands"), small.get(f"{name}/gammas"))
                for name, forms in index["decoders"].items()}
    return ResponseFactors(splits, decoders, path)
