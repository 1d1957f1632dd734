"""The real study's whole DAG (config/ds003720.yaml, 5 subjects), projected from per-job costs measured at full size:
on 2 cores, on a 16-core node, on a CPU-only cluster of 10 such nodes and on a 16-core node with one GPU; on the
three SLURM machines each job under profiles/slurm's attempts and time limits (a job past an attempt's limit runs
to it and starts again; the jobs past the first attempt are named).

Measured once in ``--work`` (``--measure``; the simulated subject and its prepared responses are
``decode_full_size.py``'s, made there if missing):
1. **Model embeddings** at their real architecture sizes with random weights (``embedding_throughput.py``'s
   builders and extractor path) on real GTZAN clips: seconds per clip of each model space, the seconds of a
   clap-text job, and each space's dimension. A features job is 540 clips; a corpus chunk job its share of
   FMA-large's 106,574 tracks (each the mean of the extractor's windows over its first 15 s, as a clip).
2. **The DAG's jobs of one full-size subject** under ds003720.yaml's own rules, options, threads and resources,
   on ``--cores``: Snakemake runs them (``--allowed-rules``: nothing upstream is remade) in a copy of the
   prepared results where each model space's features are random embeddings at its real dimension on its real
   window grid, and the acoustic and clap-audio corpus indexes are random vectors at FMA-large's 106,574
   tracks. The jobs: window_responses at the 5 s and 10 s windows, factorise at every window and decode, encode
   and encode_banded of every space on the test fold, factorise, decode and encode of acoustic on cv-1 and
   genre-rock, retrieve of acoustic and clap-audio and evaluate_reconstruction of acoustic on the test fold,
   validate_dataset. clean_bold, the 1.5 s window and the acoustic and genre features are the prepared
   subject's own jobs.

The measured costs are kept in ``study_costs.tsv`` (``--measure`` writes it), so a projection needs no
``--work``: each row says where its cost comes from (measured at a commit, scaled, assumed), and a row a newer
measurement replaced says so.

Projected (every run): the dry run of ds003720.yaml (``dry_run.py``'s study on shared/real's metadata) lists
every job and what it reads; each job gets the cost of its class (rule, and the window, space and fold kind
that set its size), measured, or scaled from a measured one (a model space's cv or genre fold: its test fold's
cost × acoustic's ratio between the two). The jobs are then list-scheduled in the DAG's order on each machine
(a job holds its rule's threads in cores and its measured peak memory; on the GPU machine a job of a rule
that profiles/slurm-gpu gives a GPU also holds the one GPU). Jobs that need the network (downloads, model
fetches) and generation (its real-size models' configurations are not available offline) are listed and
left out of the totals.

    python benchmarks/study_projection.py --work /tmp/b2m-decode-full --measure   # measure, then project
    python benchmarks/study_projection.py                                         # project from study_costs.tsv
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import dry_run
from decode_full_size import SUBJECT, prepare, rewrite_keeping_time
from full_size import REPO, machine, markdown, overlay

FMA_TRACKS = 106_574          # FMA-large's tracks: the real study's corpus
GATHER_COST = (0.8, 0.65)     # s and GiB of index_corpus, the gather of its 128 chunks at 512-d (corpus_plan.py)
STUDY_CLIPS, TEST_CLIPS = 540, 60  # GTZAN clips of ds003720, and its test clips
MEASURED_FOLDS = ("test", "cv-1", "genre-rock")
# The model spaces of ds003720.yaml → embedding_throughput.py's real-size case (MusicLDM's CLAP is the same
# HTSAT-base + RoBERTa-base CLAP as laion-clap's, whose cost the transformers case measures).
THROUGHPUT_CASES = {"clap-audio": "clap-audio-transformers", "clap-text": "clap-text-transformers",
                    "w2v-bert": "w2v-bert", "mert": "mert", "clap-musicldm": "clap-audio-transformers"}
NETWORK_RULES = {"download_dataset", "fetch_models", "fetch_generator"}
UNMEASURED_RULES = {"generate"}


@dataclass
class Job:
    """One job of a dry run: its rule, wildcards, threads, the files it reads and writes, its benchmark file."""
    rule: str
    wildcards: dict = field(default_factory=dict)
    threads: int = 1
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    benchmark: str = ""


def planned_jobs(dry_run_output: str) -> list[Job]:
    """The jobs of a ``snakemake -n`` listing, in its order."""
    jobs = []
    for line in dry_run_output.splitlines():
        head = re.fullmatch(r"(?:local)?(?:rule|checkpoint) (\w+):", line.strip())
        if head:
            jobs.append(Job(head.group(1)))
            continue
        key, _, value = line.strip().partition(": ")
        if not jobs or not line.startswith("    ") or not value:
            continue
        if key in ("input", "output"):
            getattr(jobs[-1], f"{key}s").extend(value.split(", "))
        elif key == "wildcards":
            jobs[-1].wildcards = dict(pair.split("=", 1) for pair in value.split(", "))
        elif key == "benchmark":
            jobs[-1].benchmark = value
        elif key == "threads":
            jobs[-1].threads = int(value)
    return jobs


def snakemake_listing(config_files: list[Path], workdir: Path, *args: str) -> list[Job]:
    """The jobs of a dry run of the workflow with ``config_files`` (on every core a machine could have: a dry run on
    fewer leaves the local rules out of its listing)."""
    command = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--cores", "1048576", "--configfile", *map(str, config_files), *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    if done.returncode:
        sys.exit(f"dry run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return [job for job in planned_jobs(done.stdout) if job.rule != "all"]


def fold_kind(fold: str) -> str:
    """test, cv, cv-all or genre: what sets a fold's training and test rows (cv-all: every cv fold's fit)."""
    return fold if fold == "cv-all" else fold.split("-")[0]


def cost_class(job: Job) -> tuple:
    """What a job's cost depends on at full size: its rule and the window, space and fold kind it works on."""
    wildcards = job.wildcards
    if job.rule == "window_responses":
        return (job.rule, float(wildcards["window"]))
    if job.rule == "factorise":
        return (job.rule, float(wildcards["window"]), fold_kind(wildcards["fold"]))
    if job.rule in ("decode", "encode"):
        return (job.rule, wildcards["feature"], fold_kind(wildcards["fold"]))
    if job.rule == "encode_banded":
        return (job.rule, fold_kind(wildcards["fold"]))
    if "feature" in wildcards:
        return (job.rule.removesuffix("_gpu"), wildcards["feature"])
    return (job.rule,)


# ---------------------------------------------------------------------------------------------------- measuring

def measure_embeddings(out: Path) -> dict:
    """Each model space's seconds per clip (clap-text: its whole job's seconds) and dimension, at real size."""
    if out.exists():
        return json.loads(out.read_text())
    from embedding_throughput import clips_of, measure

    measured = {}
    with tempfile.TemporaryDirectory() as cache:
        for case in dict.fromkeys(["acoustic", *THROUGHPUT_CASES.values()]):
            row = measure(case, cache, clips_of(4))
            print(row, flush=True)
            measured[case] = {"dim": row["dim"], "wall_s": row["wall_s"], "clips": row["clips"]}
    out.write_text(json.dumps(measured, indent=1))
    return measured


def model_dims(embeddings: dict) -> dict:
    """Each model space's dimension, from its measured embeddings."""
    return {space: embeddings[case]["dim"] for space, case in THROUGHPUT_CASES.items()}


def random_features(acoustic: Path, out: Path, window: float, stride: float, dim: int, seed: int) -> None:
    """A features table on the grid of ``window`` and ``stride`` (s) for the clips of ``acoustic``, with random
    ``dim``-d embeddings (float32), written as the features stage writes its tables."""
    from b2m.data.design import window_starts
    from b2m.io import read_parquet_provenance, write_parquet

    clips = pd.read_parquet(acoustic, columns=["clip_id", "label", "split"]).drop_duplicates("clip_id")
    starts = window_starts(window, stride, 15.0)  # ds003720's excerpts
    table = clips.loc[clips.index.repeat(len(starts))].reset_index(drop=True)
    table["window"] = np.tile(np.arange(len(starts)), len(clips))
    table["start_s"] = np.tile(starts, len(clips))
    table["end_s"] = table.start_s + window
    vectors = np.random.default_rng(seed).standard_normal((len(table), dim), dtype=np.float32)
    table["embedding"] = list(vectors)
    params = {**read_parquet_provenance(acoustic)["params"], "feature": out.stem, "dim": dim}
    write_parquet(out, table, params)


def random_corpus(sources: list[Path], out: Path, dim: int, seed: int) -> None:
    """A corpus index of FMA-large's size: ``FMA_TRACKS`` rows cycling over the audio files of ``sources``
    (so that retrieval can cut their excerpts), with random ``dim``-d vectors."""
    from b2m.io import write_npy, write_parquet

    files = sorted(path for source in sources for path in source.rglob("*.wav"))
    paths = [files[i % len(files)] for i in range(FMA_TRACKS)]
    tracks = pd.DataFrame({"track_id": [f"track-{i:06d}" for i in range(FMA_TRACKS)], "source": "fma",
                           "path": list(map(str, paths)), "genre": [path.parent.name for path in paths]})
    out.mkdir(parents=True, exist_ok=True)
    vectors = np.random.default_rng(seed).standard_normal((FMA_TRACKS, dim), dtype=np.float32)
    write_npy(out / "vectors.npy", vectors, {"dim": dim, "random": True})
    write_parquet(out / "tracks.parquet", tracks, {"random": True})
    (out / "skipped.tsv").write_text("track_id\tpath\treason\n")


def without_atlas(path: Path) -> None:
    """The voxel table as clean_bold writes it without an atlas (every ROI label 0), as ds003720.yaml's atlas:
    null gives (``rewrite_keeping_time``)."""
    voxels = pd.read_parquet(path)
    if not (voxels["roi"] == 0).all():
        rewrite_keeping_time(path, voxels.assign(roi=np.zeros(len(voxels), np.int32)))


def study_overlay(work: Path, results: Path) -> dict:
    """ds003720.yaml's overlay for the simulated subject: its paths, one subject, the measured folds, no
    download, the simulated cortex as the mask (whole-mask decoding, as ds003720.yaml's atlas: null)."""
    base = overlay(work)
    return {"results": str(results), "dataset": {**base["dataset"], "download": {"enabled": False}},
            "subjects": [SUBJECT], "folds": list(MEASURED_FOLDS),
            "responses": {"mask": base["responses"]["mask"], "atlas": None, "atlas_labels": None},
            "reconstruction": {"corpus": base["reconstruction"]["corpus"]}}


def measured_jobs(jobs: list[Job]) -> list[Job]:
    """The jobs of the one-subject study that are timed (see the module's docstring)."""
    def wanted(job: Job) -> bool:
        fold, feature = job.wildcards.get("fold"), job.wildcards.get("feature")
        return (job.rule in ("window_responses", "validate_dataset")
                or (job.rule == "encode_banded" and fold == "test")
                or (job.rule == "factorise" and (fold == "test" or job.wildcards["window"] == "1.5"))
                or (job.rule in ("decode", "encode") and (fold == "test" or feature == "acoustic"))
                or (job.rule == "retrieve" and feature in ("acoustic", "clap-audio"))
                or (job.rule == "evaluate_reconstruction" and feature == "acoustic"))
    return [job for job in jobs if wanted(job)]


def place_inputs(work: Path, results: Path, dims: dict) -> None:
    """What the timed jobs read beside the prepared subject: its voxel table without ROIs, each model space's
    random features (``dims``: space → dimension) and the acoustic and clap-audio corpora at FMA-large's size."""
    without_atlas(results / SUBJECT / "responses/voxels.parquet")
    config = yaml.safe_load((REPO / "config/ds003720.yaml").read_text())
    acoustic = results / "features/acoustic.parquet"
    for seed, (space, dim) in enumerate(dims.items()):
        target = results / f"features/{space}.parquet"
        if not target.exists():
            grid = config["features"][space]
            random_features(acoustic, target, grid["window_s"], grid["stride_s"], dim, seed)
    sources = [Path(source["path"]) for source in study_overlay(work, results)["reconstruction"]["corpus"]["sources"]]
    for space, dim in {"acoustic": 123, "clap-audio": dims["clap-audio"]}.items():
        if not (results / f"corpus/{space}/vectors.npy").exists():
            random_corpus(sources, results / f"corpus/{space}", dim, seed=100)


def measure_jobs(work: Path, cores: int, dims: dict) -> Path:
    """Run the timed jobs of the one-subject study (once); its results folder."""
    prepared = prepare(work, cores)
    root = work / "projection"
    results = root / "results"
    if (root / "done").exists():
        return results
    if not results.exists():
        root.mkdir(exist_ok=True)
        subprocess.run(["cp", "-al", str(prepared), str(results)], check=True)
    place_inputs(work, results, dims)
    overlay_file = root / "overlay.yaml"
    overlay_file.write_text(yaml.safe_dump(study_overlay(work, results)))
    configs = [REPO / "config/ds003720.yaml", overlay_file]
    timed = measured_jobs(snakemake_listing(configs, REPO))
    rules = sorted({job.rule for job in timed})
    targets = [job.outputs[0] for job in timed]
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", str(cores),
               "--configfile", *map(str, configs), "--allowed-rules", *rules, "--", *targets]
    print(f"timing {len(timed)} jobs of {SUBJECT}: see {root / 'snakemake.log'}", flush=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with open(root / "snakemake.log", "w") as log:
        if subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
            sys.exit(f"the measured jobs failed; see {root / 'snakemake.log'}")
    (root / "done").touch()
    return results



# --------------------------------------------------------------------------------------------------- the costs

@dataclass
class Cost:
    """A job class's cost on this machine: wall seconds on ``cores`` cores, peak memory (GiB), and how it was
    obtained (measured, scaled from measured ones, or quoted from another benchmark)."""
    wall_s: float
    cores: int
    memory_gib: float
    source: str


# Small summary and report jobs, not part of the one-subject study: full_size.py's full-size run
# (BENCHMARKS.md, "The whole DAG at full size on 2 cores"), one job each: wall s, peak RSS GiB.
QUOTED = {"summarize_decoding": (1.45, 0.12), "summarize_encoding": (1.40, 0.10), "index_corpus": GATHER_COST,
          "summarize_reconstruction": (1.44, 0.09), "report_figures": (29.29, 0.35), "listening_page": (118.16, 0.32)}
# Rules added since the jobs were measured [new]: per corpus track (s), or assumed as a measured or quoted class.
PER_TRACK = {"fingerprint_corpus_chunk": (0.050, "measured per track (duplicate_scores.py)"),
             "list_corpus_chunk": (0.016, "assumed: a track's read (corpus_plan.py) for its sha256")}
ASSUMED = {"pool_folds": (QUOTED["summarize_decoding"], "summarize_decoding's"),
           "summarize_label_decoding": (QUOTED["summarize_decoding"], "summarize_decoding's"),
           "listening_test": (QUOTED["listening_page"], "listening_page's"),
           "find_duplicates": ((600.0, 1.0), "10 min (not measured at FMA's size)")}
# What a GPU job's time becomes (profiles/slurm-gpu's rules): the share of the rule's time in numeric kernels
# (full_size.py's profile: BLAS/LAPACK + element-wise math) is multiplied by the ratio of the same fit's
# measured times, one H100 against these 2 cores (ridge_gpu.py against ridge_scale.py, BENCHMARKS.md); the
# rest stays. The embedding models have no GPU measurement: their ratio is the float32 matmul rates' (50,963
# against 242 GFLOP/s), a bound a real job does not reach, so their GPU times are lower bounds.
GPU_RATIO = {"decode": (0.945, 2.72 / 106.3), "factorise": (0.945, 2.72 / 106.3),
             "encode": (0.872, 1.22 / 68.7), "encode_banded": (0.974, 4.07 / 89.3)}
MODEL_GPU_RATIO = (1.0, 242 / 50963)


COSTS_FILE = Path(__file__).with_name("study_costs.tsv")  # the measured costs, kept: a projection needs no --work


def class_key(text: str) -> tuple:
    """A cost class from its ``|``-joined text (windows back to numbers)."""
    return tuple(float(part) if re.fullmatch(r"[0-9.]+", part) else part for part in text.split("|"))


def save_costs(costs: dict, path: Path = COSTS_FILE) -> None:
    """The measured costs as a table (class, wall_s, cores, memory_gib, source), one row per class."""
    rows = [{"class": "|".join(map(str, key)), **vars(cost)} for key, cost in sorted(costs.items(), key=str)]
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False, float_format="%.4g")


def load_costs(path: Path = COSTS_FILE) -> dict:
    """The costs ``save_costs`` wrote."""
    table = pd.read_csv(path, sep="\t")
    return {class_key(row["class"]): Cost(row["wall_s"], int(row["cores"]), row["memory_gib"], row["source"])
            for _, row in table.iterrows()}


def benchmark_cost(path: Path, cores: int) -> Cost | None:
    if not path.exists():
        return None
    bench = pd.read_csv(path, sep="\t").iloc[-1]
    return Cost(float(bench["s"]), cores, float(bench["max_rss"]) / 1024, "measured")


def measured_costs(work: Path) -> dict:
    """Cost of every job class timed in ``work`` (the one-subject study's finished jobs)."""
    root = work / "projection"
    if not (root / "done").exists():
        sys.exit(f"nothing measured in {work} yet: run with --measure first")
    configs = [REPO / "config/ds003720.yaml", root / "overlay.yaml"]
    costs = {}
    for job in snakemake_listing(configs, REPO, "--forceall"):
        cost = job.benchmark and benchmark_cost(Path(job.benchmark), job.threads)
        if cost:
            costs[cost_class(job)] = cost
    embeddings = json.loads((root / "embeddings.json").read_text())
    per_clip = {case: row["wall_s"] / row["clips"] for case, row in embeddings.items()}
    unknown = float("nan")  # in-process measures: no peak of their own
    for space, case in THROUGHPUT_CASES.items():
        whole = space == "clap-text"  # its measure embeds all 540 captions: the whole job
        costs[("features", space)] = Cost(embeddings[case]["wall_s"] if whole else per_clip[case] * STUDY_CLIPS, 2,
                                          unknown, "measured (the whole job)" if whole else "measured per clip")
        costs[("index_corpus_chunk", space)] = chunk_cost(per_clip[case], 2)
    costs[("index_corpus_chunk", "acoustic")] = chunk_cost(per_clip["acoustic"], 1)
    return costs


def chunk_cost(seconds_per_track: float, cores: int) -> Cost:
    """A corpus chunk job: its mean share of FMA-large's tracks at the measured seconds per track."""
    chunks = yaml.safe_load((REPO / "config/ds003720.yaml").read_text())["reconstruction"]["corpus"]["chunks"]
    return Cost(seconds_per_track * FMA_TRACKS / chunks, cores, float("nan"), "measured per clip, a chunk's share")


def scaled(costs: dict, key: tuple, reference: tuple, numerator: tuple, denominator: tuple) -> None:
    """``costs[key]`` = ``reference``'s cost × numerator / denominator (each a measured class)."""
    base, ratio = costs[reference], costs[numerator].wall_s / costs[denominator].wall_s
    costs.setdefault(key, Cost(base.wall_s * ratio, base.cores, base.memory_gib, "scaled"))


def study_costs(jobs: list[Job], measured: dict, config: dict) -> dict:
    """Every job class of the real study: measured ones, the others scaled from them or quoted."""
    costs = dict(measured)
    generation = config["reconstruction"]["generation"]
    generated = len(generation["models"]) * generation["n_samples"]
    per_chunk = FMA_TRACKS / config["reconstruction"]["corpus"]["chunks"]
    for job in sorted(jobs, key=lambda job: cost_class(job)[-1] == "cv-all"):  # cv-all after the cv folds
        key = cost_class(job)
        rule = key[0]
        if key in costs or rule in NETWORK_RULES | UNMEASURED_RULES:
            continue
        if key[-1] == "cv-all":  # every pooled cv fold fitted again in one job
            base = costs[key[:-1] + ("cv",)]
            costs[key] = Cost(base.wall_s * config["outer_folds"], base.cores, base.memory_gib,
                              "scaled (outer_folds × its cv fold's) [new]")
        elif rule in ("decode", "encode"):
            scaled(costs, key, (rule, key[1], "test"), (rule, "acoustic", key[2]), (rule, "acoustic", "test"))
        elif rule == "factorise":
            scaled(costs, key, (rule, key[1], "test"), (rule, 1.5, key[2]), (rule, 1.5, "test"))
        elif rule == "encode_banded":
            scaled(costs, key, (rule, "test"), ("encode", "acoustic", key[1]), ("encode", "acoustic", "test"))
        elif rule == "retrieve":
            costs[key] = Cost(**{**vars(costs[(rule, "clap-audio")]), "source": "as clap-audio's (same dim)"})
        elif rule == "evaluate_reconstruction":
            # acoustic's evaluation plus CLAP on every generated file (one 10 s window each, a quarter of a clip)
            audio = costs[("features", key[1])].wall_s / STUDY_CLIPS / 4 * generated * TEST_CLIPS
            base = costs[(rule, "acoustic")]
            costs[key] = Cost(base.wall_s + audio, 2, base.memory_gib, "scaled")
        elif rule == "validate_dataset":
            base = measured[key]
            costs[key] = Cost(base.wall_s * len(config["subjects"]), base.cores, base.memory_gib, "scaled")
        elif rule in QUOTED:
            costs[key] = Cost(QUOTED[rule][0], job.threads, QUOTED[rule][1], "quoted (full_size.py)")
        elif rule in PER_TRACK:
            seconds, source = PER_TRACK[rule]
            costs[key] = Cost(seconds * per_chunk, job.threads, float("nan"), f"{source}, a chunk's share [new]")
        elif rule in ASSUMED:
            (seconds, memory), source = ASSUMED[rule]
            costs[key] = Cost(seconds, job.threads, memory, f"assumed: {source} [new]")
        else:
            sys.exit(f"no cost for {key}")
    return costs


def gpu_seconds(rule: str, wall_s: float) -> float:
    share, ratio = GPU_RATIO.get(rule, MODEL_GPU_RATIO)
    return wall_s * (1 - share) + wall_s * share * ratio


# ------------------------------------------------------------------------------------------------- scheduling

@dataclass
class Machine:
    """``nodes`` nodes of ``cores`` cores, ``memory_gib`` and ``gpus`` each; a job runs within one node."""
    name: str
    cores: int
    memory_gib: float
    gpus: int = 0
    nodes: int = 1
    slurm: bool = True  # jobs under profiles/slurm's attempts and time limits


MACHINES = [Machine("2 cores, 24 GiB (this machine)", 2, 24, slurm=False), Machine("16-core node, 128 GiB", 16, 128),
            Machine("10 nodes of 16 cores, 128 GiB each (a CPU-only cluster)", 16, 128, nodes=10),
            Machine("16-core node, 128 GiB, one GPU", 16, 128, gpus=1)]


SLURM_PROFILE = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())


def attempt_limits() -> list[float]:
    """Seconds of each attempt a SLURM job gets (profiles/slurm: ``runtime`` in minutes of ``attempt``, and
    ``retries`` + 1 attempts)."""
    runtime = SLURM_PROFILE["default-resources"]["runtime"]
    return [60 * eval(str(runtime), {"min": min, "max": max}, {"attempt": attempt})  # the profile's expression
            for attempt in range(1, SLURM_PROFILE.get("retries", 0) + 2)]


def with_attempts(seconds: float, limits: list[float]) -> tuple[float, int]:
    """A job of ``seconds`` under the attempts' time limits: its wall time (each attempt that times out runs to its
    limit and starts again from nothing) and the attempt it finishes in (0 where it finishes in none: past its
    attempts, its wall time all of them)."""
    spent = 0.0
    for attempt, limit in enumerate(limits, start=1):
        if seconds <= limit:
            return spent + seconds, attempt
        spent += limit
    return spent, 0


def gpu_rules() -> set:
    return set(yaml.safe_load((REPO / "profiles/slurm-gpu/config.yaml").read_text())["set-resources"])


def makespan(jobs: list[Job], durations: list[float], cores: list[int], memory: list[float], gpu: list[bool],
             machine: Machine, max_jobs: int | None = None) -> float:
    """Seconds to run ``jobs`` on ``machine``: list scheduling, longest path to the end first, each job holding
    its cores, memory and (``gpu``) a GPU of the first node where they are free, after every job that writes one of
    its inputs; at most ``max_jobs`` at once (a SLURM profile's ``jobs``)."""
    writer = {path: i for i, job in enumerate(jobs) for path in job.outputs}
    parents = [{writer[path] for path in job.inputs if path in writer} for job in jobs]
    children = [[] for _ in jobs]
    for i, before in enumerate(parents):
        for parent in before:
            children[parent].append(i)
    rank = [0.0] * len(jobs)
    for i in reversed(topological(parents)):
        rank[i] = durations[i] + max((rank[c] for c in children[i]), default=0.0)
    waiting = [len(before) for before in parents]
    ready = [(-rank[i], i) for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    running, now = [], 0.0
    free = [[machine.cores, machine.memory_gib, machine.gpus] for _ in range(machine.nodes)]
    while ready or running:
        held = []
        while ready:
            _, i = heapq.heappop(ready)
            need = [min(cores[i], machine.cores), min(memory[i], machine.memory_gib), int(gpu[i])]
            node = next((k for k, left in enumerate(free) if all(n <= f + 1e-9 for n, f in zip(need, left))), None)
            if node is None or (max_jobs and len(running) >= max_jobs):
                held.append((-rank[i], i))
                continue
            free[node] = [f - n for f, n in zip(free[node], need)]
            heapq.heappush(running, (now + durations[i], i, node, need))
        for item in held:
            heapq.heappush(ready, item)
        now, i, node, need = heapq.heappop(running)
        free[node] = [f + n for f, n in zip(free[node], need)]
        for child in children[i]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-rank[child], child))
    return now


def topological(parents: list[set]) -> list[int]:
    order, seen = [], set()

    def visit(i: int) -> None:
        if i not in seen:
            seen.add(i)
            for parent in parents[i]:
                visit(parent)
            order.append(i)
    for i in range(len(parents)):
        visit(i)
    return order


def rule_table(jobs: list[Job], costs: list[Cost], on_gpu: set) -> pd.DataFrame:
    """Per rule: its jobs, their hours on 2 cores, the longest, the peak memory, their GPU hours, the costs' kinds."""
    rows = []
    for rule in dict.fromkeys(job.rule for job in jobs):
        mine = [cost for job, cost in zip(jobs, costs) if job.rule == rule]
        memory = [c.memory_gib for c in mine if not np.isnan(c.memory_gib)]
        rows.append({"rule": rule, "jobs": len(mine), "job-hours on 2 cores": sum(c.wall_s for c in mine) / 3600,
                     "longest job (h)": max(c.wall_s for c in mine) / 3600,
                     "peak memory (GiB)": max(memory, default=float("nan")),
                     "on the GPU (job-hours)": sum(gpu_seconds(rule, c.wall_s) for c in mine) / 3600
                     if rule in on_gpu else float("nan"), "cost": "; ".join(sorted({c.source for c in mine}))})
    return pd.DataFrame(rows).set_index("rule").sort_values("job-hours on 2 cores", ascending=False)


def projection(work: Path | None) -> None:
    """Print the per-rule table of the real study's jobs and each machine's projected wall time: on a SLURM
    machine, each job under the attempts' time limits (``with_attempts``), the jobs past the first attempt named."""
    with tempfile.TemporaryDirectory() as scratch:
        study = dry_run.study_config(Path(scratch))
        jobs = snakemake_listing([study], Path(scratch), "--profile", str(REPO / "profiles/slurm"))
        config = yaml.safe_load(study.read_text())
    measured = measured_costs(work) if work else load_costs()
    costs = study_costs(jobs, measured, config)
    on_gpu = gpu_rules()
    known = [job for job in jobs if cost_class(job) in costs]
    excluded = pd.Series([job.rule for job in jobs if cost_class(job) not in costs]).value_counts()
    cost_of = [costs[cost_class(job)] for job in known]
    table = rule_table(known, cost_of, on_gpu)
    print(markdown(table.drop(columns="cost"), 2).replace("| nan", "| –"))
    print("\n" + "\n".join(f"- {rule}: {cost}" for rule, cost in table["cost"].items()))
    print(f"\nleft out: {excluded.sum()} jobs (" + ", ".join(f"{rule} {n}" for rule, n in excluded.items()) + ")")
    memory = [0.0 if np.isnan(c.memory_gib) else c.memory_gib for c in cost_of]
    limits = attempt_limits()
    print(f"SLURM attempts (profiles/slurm): {', '.join(f'{limit / 3600:g} h' for limit in limits)}")
    for node in MACHINES:
        gpu = [node.gpus > 0 and job.rule in on_gpu for job in known]
        durations = [gpu_seconds(job.rule, c.wall_s) if g else c.wall_s for job, c, g in zip(known, cost_of, gpu)]
        if node.slurm:
            durations, attempts = zip(*(with_attempts(seconds, limits) for seconds in durations))
            late = pd.Series([job.rule for job, attempt in zip(known, attempts) if attempt != 1]).value_counts()
            print(f"{node.name}: jobs past the first attempt: "
                  + (", ".join(f"{rule} {n}" for rule, n in late.items()) or "none")
                  + (f"; past every attempt: {sum(a == 0 for a in attempts)}" if 0 in attempts else ""))
        span = makespan(known, list(durations), [c.cores for c in cost_of], memory, gpu, node,
                        int(SLURM_PROFILE["jobs"]) if node.slurm else None)
        print(f"{node.name}: {span / 3600:.2f} h ({span / 86400:.2f} days) for {len(known)} jobs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="the measurement's folder: --measure measures there (and rewrites "
                        "study_costs.tsv); without --measure, project from what was measured there, not the table")
    parser.add_argument("--measure", action="store_true", help="measure what is not measured yet in --work")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    if args.measure and not args.work:
        parser.error("--measure needs --work")
    print(machine(), flush=True)
    if args.measure:
        (args.work / "projection").mkdir(parents=True, exist_ok=True)
        embeddings = measure_embeddings(args.work / "projection/embeddings.json")
        measure_jobs(args.work, args.cores, model_dims(embeddings))
        save_costs(measured_costs(args.work))
    projection(args.work)


if __name__ == "__main__":
    main()
