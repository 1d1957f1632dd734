"""Encoding, decoding and banded encoding at ds003720 scale through b2m's own estimators (``RidgeEncoder``,
``RidgeDecoder``, ``BandedEncoder``) on several himalaya backends in one process: the GPU (``torch_cuda``)
against the CPU (``cpu``: numpy for the primal form, torch for the kernel form). Only the backend differs
between the runs; the ridge options (alphas, CV folds, ``n_targets_batch``) are the real study's, read from
config/ds003720.yaml.

Data: random float32 with planted linear maps, at the real sizes: 4800 training rows (12 runs × 40 clips × 10
windows), 600 test rows, 60,000 voxels, a 512-d space; the banded case adds 123-d and 10-d spaces (the demo's
acoustic and genre). Reported per case and backend: fit + test prediction wall time, achieved GFLOP/s of the
counted products (``ridge_scale.counted_flops``) against the device's measured float32 matmul rate, and how far
the backends' predictions and chosen alphas agree.

    python benchmarks/ridge_gpu.py                      # torch_cuda and cpu, every case, full size
    python benchmarks/ridge_gpu.py --backends cpu --voxels 2000 --banded-voxels 500   # a quick check anywhere
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ridge_scale import counted_flops  # noqa: E402  (benchmarks/ is the script's folder)

from b2m.models.backend import use_backend  # noqa: E402
from b2m.models.decoding import RidgeDecoder  # noqa: E402
from b2m.models.encoding import BandedEncoder, RidgeEncoder  # noqa: E402
from b2m.options import RidgeOptions, from_config  # noqa: E402

RUNS, CLIPS_PER_RUN, WINDOWS, TEST_CLIPS = 12, 40, 10, 60
BANDS = {"clap": 512, "acoustic": 123, "genre": 10}
CASES = ("encode", "decode", "banded")


def ridge_options() -> dict:
    """Alphas, inner CV folds and solver parameters of the real study's config."""
    ridge = yaml.safe_load((ROOT / "config" / "ds003720.yaml").read_text())["ridge"]
    return {"alphas": np.logspace(ridge["alpha_min_exp"], ridge["alpha_max_exp"], ridge["n_alphas"]),
            "n_folds": ridge["cv_folds"], "solver_params": {"n_targets_batch": ridge["n_targets_batch"]}}


def study_ridge() -> RidgeOptions:
    """The real study's ridge options (the decoder takes them as they are)."""
    return from_config(RidgeOptions, yaml.safe_load((ROOT / "config" / "ds003720.yaml").read_text()))


def rows_table(n_clips: int, first_clip: int, runs: int) -> pd.DataFrame:
    """Row table of ``n_clips`` clips of WINDOWS windows each, spread over ``runs`` runs."""
    clip = np.repeat(np.arange(first_clip, first_clip + n_clips), WINDOWS)
    run = (clip - first_clip) * runs // n_clips + 1
    return pd.DataFrame({"run": run, "group": run, "event": clip, "clip_id": clip,
                         "window": np.tile(np.arange(WINDOWS), n_clips)})


def planted(spaces: dict, voxels: int, rng) -> np.ndarray:
    """Responses (samples × voxels, float32): a random linear map of every space plus unit noise."""
    samples = len(next(iter(spaces.values())))
    responses = rng.standard_normal((samples, voxels), dtype=np.float32)
    for X in spaces.values():
        weights = rng.standard_normal((X.shape[1], voxels), dtype=np.float32) / np.sqrt(X.shape[1] * len(spaces))
        responses += X @ weights
    return responses


def make_data(voxels: int, bands: dict, seed: int = 0) -> dict:
    """Training and test rows, spaces (name → samples × dims) and planted responses."""
    rng = np.random.default_rng(seed)
    train_rows = rows_table(RUNS * CLIPS_PER_RUN, 0, RUNS)
    test_rows = rows_table(TEST_CLIPS, RUNS * CLIPS_PER_RUN, 1)
    spaces = {name: rng.standard_normal((len(train_rows) + len(test_rows), dims), dtype=np.float32)
              for name, dims in bands.items()}
    responses = planted(spaces, voxels, rng)
    n = len(train_rows)
    return {"train_rows": train_rows, "test_rows": test_rows, "Y_train": responses[:n], "Y_test": responses[n:],
            "train": {k: X[:n] for k, X in spaces.items()}, "test": {k: X[n:] for k, X in spaces.items()}}


def matmul_gflops(backend_name: str, size: int = 4096, repeats: int = 5) -> float:
    """The float32 matrix-product rate of the device under ``backend_name`` (GFLOP/s)."""
    from himalaya.backend import set_backend

    backend = set_backend(backend_name)
    a = backend.asarray(np.random.default_rng(0).standard_normal((size, size), dtype=np.float32))
    backend.to_numpy((a @ a)[0, 0])
    began = time.perf_counter()
    for _ in range(repeats):
        product = a @ a
    backend.to_numpy(product[0, 0])
    return 2 * size ** 3 * repeats / (time.perf_counter() - began) / 1e9


def fit_predict(case: str, data: dict, backend: str, options: dict):
    """Fit the case's estimator on the training rows, predict the test rows: (predictions, chosen alphas,
    form, counted FLOPs)."""
    if case == "encode":
        X, X_test = data["train"]["clap"], data["test"]["clap"]
        use_backend(backend)
        model = RidgeEncoder(**options).fit(X, data["Y_train"], data["train_rows"], data["test_rows"]["clip_id"])
        predicted = model.predict(X_test, data["test_rows"])
        flops = counted_flops("encode", *X.shape, data["Y_train"].shape[1])
        return predicted, model.best_alphas_, model.form_, flops
    if case == "decode":
        X, Y = data["Y_train"], data["train"]["clap"]
        use_backend(backend)
        model = RidgeDecoder(study_ridge()).fit(X, Y, data["train_rows"], data["test_rows"]["clip_id"])
        return model.predict(data["Y_test"]), model.best_alphas_, model.form_, counted_flops("decode", *X.shape,
                                                                                             Y.shape[1])
    use_backend(backend)
    model = BandedEncoder(alphas=options["alphas"], n_folds=options["n_folds"],
                          solver_params=options["solver_params"]).fit(data["train"], data["Y_train"],
                                                                      data["train_rows"], data["test_rows"]["clip_id"])
    return model.predict_split(data["test"]).sum(axis=0), model.model_.best_alphas_, "primal, banded", None


def to_numpy(values) -> np.ndarray:
    from b2m.models.backend import get_backend

    return np.asarray(get_backend().to_numpy(values), dtype=np.float64)


def run_case(case: str, data: dict, backends: list, rates: dict, options: dict, out) -> None:
    """Time the full case on each backend (a GPU one warmed up first on a few voxels); print one JSON line per
    backend, and the agreement of each later backend's predictions and alphas with the first's."""
    reference = None
    for backend in backends:
        if "cuda" in backend:  # load the device's kernels and libraries before timing
            small = {**data, "Y_train": data["Y_train"][:, :64], "Y_test": data["Y_test"][:, :64]}
            fit_predict(case, small, backend, options)
        began = time.perf_counter()
        predicted, alphas, form, flops = fit_predict(case, data, backend, options)
        wall = time.perf_counter() - began
        record = {"case": case, "backend": backend, "form": form, "voxels": data["Y_train"].shape[1],
                  "wall_s": round(wall, 2)}
        if flops:
            record.update(gflops_counted=round(flops / 1e9), gflop_per_s=round(flops / wall / 1e9, 1),
                          share_of_matmul=round(flops / wall / 1e9 / rates[backend], 3))
        print(json.dumps(record), file=out, flush=True)
        current = (np.asarray(predicted, dtype=np.float64), to_numpy(alphas))
        if reference is None:
            reference = current
            continue
        scale = reference[0].std()
        print(json.dumps({"case": case, "agreement": f"{backends[0]} vs {backend}",
                          "max_abs_prediction_diff_over_sd": float(np.abs(current[0] - reference[0]).max() / scale),
                          "same_alpha_share": float(np.isclose(current[1], reference[1]).mean())}),
              file=out, flush=True)


def machine_line(rates: dict) -> str:
    import himalaya
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    rates_text = ", ".join(f"{name} {rate:.0f}" for name, rate in rates.items())
    return (f"{datetime.date.today()}: {platform.machine()}, {os.cpu_count()} cores, {gpu}; Python "
            f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, himalaya "
            f"{himalaya.__version__}; float32 4096² matmul GFLOP/s: {rates_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch_cuda,cpu", help="comma-separated; the first is the reference")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--voxels", type=int, default=60000, help="voxels of the encoding and decoding cases")
    parser.add_argument("--banded-voxels", type=int, default=10000, help="voxels of the banded case")
    parser.add_argument("--out", type=argparse.FileType("w"), default=sys.stdout, help="JSON lines (default stdout)")
    args = parser.parse_args()
    backends = args.backends.split(",")
    rates = {backend: matmul_gflops(use_backend(backend)) for backend in backends}
    print(machine_line(rates), file=args.out, flush=True)
    options = ridge_options()
    single_space = None
    for case in args.cases.split(","):
        if case == "banded":
            data = make_data(args.banded_voxels, BANDS)
        else:
            single_space = single_space or make_data(args.voxels, {"clap": BANDS["clap"]})
            data = single_space
        run_case(case, data, backends, rates, options, args.out)


if __name__ == "__main__":
    main()
