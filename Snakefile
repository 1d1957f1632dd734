# b2m: music reconstruction from fMRI (after Denk et al. 2023). The DAG fans out over
# subjects × folds × features; every rule calls the b2m command line. See README.md.
import shlex
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# The b2m package of this workflow's folder, for the workflow and for every job it runs: the same code in a venv,
# a conda env of the rule (envs/core.yaml) or on a cluster node.
# Every job's b2m command dies with the job's shell (b2m.job.JOB_SHELL_PREFIX), which is what Snakemake kills.
sys.path.insert(0, workflow.basedir)
from b2m.job import JOB_SHELL_PREFIX

shell.prefix(f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; {JOB_SHELL_PREFIX}")


# The demo (config/config.yaml) is the default; a --configfile stands alone and inherits none of it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    subject="sub-[A-Za-z0-9]+",
    feature="|".join(STUDY.features),
    fold="|".join(STUDY.folds),
    window=r"[0-9.]+",
    stride=r"[0-9.]+",
    chunk=r"[0-9]+",
    generator="|".join(sorted({g for f in STUDY.reconstructed for g in STUDY.generators_of(f)}) or ["(?!)"]),


include: "workflow/rules/simulate.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/responses.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/decoding.smk"
include: "workflow/rules/encoding.smk"
include: "workflow/rules/reconstruction.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summary.smk"


rule all:
    input:
        final_outputs(),


check_output_roots()
check_the_data()
