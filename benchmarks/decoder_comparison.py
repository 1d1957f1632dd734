"""Per-subject ridge, pooled aligned ridge and the contrastive decoder, compared on the same folds: identification
accuracy per subject (window and clip level, 95 % bootstrap CIs, measured chance) on the test fold.

Two studies, each the whole DAG run by Snakemake in ``--work``:
- ``demo``: the demo (config/config.yaml: 3 subjects, one SNR, one shared mask) with every decoder in
  ``decoding.models``;
- ``decoders``: the second demo (config/decoders.yaml over it: 5 subjects with their own masks, SNR from snr / 3
  to snr × 3).

    python benchmarks/decoder_comparison.py [--work /tmp/b2m-decoders] [--cores 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from b2m.evaluate.identification import identification_accuracy
from b2m.evaluate.scores import bootstrap_ci
from b2m.layout import Layout
from full_size import REPO, machine

ALL_MODELS = ["whole-mask", "roi-ensemble", "roi-banded", "contrastive", "pooled-aligned"]
STUDIES = {"demo": ("results", []), "decoders": ("results-decoders", [REPO / "config/decoders.yaml"])}


def run_study(work: Path, name: str, cores: int) -> float:
    """Run one study's DAG in ``work``; its wall time (s)."""
    models = work / "all-decoders.yaml"
    models.write_text(yaml.safe_dump({"decoding": {"models": ALL_MODELS}}))
    configs = [REPO / "config/config.yaml", *STUDIES[name][1], models]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--directory", str(work),
                    "--snakefile", str(REPO / "Snakefile"), "--configfile", *map(str, configs)], check=True)
    return time.perf_counter() - started


def comparison(scores: pd.DataFrame) -> pd.DataFrame:
    """Per feature × subject × model: window and clip accuracy with their CIs, and the window-level chance."""
    rows = scores[(scores.fold == "test") & (scores.metric == "identification_accuracy")]
    table = rows.pivot_table(index=["feature", "subject", "model"], columns="level",
                             values=["value", "ci_low", "ci_high", "chance_mean", "chance_sd"])
    return pd.DataFrame({
        level: [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                zip(table["value", level], table["ci_low", level], table["ci_high", level])]
        for level in ("window", "clip")} | {
        "chance (window)": [f"{m:.3f} ± {s:.3f}" for m, s in
                            zip(table["chance_mean", "window"], table["chance_sd", "window"])]},
        index=table.index)


def means(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over subjects per feature × model × level, and the subjects where the model is the best."""
    rows = scores[(scores.fold == "test") & (scores.metric == "identification_accuracy")]
    best = rows.loc[rows.groupby(["feature", "level", "subject"])["value"].idxmax()]
    wins = best.groupby(["feature", "level", "model"]).size()
    table = rows.groupby(["feature", "level", "model"])["value"].agg(["mean", "std"])
    table["best for subjects"] = wins.reindex(table.index).fillna(0).astype(int)
    return table.round(3)


def predictions(layout: Layout, subjects: list[str], feature: str) -> pd.DataFrame:
    """Every decoder's test-fold predictions of ``feature`` (window and clip rows), with a subject column."""
    tables = [pd.read_parquet(layout.decoding(s, "test", feature).predictions).assign(subject=s) for s in subjects]
    pooled = layout.pooled("test", feature).predictions
    return pd.concat(tables + ([pd.read_parquet(pooled)] if pooled.exists() else []), ignore_index=True)


def paired_differences(table: pd.DataFrame, baseline: str = "whole-mask", n_bootstrap: int = 2000) -> pd.DataFrame:
    """Per subject × level × model: its identification accuracy minus the baseline's on the same test items (the
    mean of the per-item differences), with a 95 % bootstrap interval over clips."""
    records = []
    for (subject, level), rows in table.groupby(["subject", "level"], sort=False):
        items = {model: rows[rows.model == model] for model in rows.model.unique()}
        accuracy = {model: identification_accuracy(np.stack(r.predicted), np.stack(r.true))
                    for model, r in items.items()}
        clips = items[baseline]["clip_id"].to_numpy()
        for model in accuracy:
            if model == baseline:
                continue
            assert (items[model]["clip_id"].to_numpy() == clips).all()
            difference = accuracy[model] - accuracy[baseline]
            low, high = bootstrap_ci(difference, clips, n_bootstrap, 0)
            records.append({"subject": subject, "level": level, "model": model,
                            f"minus {baseline}": f"{difference.mean():+.3f} [{low:+.3f}, {high:+.3f}]"})
    return pd.DataFrame(records).pivot(index=["level", "subject"], columns="model", values=f"minus {baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/b2m-decoders"))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    for name, (results, _) in STUDIES.items():
        seconds = run_study(args.work, name, args.cores)
        scores = pd.read_parquet(args.work / results / "summary/identification.parquet")
        decode = [pd.read_csv(p, sep="\t")["s"].iloc[-1] for p in (args.work / results / "logs").rglob(
            "decode.benchmark.tsv")]
        pooled = [pd.read_csv(p, sep="\t")["s"].iloc[-1] for p in (args.work / results / "logs").rglob(
            "decode_pooled.benchmark.tsv")]
        print(f"\n## {name}: the whole DAG in {seconds:.0f} s on {args.cores} cores; decode jobs (ridge + "
              f"contrastive) {sum(decode) / len(decode):.1f} s each, decode_pooled {sum(pooled) / len(pooled):.1f} s")
        print(comparison(scores).to_markdown())
        print()
        print(means(scores).to_markdown())
        for feature in sorted(scores.feature.unique()):
            print(f"\n{feature}: paired differences from whole-mask on the same test items")
            table = predictions(Layout(str(args.work / results)), sorted(scores.subject.unique()), feature)
            print(paired_differences(table).to_markdown())


if __name__ == "__main__":
    main()
