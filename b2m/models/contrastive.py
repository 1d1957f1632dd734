"""Contrastive linear decoder: a linear map from responses (samples × voxels) to the embedding (samples × dims)
trained with an InfoNCE loss, beside ridge's least squares.

The map is W = V B: V the first ``components`` principal axes of the training responses (voxels × components,
scaled so the projected responses have unit mean square; ``Basis``), B (components × dims) learned. For every batch of
training rows the loss is InfoNCE in both directions over the cosine similarities of the predicted and true
rows divided by the temperature; the other windows of a row's own clip are left out of its negatives (they
hear the same music). B is trained by AdamW (decoupled weight decay) from a seeded start, in seeded batches, so
a fit is the same bits on the same CPU and thread count.

Temperature, weight decay and epochs are chosen by inner cross-validation grouped by run (``run_splits``): each
split's principal axes come from its own training rows, and every setting is scored by the validation rows'
mean window-level identification accuracy (``b2m.evaluate``), the measure the decoders are compared by.
Predictions are in the targets' standardised space (training mean and sd, as ridge's), scaled by the least-
squares factor of the training rows so that their size is meaningful for retrieval in the raw space.
"""

from __future__ import annotations

import itertools
import logging
import typing
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.evaluate.identification import identification_accuracy
from b2m.models.folds import check_finite, check_training_rows, inner_groups, run_splits
from b2m.options import ContrastiveOptions, RidgeOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Basis:
    """The principal axes of some training responses: the responses' mean (voxels,) and the axes (voxels ×
    components), scaled so that the projected training rows have unit mean square."""

    mean: np.ndarray
    axes: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, components: int) -> "Basis":
        """The first ``components`` axes (0: all) of X (samples × voxels): the eigenvectors of the smaller Gram
        matrix of the centred rows (voxels × voxels, or beyond as many voxels as samples, samples × samples,
        whose eigenvectors give the axes through Xᵀ), from float32 products solved in float64, so that a
        full-size subject needs one float32 copy of X and a Gram matrix beside it. Null directions are left out."""
        mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = (X - mean).astype(np.float32, copy=False)
        by_voxels = centred.shape[1] <= centred.shape[0]
        values, vectors = np.linalg.eigh((centred.T @ centred if by_voxels else centred @ centred.T)
                                         .astype(np.float64))
        order = np.argsort(values)[::-1]
        rank = int((values > values.max() * 1e-10).sum())
        keep = order[:rank if components <= 0 else min(components, rank)]
        values, vectors = values[keep], vectors[:, keep].astype(np.float32)
        axes = vectors if by_voxels else (centred.T @ vectors) / np.sqrt(values).astype(np.float32)
        scale = np.sqrt(values.mean() / len(X))
        return cls(mean, (axes / scale).astype(np.float32))

    def project(self, X: np.ndarray) -> np.ndarray:
        """Responses (samples × voxels) in the basis (samples × components)."""
        return ((X - self.mean) @ self.axes).astype(np.float32)


def info_nce(predicted, true, clips, temperature: float):
    """Symmetric InfoNCE of a batch: cross-entropy of each predicted row against every true row (and back), the
    logits their cosine similarities / ``temperature``; rows of the same clip other than the row itself are
    masked. ``clips``: integer clip code of every row (torch tensors throughout)."""
    import torch

    logits = torch.nn.functional.normalize(predicted, dim=1) @ torch.nn.functional.normalize(true, dim=1).T
    logits = logits / temperature
    same_clip = clips[:, None] == clips[None, :]
    same_clip.fill_diagonal_(False)
    logits = logits.masked_fill(same_clip, float("-inf"))
    labels = torch.arange(len(logits), device=logits.device)
    return (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)) / 2


def train_map(Z: np.ndarray, Yz: np.ndarray, clips: np.ndarray, temperature: float, weight_decay: float,
              epochs, spec: ContrastiveOptions):
    """Train B on projected responses Z (samples × components) and standardised targets Yz (samples × dims);
    yields (epoch, B as numpy) after each epoch listed in ``epochs`` (ascending)."""
    import torch

    generator = torch.Generator().manual_seed(spec.seed)
    device = torch.device(spec.device)
    Z_t, Y_t = torch.from_numpy(Z).to(device), torch.from_numpy(Yz).to(device)
    clips_t = torch.from_numpy(clips).to(device)
    B = torch.nn.Parameter((torch.randn(Z.shape[1], Yz.shape[1], generator=generator) / np.sqrt(Z.shape[1]))
                           .to(device))
    optimiser = torch.optim.AdamW([B], lr=spec.learning_rate, weight_decay=weight_decay)
    wanted = set(epochs)
    for epoch in range(1, max(epochs) + 1):
        order = torch.randperm(len(Z), generator=generator).to(device)
        for batch in order.split(spec.batch_size):
            if len(batch) < 2:
                continue
            optimiser.zero_grad()
            info_nce(Z_t[batch] @ B, Y_t[batch], clips_t[batch], temperature).backward()
            optimiser.step()
        if epoch in wanted:
            yield epoch, B.detach().cpu().numpy().copy()


def settings(spec: ContrastiveOptions) -> list[tuple[float, float]]:
    """The (temperature, weight decay) pairs searched, in grid order."""
    return list(itertools.product(spec.temperatures, spec.weight_decays))


@dataclass
class ContrastiveDecoder:
    """InfoNCE-trained linear decoder with run-grouped inner CV (``ridge.cv_folds`` folds) over ``contrastive``'s
    settings; fitted state in trailing-underscore attributes: ``cv_table_`` (temperature, weight_decay, epochs,
    split, accuracy), the chosen ``temperature_``, ``weight_decay_``, ``epochs_``, the ``basis_`` and map
    ``coef_`` (components × dims)."""

    options: typing.ClassVar[tuple] = (RidgeOptions, ContrastiveOptions)  # what the constructor takes, in order
    pooled: typing.ClassVar[bool] = False
    needs_rois: typing.ClassVar[bool] = False
    ridge: RidgeOptions = RidgeOptions()
    contrastive: ContrastiveOptions = ContrastiveOptions()

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out, factors=None) -> "ContrastiveDecoder":
        """Fit on responses X (samples × voxels) and targets Y (samples × dims); ``rows`` (clip_id, group) describe
        the samples and group the inner CV; no clip of ``held_out`` (the outer test fold) may be among them
        (``check_training_rows``). ``factors`` (the ridge decoders' factorisation) is not used."""
        check_finite("the targets", Y)
        self.training_clips_ = check_training_rows(X, rows, held_out)
        self.target_mean_ = Y.mean(axis=0)
        self.target_sd_ = Y.std(axis=0)
        self.target_sd_[self.target_sd_ == 0] = 1.0
        Yz = self.standardise(Y)
        clips = pd.factorize(rows["clip_id"])[0].astype(np.int64)
        self.cv_table_ = self._search(X, Yz, clips, run_splits(inner_groups(rows), self.ridge.cv_folds))
        mean = self.cv_table_.groupby(["temperature", "weight_decay", "epochs"], sort=False)["accuracy"].mean()
        self.temperature_, self.weight_decay_, self.epochs_ = mean.index[int(np.argmax(mean.to_numpy()))]
        self.basis_ = Basis.of(X, self.contrastive.components)
        Z = self.basis_.project(X)
        _, self.coef_ = next(train_map(Z, Yz, clips, self.temperature_, self.weight_decay_, [self.epochs_],
                                       self.contrastive))
        predicted = Z @ self.coef_
        self.scale_ = float((predicted * Yz).sum() / max((predicted ** 2).sum(), np.finfo(np.float32).tiny))
        log.info("contrastive decoder: temperature %g, weight decay %g, %d epochs (inner-CV identification %.3f); "
                 "%d samples × %d components → %d dims", self.temperature_, self.weight_decay_, self.epochs_,
                 mean.max(), len(X), Z.shape[1], Y.shape[1])
        return self

    def _search(self, X, Yz, clips, splits) -> pd.DataFrame:
        """Validation identification accuracy of every setting × epochs on every inner split."""
        records, epochs = [], sorted(self.contrastive.epochs)
        for split, (train, validation) in enumerate(splits):
            basis = Basis.of(X[train], self.contrastive.components)
            Z_train, Z_validation = basis.project(X[train]), basis.project(X[validation])
            for temperature, weight_decay in settings(self.contrastive):
                for epoch, B in train_map(Z_train, Yz[train], clips[train], temperature, weight_decay, epochs,
                                          self.contrastive):
                    accuracy = float(identification_accuracy(Z_validation @ B, Yz[validation]).mean())
                    records.append({"temperature": temperature, "weight_decay": weight_decay, "epochs": epoch,
                                    "split": split, "accuracy": accuracy})
            log.info("contrastive inner split %d of %d done", split + 1, len(splits))
        return pd.DataFrame(records)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets in the standardised space (samples × dims)."""
        return (self.scale_ * (self.basis_.project(X) @ self.coef_)).astype(np.float32)

    def standardise(self, Y: np.ndarray) -> np.ndarray:
        """Targets (samples × dims) in the standardised space of the training rows."""
        return ((Y - self.target_mean_) / self.target_sd_).astype(np.float32)
