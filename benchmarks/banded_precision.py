"""Banded ridge voxels whose chosen band weights fall below float32 resolution, on the demo's results.

Not a speed measure: after ``make demo``, refits one subject × fold's banded ridge as the DAG does (the demo
config's spaces, draws, alphas and seed) and counts the voxels whose chosen weight γ of some band is under
eps(float32)² × the largest γ: that band's columns, scaled by √γ, are below float32 resolution beside the others.
Printed beside how many of those voxels, and of all, the DAG's ``voxels.parquet`` has at q < 0.05.

    python benchmarks/banded_precision.py [--subject sub-003] [--fold genre-rock]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from b2m.layout import Layout
from b2m.models.backend import use_backend
from b2m.data.windowed import load_test_repeats
from b2m.models.encoding import ENCODERS, predict_held_out_bands, score_banded
from b2m.stages.models import predict_folds

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", default="sub-003")
    parser.add_argument("--fold", default="genre-rock")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    ridge, encoding = config["ridge"], config["encoding"]
    spaces = encoding["banded"]
    window = config["features"][spaces[0]]
    layout = Layout(str(args.results))
    responses = layout.windows(args.subject, window["window_s"], window["stride_s"]).path
    use_backend("numpy")
    encoder = ENCODERS["banded"](alphas=tuple(np.logspace(ridge["alpha_min_exp"], ridge["alpha_max_exp"],
                                                          ridge["n_alphas"])),
                                 n_iter=encoding["n_iter"], n_folds=ridge["cv_folds"], seed=ridge["seed"])
    held_out = predict_folds(responses, args.fold, (), {name: layout.features(name) for name in spaces},
                             predict_held_out_bands, encoder)
    fitted = score_banded(held_out, spaces, args.fold, load_test_repeats(responses, args.fold),
                          encoding["n_permutations"], ridge["seed"])
    model = fitted.encoder.model_
    gammas = np.exp(model.deltas_) * model.best_alphas_[None, :]  # bands × voxels
    unresolved = (gammas < np.finfo(np.float32).eps ** 2 * gammas.max(axis=0)).any(axis=0)
    dag = pd.read_parquet(layout.banded(args.subject, args.fold).voxels)
    significant = (dag.q < 0.05).to_numpy()
    print(f"{args.subject} {args.fold}, banded {'+'.join(spaces)}: {len(dag)} voxels; {unresolved.sum()} with a band "
          f"weight below float32 resolution (smallest γ {gammas.min():.3g}); DAG q < 0.05: {significant.sum()} "
          f"voxels, {(significant & unresolved).sum()} of them among those; this refit: "
          f"{int((fitted.voxels.q < 0.05).sum())} at q < 0.05")


if __name__ == "__main__":
    main()
