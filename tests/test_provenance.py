"""Every option reaches Snakemake: after a finished (reduced) demo run, changing any option key the demo config
sets makes `snakemake -n` plan again exactly the jobs whose options document changed, for the reason that their
params changed, and nothing else but what depends on them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from b2m.features.audio import stimulus_path
from b2m.jobs import job_kinds
from b2m.options import lookup
from b2m.reconstruct.corpus import read_index
from b2m.study import Study
from conftest import finish, reduced_demo, run_snakemake
from test_study import changed_option_keys, documents

pytestmark = pytest.mark.slow


def snakemake(workdir, config: dict, *args) -> subprocess.CompletedProcess:
    (workdir / "run.yaml").write_text(yaml.safe_dump(config))
    return run_snakemake(workdir, "--cores", "2", *args, timeout=1200)


def planned(output: str) -> list[tuple[str, str, str]]:
    """(rule, reason, first output) of every job a dry run plans."""
    jobs, job = [], {}
    for line in output.splitlines():
        match = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", line)
        if match:
            job = {"rule": match.group(1)}
        elif line.strip().startswith(("output:", "reason:")) and job:
            name, value = line.strip().split(":", 1)
            job[name] = value.strip()
            if name == "reason":
                jobs.append((job["rule"], job["reason"], job.get("output", "").split(", ")[0]))
                job = {}
    return jobs


def rules_seen(workdir, config: dict, expected: set[str], reason_given: str = "Params have changed") -> set[str]:
    """The rules Snakemake plans for ``reason_given`` (params changed, or an updated input file). A job that
    reruns anyway because an upstream job does is only reported as such, so the rules seen that way are asked again
    alone (``--allowed-rules``, their jobs' outputs as targets), until each has been seen for itself; every other
    job must be downstream of them."""
    result = snakemake(workdir, config, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs, seen = planned(result.stdout), set()
    assert all(rule in expected or reason.startswith("Input files updated by another job")
               for rule, reason, _ in jobs), jobs
    while True:
        seen |= {rule for rule, reason, _ in jobs if reason_given in reason}
        hidden = [(rule, output) for rule, reason, output in jobs if rule in expected - seen and output]
        if not hidden:
            return seen
        again = snakemake(workdir, config, "-n", "--allowed-rules", *sorted({r for r, _ in hidden}), "--",
                          *sorted({output for _, output in hidden}))
        assert again.returncode == 0, again.stderr[-2000:]
        jobs = planned(again.stdout)
        if not any(reason_given in reason for _, reason, _ in jobs):
            return seen


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("provenance")
    config = reduced_demo()
    finish(workdir, config)
    return workdir, config


def test_the_done_when_keys_are_among_those_tested():
    keys = set(changed_option_keys(reduced_demo()))
    assert {"responses.lag_s", "responses.drift", "ridge.n_alphas", "ridge.alpha_max_exp", "ridge.cv_folds",
            "ridge.seed", "decoding.n_permutations", "encoding.n_permutations", "encoding.n_iter",
            "reconstruction.top_k", "reconstruction.n_chance", "reconstruction.audio.model",
            "reconstruction.audio.top", "simulate.snr"} <= keys


def test_a_changed_option_reruns_exactly_the_jobs_it_shapes(finished):
    reruns_exactly_what_it_shapes(*finished, changed_option_keys(finished[1]))


def test_a_changed_decoder_option_reruns_its_decoders_alone(decoders_run):
    """The contrastive and voxel-selection options rerun the per-subject decode jobs (and what reads them), the
    pooled options the pooled jobs alone: no per-subject decoder reruns for the pooled one."""
    workdir, config = decoders_run
    keys = {key: mutated for key, mutated in changed_option_keys(config).items()
            if key.startswith(("decoding.pooled.", "decoding.contrastive.", "decoding.voxel_selection."))}
    assert {"decoding.pooled.reference", "decoding.pooled.n_iter", "decoding.contrastive.epochs",
            "decoding.voxel_selection.candidates"} <= set(keys)
    assert {rule for rule, _ in job_kinds(Study(config))} >= {"decode", "decode_pooled"}
    reruns_exactly_what_it_shapes(workdir, config, keys)


def reruns_exactly_what_it_shapes(workdir, config: dict, changed: dict) -> None:
    """For each changed key (key → the mutated config), the dry run plans exactly the rules whose options document
    changed, for the reason that their params changed (and what depends on them)."""
    before = documents(Study(config))
    for key, mutated in changed.items():
        value = lookup(config, key)
        if isinstance(value, str) and (workdir / value).is_file():  # a data file named by an option: a copy
            shutil.copy2(workdir / value, workdir / lookup(mutated, key))  # same mtime: not an update
        after = documents(Study(mutated))
        expected = {rule for (rule, names), text in after.items() if before.get((rule, names)) != text}
        assert expected and rules_seen(workdir, mutated, expected) == expected, key


def correct(path) -> None:
    """Rewrite a file with other bytes and the same meaning (Snakemake skips an input whose checksum is unchanged):
    a JSON sidecar re-indented, an events table with a final line break, any other file with its last byte
    flipped."""
    data = path.read_bytes()
    if path.suffix == ".json":
        path.write_text(json.dumps(json.loads(data), indent=1))
    elif path.suffix == ".tsv":
        path.write_bytes(data + b"\r\n")
    else:
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))


@pytest.mark.parametrize("name, readers", [
    ("sub-001/func/sub-001_task-Training_run-02_events.tsv",
     {"validate_dataset", "clean_bold", "window_responses", "features", "find_duplicates", "retrieve"}),
    ("sub-001/func/sub-001_task-Test_run-01_bold.json", {"validate_dataset", "clean_bold", "window_responses"}),
    ("sub-001/func/sub-001_task-Training_run-03_bold.nii", {"validate_dataset", "clean_bold"}),
])
def test_a_corrected_dataset_file_reruns_what_read_it(finished, name, readers):
    """A file replaced inside the dataset (not the folder) replans exactly the jobs that read it."""
    workdir, config = finished
    path = workdir / config["dataset"]["bids_root"] / name
    correct(path)
    try:
        assert rules_seen(workdir, config, readers, f"Updated input files: {path.relative_to(workdir)}") == readers
    finally:
        snakemake(workdir, config, "--touch")


@pytest.mark.parametrize("split, readers", [
    ("train", {"validate_dataset", "features", "list_corpus_chunk", "find_duplicates"}),
    ("test", {"validate_dataset", "features", "list_corpus_chunk", "find_duplicates", "retrieve"})])
def test_a_corrected_stimulus_reruns_what_read_it(finished, split, readers):
    """The features read every clip; retrieval writes the test clips' originals beside their neighbours, and
    find_duplicates fingerprints every clip (a query of some fold); the demo's corpus holds the stimuli, so the
    clip's corpus chunk is listed (and from it embedded and fingerprinted) again too."""
    workdir, config = finished
    table = BidsDataset(workdir / config["dataset"]["bids_root"], DESIGN).stimulus_table()
    stimulus = stimulus_path(workdir / config["dataset"]["stimuli"], table.path[table.split == split].iloc[0])
    correct(stimulus)
    try:
        assert rules_seen(workdir, config, readers, f"Updated input files: {stimulus.relative_to(workdir)}") == readers
    finally:
        snakemake(workdir, config, "--touch")


CORPUS_READERS = {"index_corpus", "find_duplicates", "retrieve", "evaluate_reconstruction",
                  "summarize_reconstruction", "listening_page", "listening_test"}
CHUNK_RULES = {"list_corpus_chunk", "index_corpus_chunk", "fingerprint_corpus_chunk"}  # one job per chunk


def corpus_change(folder, change: str):
    """Rewrite (same name, other bytes), add or remove a track of a gtzan-layout corpus folder; returns the track
    id and a function that undoes the change."""
    track = sorted((folder / "blues").glob("*.wav"))[0]
    if change == "rewritten":
        correct(track)
        return track.stem, lambda: correct(track)
    if change == "added":
        added = folder / "blues" / "blues.00999.wav"
        shutil.copy(track, added)
        correct(added)
        return added.stem, added.unlink
    kept = folder.parent / track.name
    track.rename(kept)
    return track.stem, lambda: kept.rename(track)


@pytest.mark.parametrize("change", ["rewritten", "added", "removed"])
def test_a_changed_corpus_track_remakes_its_own_chunk_and_what_reads_the_index(finished, change):
    """A track's chunk is a hash of its id: one changed, added or removed track replans its own chunk's listing
    alone (the one job the track is an input of), that chunk's index and fingerprints, then the gather, the
    duplicates and the jobs downstream of them."""
    from b2m.reconstruct.corpus import chunk_of

    workdir, config = finished
    folder = workdir / config["reconstruction"]["corpus"]["sources"][1]["path"]
    track_id, undo = corpus_change(folder, change)
    try:
        result = snakemake(workdir, config, "-n")
        assert result.returncode == 0, result.stderr[-2000:]
        jobs = planned(result.stdout)
        chunk = f"chunk-{chunk_of([track_id], config['reconstruction']['corpus']['chunks'])[0]}"
        for rule in CHUNK_RULES:
            outputs = [output for name, _, output in jobs if name == rule]
            assert len(outputs) == 1 and re.search(rf"/{chunk}[/.]", outputs[0]), (rule, outputs)
        assert {rule for rule, _, _ in jobs} - CHUNK_RULES == CORPUS_READERS | {"all"}
        assert all(reason.startswith("Input files updated by another job") for rule, reason, _ in jobs
                   if rule != "list_corpus_chunk"), jobs
    finally:
        undo()
        snakemake(workdir, config, "--touch")


def test_a_second_config_over_the_corpus_indexes_nothing(finished):
    """Another results folder (another config or study) over the same corpus takes every vector from the cache:
    it embeds only the tracks whose audio the first run never embedded (the stimuli that tests above corrected)."""
    workdir, config = finished
    second = {**config, "results": "results-second"}
    done = snakemake(workdir, second, "results-second/corpus/acoustic/vectors.npy")
    assert done.returncode == 0, done.stderr[-2000:]
    chunks = {name: pd.concat(pd.read_parquet(path) for path in (workdir / name).glob("corpus/acoustic/chunks/*/"
                                                                                       "tracks.parquet"))
              for name in ("results", "results-second")}
    new = ~chunks["results-second"].sha256.isin(chunks["results"].sha256)
    logs = (workdir / "results-second/logs/corpus/acoustic").glob("chunk-*.log")
    embedded = [int(m.group(1)) for log in logs
                for m in re.finditer(r"chunk: \d+ tracks, (\d+) embedded", log.read_text())]
    assert len(embedded) == config["reconstruction"]["corpus"]["chunks"] and sum(embedded) == new.sum() < 5
    first, again = (read_index(workdir / name / "corpus/acoustic") for name in ("results", "results-second"))
    same = ~again[1].track_id.isin(chunks["results-second"].track_id[new]).to_numpy()
    assert np.array_equal(first[0][same], again[0][same]) and first[1].track_id.tolist() == again[1].track_id.tolist()
