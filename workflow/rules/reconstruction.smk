# Reconstruction: a corpus index per reconstructed feature space (shared by every subject and fold),
# retrieval of each test clip's nearest tracks (with the audio to listen to), and the evaluation of the
# reconstructions against the original stimuli with oracle and chance rows.
RECON = config.get("reconstruction", {})
RECON_FEATURES = {name: spec or {} for name, spec in RECON.get("features", {}).items()}
RECON_FOLDS = RECON.get("folds", FOLDS)
CORPUS = RECON.get("corpus", {})
GENERATION = RECON.get("generation", {})
# The generators' default hub repositories (b2m.reconstruct.generation), fetched by the local rule fetch_generator.
GENERATOR_MODELS = {"musicldm": "ucsd-reach/musicldm", "caption": "facebook/musicgen-small"}
GENERATOR_FLAGS = {"model": "--model", "steps": "--steps", "guidance_scale": "--guidance-scale",
                   "seconds": "--seconds", "batch_size": "--batch-size", "device": "--device"}


wildcard_constraints:
    generator="musicldm|caption",


def recon_space(feature):
    return RECON_FEATURES[feature].get("space", "standardised")


def generators_of(feature):
    return RECON_FEATURES[feature].get("generators", [])


def generator_repo(generator):
    return GENERATION.get(generator, {}).get("model", GENERATOR_MODELS[generator])


def corpus_source_args():
    words = [f"--source {shlex.quote(s.get('layout', 'folder') + ':' + s['path'])}" for s in CORPUS.get("sources", [])]
    fma = [s["tracks_csv"] for s in CORPUS.get("sources", []) if s.get("tracks_csv")]
    return " ".join(words + [f"--tracks-csv {shlex.quote(fma[0])}"] if fma else words)


def index_input(wildcards):
    inputs = {"sources": [s["path"] for s in CORPUS["sources"]]}
    if needs_weights(wildcards.feature):
        inputs["models"] = f"{MODELS}/fetched/{wildcards.feature}.json"
    return inputs


# Model spaces embed the corpus on a GPU where there is one: `index_corpus_gpu`, the others `index_corpus`.
for on_gpu in (False, True):

    rule:
        name:
            "index_corpus_gpu" if on_gpu else "index_corpus"
        wildcard_constraints:
            feature=features_matching(lambda f: needs_weights(f) == on_gpu),
        input:
            unpack(index_input),
        output:
            vectors=f"{RESULTS}/corpus/{{feature}}/vectors.npy",
            tracks=f"{RESULTS}/corpus/{{feature}}/tracks.parquet",
            skipped=f"{RESULTS}/corpus/{{feature}}/skipped.tsv",
        params:
            window=lambda wildcards: FEATURES[wildcards.feature]["window_s"],
            stride=lambda wildcards: FEATURES[wildcards.feature]["stride_s"],
            extractor=lambda wildcards: extractor_args(wildcards.feature),
            sources=corpus_source_args(),
            options=cli_options(CORPUS, {"seconds": "--seconds", "offset_s": "--offset",
                                         "chunk_tracks": "--chunk-tracks"}),
            out=lambda wildcards, output: os.path.dirname(output.vectors),
        log:
            f"{LOGS}/corpus/{{feature}}.log",
        benchmark:
            f"{LOGS}/corpus/{{feature}}.benchmark.tsv"
        resources:
            mem_mb=grows_with_attempt(16000 if on_gpu else 4000),
            runtime=grows_with_attempt(2880 if on_gpu else 240),
            gpu=int(on_gpu),
        conda:
            lambda wildcards: "../../envs/clap.yaml" if uses_laion_clap(wildcards.feature) else "../../envs/core.yaml"
        shell:
            "{B2M} index --feature {wildcards.feature} --window {params.window} --stride {params.stride} "
            "{params.extractor} {params.sources} {params.options} --out {params.out:q} 2> {log:q}"


def decoding_outputs(wildcards):
    folder = f"{RESULTS}/{wildcards.subject}/{wildcards.fold}/{wildcards.feature}/decoding"
    return {"predictions": f"{folder}/predictions.parquet", "target_scale": f"{folder}/target_scale.npy",
            "vectors": f"{RESULTS}/corpus/{wildcards.feature}/vectors.npy",
            "tracks": f"{RESULTS}/corpus/{wildcards.feature}/tracks.parquet"}


rule retrieve:
    input:
        unpack(decoding_outputs),
        stimuli=STIMULI,
    output:
        neighbours=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/retrieval/neighbours.parquet",
        audio=directory(f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/retrieval/audio"),
    params:
        index=lambda wildcards, input: os.path.dirname(input.vectors),
        out=lambda wildcards, output: os.path.dirname(output.neighbours),
        space=lambda wildcards: recon_space(wildcards.feature),
        options=cli_options(RECON, {"top_k": "--top-k"}) + " " + cli_options(
            {**RECON.get("audio", {}), **CORPUS},
            {"model": "--audio-model", "top": "--audio-top", "seconds": "--seconds", "offset_s": "--offset"},
        ),
    log:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/retrieve.log",
    benchmark:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/retrieve.benchmark.tsv"
    resources:
        mem_mb=grows_with_attempt(8000),
        runtime=grows_with_attempt(60),
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} retrieve {DATASET_ARGS} --predictions {input.predictions:q} --target-scale {input.target_scale:q} "
        "--index {params.index:q} --space {params.space} --stimuli {input.stimuli:q} --audio {output.audio:q} "
        "{params.options} --out {params.out:q} 2> {log:q}"


localrules:
    fetch_generator,


rule fetch_generator:
    output:
        f"{MODELS}/fetched/generator-{{generator}}.json",
    params:
        repo=lambda wildcards: generator_repo(wildcards.generator),
    log:
        f"{LOGS}/fetch_models/generator-{{generator}}.log",
    benchmark:
        f"{LOGS}/fetch_models/generator-{{generator}}.benchmark.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} fetch-models --repo {params.repo:q} --cache {MODELS:q} --marker {output:q} 2> {log:q}"


def generate_input(wildcards):
    inputs = {**decoding_outputs(wildcards), "models": f"{MODELS}/fetched/generator-{wildcards.generator}.json"}
    if wildcards.generator == "caption":
        captions_feature = GENERATION.get("caption", {}).get("captions_feature", "clap-text")
        inputs["caption_features"] = f"{RESULTS}/features/{captions_feature}.parquet"
        inputs["captions"] = DATASET["captions"]
    return inputs


rule generate:
    input:
        unpack(generate_input),
    output:
        directory(f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/generation/{{generator}}"),
    params:
        options=lambda wildcards: cli_options(GENERATION.get(wildcards.generator, {}), GENERATOR_FLAGS) + " " +
        cli_options(GENERATION, {"models": "--models", "n_samples": "--n-samples", "seed": "--seed"}),
        captions=lambda wildcards, input: (f"--caption-features {quoted([input.caption_features])} "
                                           f"--captions {quoted([input.captions])}"
                                           if wildcards.generator == "caption" else ""),
    log:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/generate-{{generator}}.log",
    benchmark:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/generate-{{generator}}.benchmark.tsv"
    resources:
        mem_mb=grows_with_attempt(32000),
        runtime=grows_with_attempt(720),
        gpu=1,
    conda:
        "../../envs/generation.yaml"
    shell:
        "{B2M} generate --backend {wildcards.generator} --predictions {input.predictions:q} "
        "--target-scale {input.target_scale:q} --cache {MODELS:q} {params.options} {params.captions} "
        "--out {output:q} 2> {log:q}"


def evaluate_input(wildcards):
    folder = f"{RESULTS}/{wildcards.subject}/{wildcards.fold}/{wildcards.feature}"
    inputs = {**decoding_outputs(wildcards), "neighbours": f"{folder}/retrieval/neighbours.parquet",
              "generated": [f"{folder}/generation/{g}" for g in generators_of(wildcards.feature)]}
    if evaluation_needs_model(wildcards.feature):
        inputs["models"] = f"{MODELS}/fetched/{wildcards.feature}.json"
    return inputs


def zero_shot(feature):
    """CLAP spaces score class agreement on the config's label sets by zero-shot prompts too."""
    return RECON.get("label_sets", {}) if extractor_of(feature) == "clap-audio" else {}


def evaluation_needs_model(feature):
    """The evaluation loads the feature's model to embed generated audio or zero-shot prompts."""
    return bool(generators_of(feature) or zero_shot(feature)) and needs_weights(feature)


# Evaluations that embed generated audio or zero-shot prompts with a model run on a GPU where there is one.
for on_gpu in (False, True):

    rule:
        name:
            "evaluate_reconstruction_gpu" if on_gpu else "evaluate_reconstruction"
        wildcard_constraints:
            feature=features_matching(lambda f: f in RECON_FEATURES and evaluation_needs_model(f) == on_gpu),
        input:
            unpack(evaluate_input),
        output:
            f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/reconstruction/evaluation.parquet",
        params:
            index=lambda wildcards, input: os.path.dirname(input.vectors),
            space=lambda wildcards: recon_space(wildcards.feature),
            window=lambda wildcards: FEATURES[wildcards.feature]["window_s"],
            stride=lambda wildcards: FEATURES[wildcards.feature]["stride_s"],
            extractor=lambda wildcards: extractor_args(wildcards.feature),
            options=cli_options({**RECON, "seed": RIDGE.get("seed")}, {"n_chance": "--n-chance", "seed": "--seed"}),
            generated=lambda wildcards, input: f"--generated {quoted(input.generated)}" if input.generated else "",
            label_sets=lambda wildcards: " ".join(f"--label-set {shlex.quote(name + '=' + ','.join(words))}"
                                                  for name, words in zero_shot(wildcards.feature).items()),
        log:
            f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/evaluate_reconstruction.log",
        benchmark:
            f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/evaluate_reconstruction.benchmark.tsv"
        resources:
            mem_mb=grows_with_attempt(16000 if on_gpu else 8000),
            runtime=grows_with_attempt(240 if on_gpu else 60),
            gpu=int(on_gpu),
        conda:
            lambda wildcards: "../../envs/clap.yaml" if uses_laion_clap(wildcards.feature) else "../../envs/core.yaml"
        shell:
            "{B2M} evaluate-reconstruction --predictions {input.predictions:q} --target-scale {input.target_scale:q} "
            "--index {params.index:q} --space {params.space} --retrieval {input.neighbours:q} {params.generated} "
            "{params.label_sets} {params.options} --window {params.window} --stride {params.stride} "
            "{params.extractor} --subject {wildcards.subject} --fold {wildcards.fold} "
            "--feature {wildcards.feature} --out {output:q} > {log:q} 2>&1"
