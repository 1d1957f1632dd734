# b2m: music reconstruction from fMRI (after Denk et al. 2023). The DAG fans out over
# subjects × folds × features; every rule calls the b2m command line. See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/responses.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/decoding.smk"
include: "workflow/rules/encoding.smk"
include: "workflow/rules/reconstruction.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summary.smk"


rule all:
    input:
        f"{RESULTS}/summary/identification.tsv",
        f"{RESULTS}/summary/encoding.tsv",
        rules.report_figures.output,
        f"{RESULTS}/summary/reconstruction.tsv" if RECON_FEATURES else [],
        f"{RESULTS}/report/listening.html" if RECON_FEATURES else [],


check_output_roots()
