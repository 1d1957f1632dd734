# Music embeddings of every stimulus clip, one table per feature space.


# Model weights are fetched once on the machine Snakemake runs on (a cluster's login node, with internet);
# the compute jobs then read them with the hub offline.
localrules:
    fetch_models,


rule fetch_models:
    output:
        f"{MODELS}/fetched/{{feature}}.json",
    params:
        extractor=lambda wildcards: extractor_args(wildcards.feature),
    log:
        f"{LOGS}/fetch_models/{{feature}}.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} fetch-models --feature {wildcards.feature} {params.extractor} --marker {output} 2> {log}"


def features_input(wildcards):
    inputs = {"bids": BIDS_INPUT, "stimuli": STIMULI}
    if needs_weights(wildcards.feature):
        inputs["models"] = f"{MODELS}/fetched/{wildcards.feature}.json"
    if extractor_of(wildcards.feature) == "clap-text":
        inputs["captions"] = DATASET["captions"]
    return inputs


rule features:
    input:
        unpack(features_input),
    output:
        f"{RESULTS}/features/{{feature}}.parquet",
    params:
        window=lambda wildcards: FEATURES[wildcards.feature]["window_s"],
        stride=lambda wildcards: FEATURES[wildcards.feature]["stride_s"],
        extractor=lambda wildcards: extractor_args(wildcards.feature),
        captions=lambda wildcards, input: f"--captions {input.captions}" if "captions" in input.keys() else "",
    log:
        f"{LOGS}/features/{{feature}}.log",
    benchmark:
        f"{LOGS}/features/{{feature}}.benchmark.tsv"
    resources:
        mem_mb=lambda wildcards: 16000 if needs_weights(wildcards.feature) else 4000,
        runtime=lambda wildcards: 360 if needs_weights(wildcards.feature) else 120,
        gpu=lambda wildcards: 1 if needs_weights(wildcards.feature) else 0,
    conda:
        lambda wildcards: "../../envs/clap.yaml" if uses_laion_clap(wildcards.feature) else "../../envs/core.yaml"
    shell:
        "{B2M} features {DATASET_ARGS} --stimuli {input.stimuli} --feature {wildcards.feature} "
        "--window {params.window} --stride {params.stride} {params.extractor} {params.captions} "
        "--out {output} 2> {log}"
