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
    benchmark:
        f"{LOGS}/fetch_models/{{feature}}.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} fetch-models --feature {wildcards.feature} {params.extractor} --marker {output:q} 2> {log:q}"


def features_input(wildcards):
    inputs = {"bids": BIDS_INPUT, "stimuli": STIMULI}
    if needs_weights(wildcards.feature):
        inputs["models"] = f"{MODELS}/fetched/{wildcards.feature}.json"
    if extractor_of(wildcards.feature) == "clap-text":
        inputs["captions"] = DATASET["captions"]
    return inputs


# Model features (CLAP, w2v-BERT, MERT) embed on a GPU where there is one: `features_gpu`, the others `features`.
for on_gpu in (False, True):

    rule:
        name:
            "features_gpu" if on_gpu else "features"
        wildcard_constraints:
            feature=features_matching(lambda f: needs_weights(f) == on_gpu),
        input:
            unpack(features_input),
        output:
            f"{RESULTS}/features/{{feature}}.parquet",
        params:
            window=lambda wildcards: FEATURES[wildcards.feature]["window_s"],
            stride=lambda wildcards: FEATURES[wildcards.feature]["stride_s"],
            extractor=lambda wildcards: extractor_args(wildcards.feature),
            captions=lambda wildcards, input: (f"--captions {quoted([input.captions])}" if "captions" in input.keys()
                                               else ""),
        log:
            f"{LOGS}/features/{{feature}}.log",
        benchmark:
            f"{LOGS}/features/{{feature}}.benchmark.tsv"
        resources:
            mem_mb=grows_with_attempt(16000 if on_gpu else 4000),
            runtime=grows_with_attempt(360 if on_gpu else 120),
            gpu=int(on_gpu),
        conda:
            lambda wildcards: "../../envs/clap.yaml" if uses_laion_clap(wildcards.feature) else "../../envs/core.yaml"
        shell:
            "{B2M} features {DATASET_ARGS} --stimuli {input.stimuli:q} --feature {wildcards.feature} "
            "--window {params.window} --stride {params.stride} {params.extractor} {params.captions} "
            "--out {output:q} 2> {log:q}"
