"""Brain-scored retrieval against unscored retrieval on the same test clips: per clip, the identification accuracy
of the top retrieved track (b2m's definition, in the retrieval space, as b2m evaluate-reconstruction scores it) after
re-ranking the top ``reconstruction.rerank`` tracks by the encoding model's prediction of the clip's measured
response (method retrieval-brain) minus that of the top track by cosine (method retrieval), with a paired 95 %
interval from a seeded bootstrap over clips; per subject, and over every subject with the clips resampled (each
subject's difference on a clip kept together).

    python benchmarks/brain_rerank.py [--run] [--cores 2] [--results results-decoders]

``--run`` runs the second demo with brain_rerank.yaml first, in the repository
(``snakemake --configfile config/config.yaml config/decoders.yaml benchmarks/brain_rerank.yaml``); without it the
script reads a finished run's ``--results``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.evaluate.identification import identification_accuracy
from b2m.evaluate.scores import bootstrap_ci
from b2m.io import load_npy
from b2m.layout import Layout
from b2m.reconstruct.brain import RERANKED
from b2m.reconstruct.corpus import read_index
from b2m.reconstruct.evaluation import retrieved_reconstructions
from b2m.reconstruct.retrieval import clip_queries, from_standardised, to_space
from full_size import REPO, machine

CONFIGS = ["config/config.yaml", "config/decoders.yaml", "benchmarks/brain_rerank.yaml"]
N_BOOTSTRAP, SEED = 2000, 0


def run_demo(cores: int) -> float:
    """The second demo with brain-scored retrieval, run in the repository; its wall time (s)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", *CONFIGS], cwd=REPO,
                   check=True)
    return time.perf_counter() - started


def per_clip_identification(layout: Layout, subject: str, feature: str, fold: str = "test") -> pd.DataFrame:
    """One row per (model, clip): the identification accuracy of retrieval's and retrieval-brain's top track, the
    cosine rank of the brain's pick and the mean over clips that the evaluation table holds (a check)."""
    decoded, brain = layout.decoding(subject, fold, feature), layout.brain_score(subject, fold, feature)
    evaluation = pd.read_parquet(layout.evaluation(subject, fold, feature))
    space, scale = evaluation.space.iloc[0], load_npy(decoded.target_scale)
    corpus, tracks = read_index(layout.corpus(feature).path)
    oracle = clip_queries(pd.read_parquet(decoded.predictions))["oracle"]
    order = oracle.clip_id.to_numpy()
    originals = from_standardised(np.stack(oracle.vector.to_numpy()), scale, space)
    methods = {**retrieved_reconstructions(pd.read_parquet(layout.retrieval(subject, fold, feature).neighbours),
                                           corpus, tracks, order),
               **retrieved_reconstructions(pd.read_parquet(brain.neighbours), corpus, tracks, order, RERANKED)}
    picks = pd.read_parquet(brain.neighbours).query("rank == 1").set_index(["model", "clip_id"]).retrieval_rank
    rows = []
    for (method, model), reconstructions in methods.items():
        accuracy = identification_accuracy(to_space(reconstructions.vectors[0], scale, space), originals)
        reported = evaluation.query("method == @method and model == @model and metric == 'identification_accuracy'")
        assert np.isclose(accuracy.mean(), reported.value.iloc[0], atol=1e-6), (subject, method, model)
        rows.append(pd.DataFrame({"subject": subject, "feature": feature, "method": method, "model": model,
                                  "clip_id": order, "identification": accuracy}))
    table = pd.concat(rows, ignore_index=True).pivot_table(index=["subject", "feature", "model", "clip_id"],
                                                          columns="method", values="identification").reset_index()
    return table.assign(brain_pick_rank=[picks.get((m, c)) for m, c in zip(table.model, table.clip_id)])


def paired(rows: pd.DataFrame) -> dict:
    """Retrieval-brain minus retrieval on the same clips: mean difference and its bootstrap interval (clips
    resampled, a clip's rows kept together), and the two means."""
    difference = (rows[RERANKED] - rows["retrieval"]).to_numpy()
    low, high = bootstrap_ci(difference, rows.clip_id.to_numpy(), N_BOOTSTRAP, SEED)
    return {"clips": rows.clip_id.nunique(), "retrieval": round(rows["retrieval"].mean(), 3),
            RERANKED: round(rows[RERANKED].mean(), 3),
            "difference [95 % CI]": f"{difference.mean():+.3f} [{low:+.3f}, {high:+.3f}]",
            "brain pick = cosine top-1": f"{(rows.brain_pick_rank == 1).mean():.2f}",
            "mean cosine rank of the pick": round(rows.brain_pick_rank.mean(), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run the second demo with brain_rerank.yaml first")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--results", type=Path, default=REPO / "results-decoders")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.run:
        print(f"the second demo with brain-scored retrieval: {run_demo(args.cores):.0f} s on {args.cores} cores")
    layout = Layout(str(args.results))
    summary = pd.read_parquet(layout.summary("reconstruction"))
    brain = summary[summary.method == RERANKED]
    clips = pd.concat([per_clip_identification(layout, s, f) for s, f in
                       brain[["subject", "feature"]].drop_duplicates().itertuples(index=False)], ignore_index=True)
    for (feature, model), rows in clips.groupby(["feature", "model"], sort=False):
        table = {subject: paired(one) for subject, one in rows.groupby("subject")} | {"all subjects": paired(rows)}
        print(f"\n{feature}, {model}: identification of the top track, test fold")
        print(pd.DataFrame(table).T.to_markdown())


if __name__ == "__main__":
    main()
