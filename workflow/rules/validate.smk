# The dataset checked before anything is computed on it (b2m validate): every subject's runs, TRs, grids and
# events, the stimuli and captions. A local rule (it reads headers and tables, in seconds) that runs before any
# other ready job (priority); a refused dataset fails it, and Snakemake then starts no further job. No job takes
# its report as input, so rewriting the report (after any data file changed) reruns nothing else.
localrules:
    validate_dataset,


rule validate_dataset:
    input:
        unpack(validation_inputs),
    output:
        str(LAYOUT.validation()),
    log:
        log_of("validate_dataset"),
    benchmark:
        benchmark_of("validate_dataset")
    priority: 100
    conda:
        "../../envs/core.yaml"
    params:
        options=job_options("validate_dataset"),
    shell:
        JOBS["validate_dataset"].shell
