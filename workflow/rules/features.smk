# Music embeddings of every stimulus clip, one table per feature space.
rule features:
    input:
        bids=BIDS,
        stimuli=STIMULI,
    output:
        f"{RESULTS}/features/{{feature}}.parquet",
    params:
        window=lambda wildcards: FEATURES[wildcards.feature]["window_s"],
        stride=lambda wildcards: FEATURES[wildcards.feature]["stride_s"],
    log:
        f"{LOGS}/features/{{feature}}.log",
    benchmark:
        f"{LOGS}/features/{{feature}}.benchmark.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} features {DATASET_ARGS} --stimuli {input.stimuli} --feature {wildcards.feature} "
        "--window {params.window} --stride {params.stride} --out {output} 2> {log}"
