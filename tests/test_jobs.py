"""The job table (b2m.jobs) against the workflow and the stages: every rule is one job and every job a rule, with
the table's shell line, wildcards and output folder; every job's stage is registered with the job's options; and
the shell line of every job names only flags its stage's parser accepts."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path

import pytest
import yaml

from b2m.jobs import JOBS, stage_options
from b2m.layout import Folder
from b2m.options import GENERATORS
from b2m.study import Study
from conftest import REPO

# Configs that between them define every rule (the response, simulation and download rules are conditional); a
# `+` overlays the next file as Snakemake merges two --configfile.
RULE_CONFIGS = ["config/config.yaml", "config/ds003720.yaml", "config/ds003720.yaml+authors-arrays"]


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory) -> dict:
    """Rule name → (the parsed Snakemake rule, its study's layout), over ``RULE_CONFIGS``."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    overlay = tmp_path_factory.mktemp("config") / "authors-arrays.yaml"
    overlay.write_text(yaml.safe_dump({"dataset": {"input": "authors-arrays"}}))
    rules = {}
    for name in RULE_CONFIGS:
        files = [REPO / part if part.startswith("config/") else overlay for part in name.split("+")]
        with SnakemakeApi() as api:
            workflow = api.workflow(snakefile=REPO / "Snakefile", workdir=REPO, resource_settings=ResourceSettings(),
                                    config_settings=ConfigSettings(configfiles=files))
            layout = Study(workflow._workflow.config).layout
            rules.update({rule.name: (rule, layout) for rule in workflow._workflow.rules if rule.name != "all"})
    return rules


def test_every_rule_is_one_job_and_every_job_a_rule(workflow_rules):
    assert {"authors_responses", "simulate", "download_dataset", "features_gpu"} <= set(workflow_rules)
    assert sorted(workflow_rules) == sorted(JOBS)


def test_each_rule_runs_its_jobs_shell_line_with_its_wildcards(workflow_rules):
    for name, (rule, _) in workflow_rules.items():
        job = JOBS[name]
        assert rule.shellcmd == job.shell, name
        assert set(rule.wildcard_names) == set(job.wildcards), name


def test_each_rule_writes_into_its_jobs_layout_folder(workflow_rules):
    """A job's ``folder`` (a Layout method, given the job's first wildcards) is where its rule's outputs lie."""
    from snakemake.io import strip_wildcard_constraints

    for name, (rule, layout) in workflow_rules.items():
        job = JOBS[name]
        if job.folder is None:
            continue
        method = getattr(layout, job.folder)
        required = [p for p in inspect.signature(method).parameters.values() if p.default is p.empty]
        built = method(*[*(f"{{{w}}}" for w in job.wildcards), *[""] * len(required)][:len(required)])
        folder = built.path if isinstance(built, Folder) else Path(built).parent
        outputs = [Path(strip_wildcard_constraints(str(path))) for path in rule.output]
        assert outputs and all(folder in [path, *path.parents] for path in outputs), (name, folder, outputs)


def test_each_file_of_a_jobs_shell_line_is_one_its_rule_defines(workflow_rules):
    """A source ``params.x`` / ``output.x`` / ``input.x`` of a Job's command line is a name its rule defines (an
    input function's names are known only once the job is planned: those inputs are checked by the dry runs)."""
    for name, (rule, _) in workflow_rules.items():
        defined = {"params": set(rule.params.keys()), "output": set(rule.output.keys()),
                   "input": set(rule.input.keys())}
        planned_inputs = any(callable(item) or getattr(item, "flags", {}).get("unpack")
                             for item in rule.input)
        for _, source, _ in JOBS[name].arguments():
            kind, _, key = source.partition(".")
            if key and kind in defined and not (kind == "input" and planned_inputs):
                assert key in defined[kind], (name, source)


def merged(base: dict, overlay: dict) -> dict:
    """``overlay`` merged into ``base`` key by key, as Snakemake merges a second --configfile."""
    return {**base, **{key: merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict)
                       else value for key, value in overlay.items()}}


def test_every_job_with_options_has_its_document_in_some_study():
    """``job_kinds`` (the jobs a study plans, whose documents ``readers`` reads) leaves out no job: over the
    configs that define every rule, each rule that takes an options document is among some study's kinds."""
    from b2m.jobs import job_kinds

    overlays = {"authors-arrays": {"dataset": {"input": "authors-arrays"}}}
    kinds = set()
    brain = ["config/config.yaml+benchmarks/brain_rerank.yaml", "config/ds003720.yaml+benchmarks/brain_rerank.yaml"]
    for name in [*RULE_CONFIGS, "config/config.yaml+config/decoders.yaml", *brain]:  # the pooled decoder, brain scores
        config = {}
        for part in name.split("+"):
            config = merged(config, overlays.get(part) or yaml.safe_load((REPO / part).read_text()))
        kinds |= {rule for rule, _ in job_kinds(Study(config))}
    assert sorted(rule for rule, job in JOBS.items() if job.document and rule not in kinds) == []


def test_each_jobs_input_function_is_defined_in_common_smk():
    common = (REPO / "workflow/rules/common.smk").read_text()
    assert [job.rule for job in JOBS.values() if job.inputs and f"\ndef {job.inputs}(" not in common] == []


def test_every_jobs_stage_is_registered_with_the_jobs_options():
    """A stage reading an option class its rule does not pass would read a value Snakemake never sees; the jobs
    of one stage (a rule and its GPU twin, the summaries) read the same."""
    from b2m.cli import build_parser  # noqa: F401  (registers the stages)
    from b2m.stages import STAGES

    for job in JOBS.values():
        assert job.stage in STAGES, job.rule
        assert STAGES[job.stage].options == job.options == stage_options(job.stage), job.rule
    assert JOBS["index_corpus"].stage == "index" and JOBS["features_gpu"].stage == "features"


# A value for each placeholder kind of a shell line, so that its stage's parser can read it.
SAMPLES = {"threads": "2", "wildcards.chunk": "0", "wildcards.window": "1.5", "wildcards.stride": "1.5",
           "wildcards.generator": next(iter(GENERATORS)), "params.options": "{}"}


def command_line(job) -> list[str]:
    """The job's shell line with every placeholder filled, as the argv of ``b2m`` (an optional param that holds its
    own flag left out, the log redirection too)."""
    optional = {f"{{{source}:q}}" for _, source, own_flag in job.arguments() if own_flag}
    words = [word for word in shlex.split(job.shell.split(" > ")[0].split(" 2> ")[0])[3:] if word not in optional]
    placeholders = [re.fullmatch(r"\{([\w.]+)(:q)?\}", word) for word in words]
    return [SAMPLES.get(found.group(1), f"file-{found.group(1)}") if found else word
            for word, found in zip(words, placeholders)]


@pytest.mark.parametrize("rule", sorted(JOBS))
def test_each_jobs_shell_line_names_only_flags_its_stage_accepts(rule):
    from b2m.cli import build_parser

    argv = command_line(JOBS[rule])
    assert argv[0] == JOBS[rule].stage
    args = build_parser().parse_args(argv)  # an unknown flag or a missing required one exits
    assert args.command == JOBS[rule].stage
