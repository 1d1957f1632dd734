# Music embeddings of every stimulus clip, one table per feature space.


# Model weights are fetched once on the machine Snakemake runs on (a cluster's login node, with internet);
# the compute jobs then read them with the hub offline.
localrules:
    fetch_models,


rule fetch_models:
    output:
        str(LAYOUT.fetched("{feature}")),
    log:
        log_of("fetch_models", "{feature}"),
    benchmark:
        benchmark_of("fetch_models", "{feature}")
    conda:
        "../../envs/core.yaml"
    params:
        options=job_options("fetch_models"),
    shell:
        JOBS["fetch_models"].shell


# Model features (CLAP, w2v-BERT, MERT) embed on a GPU where there is one: `features_gpu`, the others `features`.
for on_gpu in (False, True):

    rule:
        name:
            twin_of("features", on_gpu)
        input:
            unpack(features_input),
            clips=clips_read,
        output:
            str(LAYOUT.features("{feature}")),
        log:
            log_of("features", "{feature}"),
        benchmark:
            benchmark_of("features", "{feature}")
        wildcard_constraints:
            feature=on_gpu_pattern("features", on_gpu),
        conda:
            conda_env
        resources:
            mem_mb=grows_with_attempt(16000 if on_gpu else 4000),
        params:
            options=job_options("features"),
            captions=lambda wildcards, input: (["--captions", input.captions] if "captions" in input.keys() else []),
            stimuli=lambda wildcards, input: (["--stimuli", input.stimuli] if "stimuli" in input.keys() else []),
        shell:
            JOBS["features"].shell
