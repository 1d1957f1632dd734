"""The Snakemake layer: config validation names the bad key, the DAG plans for both profiles."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import REPO, SUBPROCESS_ENV

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def demo_config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


@pytest.mark.parametrize("config_files", [["config/config.yaml"], ["config/ds003720.yaml"]])
def test_shipped_configs_are_valid(config_files):
    validate(yaml.safe_load((REPO / config_files[0]).read_text()), SCHEMA)


@pytest.mark.parametrize("mutate, named", [
    (lambda c: c.update(subjets=["sub-001"]), "subjets"),
    (lambda c: c["responses"].update(lag_s="four"), "lag_s"),
    (lambda c: c["features"]["acoustic"].update(layr=7), "layr"),
    (lambda c: c["features"].update(clap={"window_s": 10, "stride_s": 1.5, "extractor": "mulan"}), "mulan"),
    (lambda c: c["features"].update(Clap_Audio={"window_s": 10, "stride_s": 1.5}), "Clap_Audio"),
    (lambda c: c["ridge"].update(cv_fold=5), "cv_fold"),
    (lambda c: c.update(folds=["test", "polka"]), "polka"),  # neither test, cv-<k> nor <label>-<value>
    (lambda c: c.pop("subjects"), "subjects"),
    (lambda c: c["reconstruction"]["listening_test"].update(foils=["genre"]), "genre"),  # neither random nor -matched
    (lambda c: c["reconstruction"]["listening_test"].update(foils=["random", "random"]), "foils"),
])
def test_config_error_names_the_bad_key(mutate, named):
    config = copy.deepcopy(demo_config())
    mutate(config)
    with pytest.raises(WorkflowError, match=named):
        validate(config, SCHEMA)


def dry_run(workdir: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "-n", "--directory", str(workdir), "--snakefile", str(REPO / "Snakefile"),
                           *args], cwd=REPO, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture
def workdir(tmp_path):
    for folder in ("config", "profiles", "workflow"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def job_counts(output: str) -> dict:
    counts, table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            table = True
        elif table and line.strip() and not line.startswith("-"):
            name, number = line.split()[:2]
            counts[name] = int(number)
            if name == "total":
                break
    return counts


def job_resources(output: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job a dry run prints (local rules print no resources)."""
    jobs, rule = [], None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            pairs = line.split(":", 1)[1].split(", ")
            jobs.append((rule, dict(pair.strip().split("=", 1) for pair in pairs)))
    return jobs


def test_slurm_profile_retries_with_more_memory_and_capped_runtime():
    """Every job is retried twice; the rules' mem_mb grows with the attempt (grows_with_attempt); runtime is the
    profile's, 240 min × attempt capped at the partition's limit, and the rules set none; CPUs are the rules'
    threads (no cpus_per_task); the GPU layer changes only partition, GPU and runtime cap."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    layer = yaml.safe_load((REPO / "profiles/slurm-gpu/config.yaml").read_text())
    assert profile["retries"] == 2 and "set-resources" not in profile and set(layer) == {"set-resources"}
    assert profile["default-resources"]["runtime"] == "min(240 * attempt, 1440)"
    assert profile["slurm-status-command"] == "squeue"
    assert all(set(res) == {"slurm_partition", "gpu", "gpu_model", "runtime"}
               for res in layer["set-resources"].values())
    rules = "".join(path.read_text() for path in (REPO / "workflow/rules").glob("*.smk"))
    assert "mem_mb=grows_with_attempt(" in rules and not re.search(r"mem_mb=\d", rules)
    assert "runtime=" not in rules and "gpu=" not in rules and "cpus_per_task" not in rules + str(profile)


def test_demo_dry_run_lists_the_dag(workdir):
    result = dry_run(workdir, "--profile", "profiles/local")
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout) == {"simulate": 1, "clean_bold": 3, "window_responses": 3, "features": 2,
                                         "factorise": 6, "decode": 12, "encode": 12, "encode_banded": 6,
                                         "list_corpus_chunk": 4, "index_corpus_chunk": 4, "index_corpus": 1,
                                         "fingerprint_corpus_chunk": 4, "find_duplicates": 1, "retrieve": 6,
                                         "evaluate_reconstruction": 6, "summarize_decoding": 1,
                                         "summarize_encoding": 1, "summarize_reconstruction": 1,
                                         "summarize_label_decoding": 1, "listening_page": 1, "listening_test": 1,
                                         "report_figures": 1, "validate_dataset": 1, "all": 1, "total": 80}
    assert "fetch_models" not in result.stdout  # the demo is offline


def test_rerank_adds_a_brain_score_job_per_evaluation_and_the_demo_has_none(workdir):
    """reconstruction.rerank plans one brain_score job per subject × fold of a reconstructed space, reading the
    retrieval it re-ranks, and hands its folder to the evaluation; without it (the demo) neither appears."""
    (workdir / "rerank.yaml").write_text(yaml.safe_dump({"reconstruction": {"rerank": 5}}))
    result = dry_run(workdir, "--configfile", "config/config.yaml", str(workdir / "rerank.yaml"), "--printshellcmds")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["brain_score"] == counts["evaluate_reconstruction"] == 6
    commands = [line for line in result.stdout.splitlines() if "python -m b2m" in line]
    scoring = [line for line in commands if "b2m brain-score" in line]
    assert all("--retrieval results/sub-" in line and "--generated" not in line for line in scoring)
    evaluations = [line for line in commands if "b2m evaluate-reconstruction" in line]
    assert len(evaluations) == 6 and all(re.search(r"--brain results/sub-\d+/\S+/acoustic/brain", line)
                                         for line in evaluations)
    plain = dry_run(workdir, "--printshellcmds")
    assert "brain_score" not in job_counts(plain.stdout) and "--brain" not in plain.stdout


def test_answer_files_in_the_answers_folder_are_scored_into_the_report(workdir):
    """The demo plans the listening test and no scoring; answer files in `reconstruction.listening_test.answers`
    add the scoring job, with each file among its inputs (other files in the folder are not)."""
    assert "score_listening" not in job_counts(dry_run(workdir).stdout)
    answers = workdir / demo_config()["reconstruction"]["listening_test"]["answers"]
    answers.mkdir()
    for name in ("listening-test_L01_b2m-1.json", "listening-test_L02_b2m-1.csv", "notes.txt"):
        (answers / name).write_text("{}")
    result = dry_run(workdir, "--printshellcmds")
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout)["score_listening"] == 1
    command = next(line for line in result.stdout.splitlines() if "b2m score-listening" in line)
    assert "L01_b2m-1.json" in command and "L02_b2m-1.csv" in command and "notes.txt" not in command
    assert "results/report/listening_test_key.tsv" in command


def test_one_subject_alone(workdir):
    result = dry_run(workdir, "--config", "subjects=[sub-002]")
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout)["decode"] == 4 and "sub-002" in result.stdout and "sub-001" not in result.stdout


def test_the_decoders_demo_pools_every_subject_and_a_subject_alone_runs_without_the_pool(workdir):
    """config/decoders.yaml: one pooled job per fold × feature over the five subjects, beside the per-subject
    decoders, and a k-shot job per subject × fold × feature; a run of one subject has its own decoders only
    (nothing to pool, no one to leave out)."""
    configs = ["--configfile", "config/config.yaml", "config/decoders.yaml"]
    result = dry_run(workdir, *configs)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["decode_pooled"] == 2 and counts["decode"] == 10 and counts["factorise"] == 5
    assert counts["decode_kshot"] == 10 and counts["summarize_kshot"] == counts["report_kshot"] == 1
    alone = dry_run(workdir, *configs, "--config", "subjects=[sub-002]")
    assert alone.returncode == 0, alone.stderr
    assert "decode_pooled" not in job_counts(alone.stdout) and job_counts(alone.stdout)["decode"] == 2
    assert "decode_kshot" not in job_counts(alone.stdout)


def test_cv_folds_plan_the_encoding_of_fold_cv_all(workdir):
    """Folds [cv-1, cv-2, cv-3]: one encode job of fold cv-all per subject × feature (and one banded), each naming
    the pooled folds in its options and reading the same responses as a per-fold job; the encoding summary lists
    them."""
    from b2m.cli import build_parser
    from b2m.options import FoldPoolingOptions
    from b2m.stages import STAGES, options_from_args

    result = dry_run(workdir, "--config", "folds=[cv-1,cv-2,cv-3]", "--printshellcmds")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["encode"] == 3 * 4 * 2 and counts["encode_banded"] == 3 * 4
    parser = build_parser()
    pooled = [parser.parse_args(words) for words in b2m_commands(result.stdout)
              if words[0].startswith("encode") and words[words.index("--fold") + 1] == "cv-all"]
    assert len(pooled) == 3 * 2 + 3
    for args in pooled:
        assert options_from_args(args, STAGES[args.command].options)[FoldPoolingOptions].folds == (
            "cv-1", "cv-2", "cv-3")
        assert args.responses.name == "window-1.5s-stride-1.5s"
    [summary] = [line for line in result.stdout.splitlines() if "python -m b2m summarize" in line
                 and "summary/encoding.parquet" in line]
    assert "results/sub-002/cv-all/acoustic/encoding/summary.parquet" in summary
    assert "results/sub-003/cv-all/banded/encoding/summary.parquet" in summary


def test_slurm_profile_plans_the_dag(workdir):
    result = dry_run(workdir, "--profile", "profiles/slurm")
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout)["total"] == 80


def test_config_typo_stops_the_dry_run_naming_the_key(workdir):
    result = dry_run(workdir, "--config", "subjets=[sub-001]")
    assert result.returncode != 0 and "subjets" in result.stderr + result.stdout


def test_feature_without_an_extractor_is_refused(workdir):
    config = demo_config()
    config["features"]["mulan"] = {"window_s": 10, "stride_s": 1.5}
    (workdir / "config/mulan.yaml").write_text(yaml.safe_dump(config))
    result = dry_run(workdir, "--configfile", str(workdir / "config/mulan.yaml"))
    assert result.returncode != 0 and "features ['mulan'] name no extractor" in result.stderr + result.stdout


@pytest.mark.parametrize("override, named", [
    ("folds=[test,cv-7]", "folds ['cv-7'] are not among cv-1 .. cv-4 (outer_folds = 4)"),
    ("encoding={'banded':[acoustic]}", "encoding.banded ['acoustic'] must name two or more features"),
    ("reconstruction={'folds':[cv-1]}", "reconstruction.folds ['cv-1'] are not among `folds`"),
    ("reconstruction={'features':{'genre':{}}}", "reconstruction.features ['genre'] must be audio feature spaces"),
])
def test_fold_and_band_settings_are_checked(workdir, override, named):
    result = dry_run(workdir, "--config", override)
    assert result.returncode != 0 and named in result.stderr + result.stdout


def test_unsimulated_subject_is_refused(workdir):
    result = dry_run(workdir, "--config", "subjects=[sub-009]")
    assert result.returncode != 0 and "sub-009" in result.stderr + result.stdout


def test_no_rule_reads_the_planted_truth(workdir):
    result = dry_run(workdir)
    inputs = [line for line in result.stdout.splitlines() if line.strip().startswith("input:")]
    assert inputs and not any("truth" in line for line in inputs)


def real_paths(workdir, real, **extra) -> Path:
    """A config file pointing ds003720.yaml at the real metadata, stimuli and captions of shared/real, and at an
    (empty) FMA tree for the corpus."""
    fma = workdir / "fma"
    (fma / "fma_large").mkdir(parents=True, exist_ok=True)
    (fma / "tracks.csv").touch()
    corpus = {"sources": [{"path": str(fma / "fma_large"), "layout": "fma", "tracks_csv": str(fma / "tracks.csv")}]}
    paths = workdir / "paths.yaml"
    paths.write_text(yaml.safe_dump({"reconstruction": {"corpus": corpus}, **extra, "dataset": {
        "bids_root": str(real / "ds003720"), "stimuli": str(real / "gtzan-sample"),
        "captions": str(real / "brain2music-captions/brain2music-captions.csv"), **extra.get("dataset", {})}}))
    return paths


def b2m_commands(output: str) -> list[list[str]]:
    """The b2m argument lists of every shell command a `--printshellcmds` dry run prints, each checked by b2m's
    own parser (which exits on an unknown, missing or abbreviated option)."""
    from b2m.cli import build_parser

    parser, commands = build_parser(), []
    for line in output.splitlines():
        if line.startswith("Shell command: ") and "python -m b2m " in line:
            words = shlex.split(line.removeprefix("Shell command: "))
            words = words[words.index("b2m") + 1:]
            words = words[:next((i for i, w in enumerate(words) if w.startswith((">", "2>"))), len(words))]
            parser.parse_args(words)
            commands.append(words)
    return commands


def job_documents(output: str, stage: str) -> list[dict]:
    """The options document of every `b2m <stage>` command a `--printshellcmds` dry run prints."""
    documents = []
    for words in b2m_commands(output):
        if words[0] == stage:
            documents.append(json.loads(words[words.index("--options") + 1]))
    return documents


def real_study_dry_run(workdir, real, *overlays) -> subprocess.CompletedProcess:
    """The dry run of config/ds003720.yaml (with ``overlays``, config files) on the real events and sidecars, under
    the slurm profiles, its shell commands printed."""
    atlas = {"atlas": "atlas/{subject}_aparc.a2009s_bold.nii.gz"}  # per-subject Destrieux labels on the EPI grid
    (workdir / "atlas").mkdir()
    for subject in range(1, 6):
        (workdir / f"atlas/sub-00{subject}_aparc.a2009s_bold.nii.gz").touch()
    paths = real_paths(workdir, real, responses={**yaml.safe_load((REPO / "config/ds003720.yaml").read_text())[
        "responses"], **atlas})
    return dry_run(workdir, "--configfile", "config/ds003720.yaml", str(paths), *map(str, overlays), "--profile",
                   "profiles/slurm", "--profile", "profiles/slurm-gpu", "--printshellcmds")


def test_real_study_config_plans_on_the_real_metadata(workdir, real):
    """config/ds003720.yaml on the real events and sidecars: 5 subjects × 6 feature spaces (3 window lengths)
    × 15 outer folds (test, cv-1..4, genre-<g>), and banded ridge per subject × fold; encoding of fold cv-all too."""
    result = real_study_dry_run(workdir, real)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert "simulate" not in counts
    assert counts == {"download_dataset": 1, "clean_bold": 5, "window_responses": 15, "fetch_models": 5,
                      "features": 2, "features_gpu": 5, "factorise": 225, "decode": 525, "encode": 560,
                      "encode_banded": 80, "list_corpus_chunk": 128, "index_corpus_chunk": 128,
                      "index_corpus_chunk_gpu": 256,
                      "index_corpus": 3, "fingerprint_corpus_chunk": 128, "find_duplicates": 1, "retrieve": 15,
                      "fetch_generator": 2, "generate": 10, "evaluate_reconstruction": 5,
                      "evaluate_reconstruction_gpu": 10, "summarize_decoding": 1, "summarize_encoding": 1,
                      "summarize_reconstruction": 1, "summarize_label_decoding": 1, "pool_folds": 35,
                      "listening_page": 1, "listening_test": 1, "report_figures": 1, "validate_dataset": 1, "all": 1,
                      "total": 2153}
    jobs = job_resources(result.stdout)
    on_gpu = Counter(rule for rule, res in jobs if res.get("gpu") == "1")
    assert on_gpu == {"factorise": 225, "decode": 525, "encode": 560, "encode_banded": 80, "features_gpu": 5,
                      "index_corpus_chunk_gpu": 256, "generate": 10, "evaluate_reconstruction_gpu": 10}
    for rule, res in jobs:
        gpu_partition = res.get("gpu") == "1"
        assert res["slurm_partition"] == ("CHANGE_ME_gpu_partition" if gpu_partition else "CHANGE_ME_partition"), rule
        assert ("gpu_model" in res) == gpu_partition and res["slurm_account"] == "CHANGE_ME_account"
        assert res["runtime"] == "240"  # attempt 1 of min(240 × attempt, 1440)
    features = {res["mem_mb"] for rule, res in jobs if rule == "features_gpu"}
    assert features == {"16000"}  # attempt 1 of mem_mb = 16000 × attempt
    assert len(b2m_commands(result.stdout)) == 2153 - 1  # every job but `all`, accepted by b2m's parser
    cleaning = job_documents(result.stdout, "clean-bold")
    assert sorted(d["cleaning"]["atlas"] for d in cleaning) == [f"atlas/sub-00{i}_aparc.a2009s_bold.nii.gz"
                                                                for i in range(1, 6)]
    features = job_documents(result.stdout, "features")
    assert len(features) == 7 and all(d["models"]["cache"] == "models" for d in features)
    commands = [line for line in result.stdout.splitlines() if "python -m b2m features" in line]
    clap_text = next(line for line in commands if "--feature clap-text" in line)
    assert '"backend": "laion-clap"' in clap_text and "brain2music-captions.csv" in clap_text
    [download] = job_documents(result.stdout, "download")
    assert download["download"] == {"accession": "ds003720", "url": "https://s3.amazonaws.com/openneuro.org",
                                    "subjects": [f"sub-00{i}" for i in range(1, 6)], "metadata_only": False}
    generation = [line for line in result.stdout.splitlines() if "python -m b2m generate" in line]
    musicldm = [line for line in generation if "--backend musicldm" in line]
    assert len(musicldm) == 5 and all("clap-musicldm/decoding/predictions.parquet" in line for line in musicldm)
    assert all(d["generation"]["models"] == ["whole-mask", "oracle"]
               for d in job_documents(result.stdout, "generate"))
    index = job_documents(result.stdout, "index")
    assert len(index) == 3 and all(d["corpus"]["sources"][0]["path"] == f"{workdir}/fma/fma_large" for d in index)
    evaluation = [line for line in result.stdout.splitlines() if "python -m b2m evaluate-reconstruction" in line]
    assert sum("--generated" in line for line in evaluation) == 10  # clap-audio (caption), clap-musicldm (musicldm)


def test_brain_selected_samples_plan_a_gpu_job_per_generated_space(workdir, real):
    """generation.select: brain on the real study: a brain_score_gpu job per subject × CLAP space with a generator
    (on the GPU partition), reading the generator's samples and no retrieval, and its folder handed to the
    evaluation of that space alone."""
    (workdir / "select.yaml").write_text(yaml.safe_dump({"reconstruction": {"generation": {"select": "brain"}}}))
    result = real_study_dry_run(workdir, real, workdir / "select.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["brain_score_gpu"] == 10 and "brain_score" not in counts and counts["total"] == 2153 + 10
    assert Counter(rule for rule, res in job_resources(result.stdout) if res.get("gpu") == "1")["brain_score_gpu"] == 10
    scoring = [line for line in result.stdout.splitlines() if "python -m b2m brain-score" in line]
    assert all("--generated results-ds003720/sub-" in line and "--retrieval" not in line for line in scoring)
    assert sum("/generation/caption" in line for line in scoring) == 5
    assert sum("/generation/musicldm" in line for line in scoring) == 5
    evaluation = [line for line in result.stdout.splitlines() if "python -m b2m evaluate-reconstruction" in line]
    assert sum("--brain" in line for line in evaluation) == 10


@pytest.mark.slow
def test_fetch_models_runs_locally_under_the_slurm_profile(workdir, real, tmp_path):
    """fetch_models is a local rule: with the SLURM executor it runs on the submitting machine (no sbatch here)."""
    from tiny_models import tiny_w2v_bert

    cache = tmp_path / "cache"
    tiny_w2v_bert(cache)
    paths = real_paths(workdir, real, models={"cache": str(cache)},
                       features={"w2v-bert": {"window_s": 5, "stride_s": 1.5, "model": "test/tiny-w2v-bert"}})
    result = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--snakefile", str(REPO / "Snakefile"),
                             "--configfile", "config/ds003720.yaml", str(paths), "--profile", "profiles/slurm",
                             str(cache / "fetched/w2v-bert.json")], cwd=REPO, capture_output=True, text=True,
                            env={**SUBPROCESS_ENV, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "localrule fetch_models:" in result.stdout + result.stderr
    assert (cache / "fetched/w2v-bert.json").exists()


def test_authors_arrays_replace_the_bold_rules(workdir, real):
    """dataset.input: authors-arrays plans one windowing job per subject from the Zenodo arrays."""
    arrays = workdir / "zenodo"
    arrays.mkdir()
    for subject in ("sub-001", "sub-002"):
        for name in ("Resp_Training", "Resp_Test_Mean"):
            (arrays / f"{subject}_{name}.npy").touch()
    paths = real_paths(workdir, real, subjects=["sub-001", "sub-002"],
                       dataset={"input": "authors-arrays", "authors_arrays": str(arrays)})
    result = dry_run(workdir, "--configfile", "config/ds003720.yaml", str(paths), "--printshellcmds")
    assert result.returncode == 0, result.stderr
    assert job_documents(result.stdout, "download")[0]["download"]["metadata_only"]
    assert job_counts(result.stdout) == {"download_dataset": 1, "authors_responses": 2 * 3, "fetch_models": 5,
                                         "features": 2, "features_gpu": 5, "factorise": 2 * 3 * 15,
                                         "decode": 2 * 7 * 15, "encode": 2 * 7 * (15 + 1),
                                         "encode_banded": 2 * (15 + 1),  # the folds and cv-all
                                         "list_corpus_chunk": 128, "index_corpus_chunk": 128,
                                         "index_corpus_chunk_gpu": 256, "index_corpus": 3,
                                         "fingerprint_corpus_chunk": 128,
                                         "find_duplicates": 1, "retrieve": 2 * 3,
                                         "fetch_generator": 2, "generate": 2 * 2, "evaluate_reconstruction": 2,
                                         "evaluate_reconstruction_gpu": 2 * 2, "summarize_decoding": 1,
                                         "summarize_encoding": 1, "summarize_reconstruction": 1,
                                         "summarize_label_decoding": 1, "pool_folds": 2 * 7,  # subjects × features
                                         "listening_page": 1, "listening_test": 1, "report_figures": 1,
                                         "validate_dataset": 1, "all": 1,
                                         "total": 588 + 16 + 128 + 384 + 129 + 14 + 1}


def test_fmriprep_input_cleans_the_preprocessed_bold(workdir, real):
    """dataset.input: fmriprep cleans fMRIPrep's BOLD of the named space, with raw events and sidecars only."""
    fmriprep = workdir / "derivatives/fmriprep"
    fmriprep.mkdir(parents=True)
    paths = real_paths(workdir, real, subjects=["sub-001", "sub-002"],
                       dataset={"input": "fmriprep", "fmriprep": {"root": str(fmriprep), "space": "T1w"}})
    result = dry_run(workdir, "--configfile", "config/ds003720.yaml", str(paths), "--printshellcmds")
    assert result.returncode == 0, result.stderr
    assert job_documents(result.stdout, "download")[0]["download"]["metadata_only"]
    cleaning = job_documents(result.stdout, "clean-bold")
    assert len(cleaning) == 2 and all(d["fmriprep"] == {"root": str(fmriprep), "space": "T1w"} for d in cleaning)
    assert job_counts(result.stdout)["clean_bold"] == 2


@pytest.mark.parametrize("config_file, defined", [("config/config.yaml", "simulate"),
                                                   ("config/ds003720.yaml", "download_dataset")])
def test_every_rule_has_a_log_and_a_benchmark(config_file, defined):
    """Each rule but `all` names a log and a benchmark file (inspected on the parsed workflow)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow_api = api.workflow(snakefile=REPO / "Snakefile", workdir=REPO, resource_settings=ResourceSettings(),
                                    config_settings=ConfigSettings(configfiles=[REPO / config_file]))
        rules = {rule.name: rule for rule in workflow_api._workflow.rules}
    assert defined in rules and {"features_gpu", "report_figures", "listening_page", "fetch_models"} <= set(rules)
    assert not [name for name, rule in rules.items() if name != "all" and not (rule.log and rule.benchmark)]


@pytest.mark.parametrize("env, constraints", [("core", "constraints.txt"), ("clap", "constraints-clap.txt"),
                                              ("generation", "constraints.txt")])
def test_conda_environments_pin_the_tested_versions(env, constraints):
    """Every pip package of envs/<env>.yaml is pinned, at the version the tests run with (the constraints file)."""
    spec = yaml.safe_load((REPO / f"envs/{env}.yaml").read_text())
    pip = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict))
    tested = {}
    for line in (REPO / constraints).read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            tested[name.lower().replace("_", "-")] = version.strip()
    tested["torch"] = tested.get("torch", "2.13.0")  # the CPU build pinned by the `torch` extra
    assert all("==" in package for package in pip)
    pins = {name.lower().replace("_", "-"): version for name, version in (package.split("==") for package in pip)}
    assert {name: version for name, version in pins.items() if tested.get(name) != version} == {}


def test_a_configfile_stands_alone(workdir, real):
    """A --configfile that names its own dataset inherits nothing of the demo: no simulation, no atlas or labels,
    no corpus; the option objects' defaults fill what it leaves out."""
    own = {"results": "results-own", "subjects": ["sub-001"], "folds": ["test"],
           "dataset": {"input": "bids", "bids_root": str(real / "ds003720"), "stimuli": str(real / "gtzan-sample")},
           "design": yaml.safe_load((REPO / "config/ds003720.yaml").read_text())["design"],
           "responses": {"mask": "compute", "drift": "median", "lag_s": 4.5},
           "features": {"acoustic": {"window_s": 1.5, "stride_s": 1.5}}}
    (workdir / "own.yaml").write_text(yaml.safe_dump(own))
    result = dry_run(workdir, "--configfile", str(workdir / "own.yaml"), "--printshellcmds")
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout) == {"clean_bold": 1, "window_responses": 1, "features": 1, "factorise": 1,
                                         "decode": 1, "encode": 1, "summarize_decoding": 1, "summarize_encoding": 1,
                                         "summarize_label_decoding": 1, "report_figures": 1, "validate_dataset": 1,
                                         "all": 1, "total": 12}
    [cleaning] = job_documents(result.stdout, "clean-bold")
    assert cleaning["cleaning"]["atlas"] is None and "synthetic" not in result.stdout
    [decoding] = job_documents(result.stdout, "decode")
    assert decoding["decoding"] == {"models": ["whole-mask", "roi-ensemble", "roi-banded"], "roi_k": 6,
                                    "n_permutations": 200, "n_bootstrap": 1000, "segment_s": None}


def test_outputs_outside_results_are_refused(workdir):
    result = dry_run(workdir, "--config", "dataset={'captions': '/tmp/elsewhere/captions.csv'}")
    assert result.returncode != 0
    assert "rule simulate would write /tmp/elsewhere/captions.csv, outside `results`" in result.stderr + result.stdout


def test_config_paths_reach_commands_quoted(workdir):
    """A results folder named to break a shell command stays one word in every command the DAG would run."""
    hostile = "out dir; touch pwned"
    result = dry_run(workdir, "--printshellcmds", "--forceall", "--config", f"results={hostile}")
    assert result.returncode == 0, result.stderr
    commands = [line.removeprefix("Shell command: ") for line in result.stdout.splitlines()
                if line.startswith("Shell command: ") and line != "Shell command: None"]
    assert len(commands) >= 58 and len(b2m_commands(result.stdout)) == len(commands)  # every job of the demo DAG
    for command in commands:
        words = shlex.split(command)
        assert "touch" not in words and not any(w.startswith("pwned") for w in words), command
        assert any(word.startswith(hostile) for word in words), command  # its log, at least
