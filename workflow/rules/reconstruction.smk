# Reconstruction: a corpus index per reconstructed feature space (shared by every subject and fold), the
# corpus tracks that duplicate a test clip's audio (left out of its retrieval and chance draws like the clip),
# retrieval of each test clip's nearest tracks (with the audio to listen to), and the evaluation of the
# reconstructions against the original stimuli with oracle and chance rows.


# The corpus is listed in chunks (a track's chunk is a hash of its id, so a changed, added or removed track relists
# its own chunk), each chunk's tracks are the inputs of its listing job alone, and every space's index is made from
# the listings in chunk jobs, then gathered. Model spaces embed on a GPU where there is one: `index_corpus_chunk_gpu`,
# the others `index_corpus_chunk`.
rule list_corpus_chunk:
    input:
        tracks=corpus_chunk_audio,
    output:
        str(LAYOUT.corpus_listing("{chunk}")),
    log:
        log_of("corpus", "listing", "chunk-{chunk}"),
    benchmark:
        benchmark_of("corpus", "listing", "chunk-{chunk}")
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=grows_with_attempt(1000),
    params:
        options=job_options("list_corpus_chunk"),
    shell:
        JOBS["list_corpus_chunk"].shell


for on_gpu in (False, True):

    rule:
        name:
            twin_of("index_corpus_chunk", on_gpu)
        input:
            unpack(corpus_chunk_input),
        output:
            **outputs_of(LAYOUT.corpus("{feature}").chunk("{chunk}")),
        log:
            log_of("corpus", "{feature}", "chunk-{chunk}"),
        benchmark:
            benchmark_of("corpus", "{feature}", "chunk-{chunk}")
        wildcard_constraints:
            feature=on_gpu_pattern("index_corpus_chunk", on_gpu),
        conda:
            conda_env
        resources:
            mem_mb=grows_with_attempt(16000 if on_gpu else 4000),
        params:
            options=job_options("index_corpus_chunk"),
            out=output_folder("vectors"),
        shell:
            JOBS["index_corpus_chunk"].shell


rule index_corpus:
    input:
        unpack(index_input),
    output:
        **outputs_of(LAYOUT.corpus("{feature}")),
    log:
        log_of("corpus", "{feature}", "gather"),
    benchmark:
        benchmark_of("corpus", "{feature}", "gather")
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=grows_with_attempt(4000),
    params:
        options=job_options("index_corpus"),
        out=output_folder("vectors"),
    shell:
        JOBS["index_corpus"].shell


# Corpus tracks that hold a stimulus clip's audio (audio, not a feature space): each chunk's tracks fingerprinted in
# a job of its own, then matched against every clip's excerpt (the test clips are the test fold's queries, training
# clips those of the cv and label folds).
rule fingerprint_corpus_chunk:
    input:
        tracks=str(LAYOUT.corpus_listing("{chunk}")),
    output:
        str(LAYOUT.duplicates().chunk("{chunk}")),
    log:
        log_of("corpus", "fingerprints", "chunk-{chunk}"),
    benchmark:
        benchmark_of("corpus", "fingerprints", "chunk-{chunk}")
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=grows_with_attempt(2000),
    params:
        options=job_options("fingerprint_corpus_chunk"),
    shell:
        JOBS["fingerprint_corpus_chunk"].shell


rule find_duplicates:
    input:
        fingerprints=[str(LAYOUT.duplicates().chunk(n)) for n in STUDY.corpus_chunks()],
        stimuli=STUDY.stimuli_folder(),
        bids=dataset_input(),
        clips=lambda wildcards: stimulus_files(),
    output:
        table=reported(LAYOUT.duplicates().table, "duplicates", "Reconstruction"),
    log:
        log_of("corpus", "find_duplicates"),
    benchmark:
        benchmark_of("corpus", "find_duplicates")
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=grows_with_attempt(4000),
    params:
        options=job_options("find_duplicates"),
    shell:
        JOBS["find_duplicates"].shell


rule retrieve:
    input:
        unpack(decoding_outputs),
        stimuli=STUDY.stimuli_folder(),
        bids=dataset_input(),
        clips=lambda wildcards: stimulus_files("test"),
        duplicates=str(LAYOUT.duplicates().table),
    output:
        **outputs_of(LAYOUT.retrieval("{subject}", "{fold}", "{feature}")),
    log:
        log_of("{subject}", "{fold}", "{feature}", "retrieve"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "{feature}", "retrieve")
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=grows_with_attempt(8000),
    params:
        options=job_options("retrieve"),
        index=input_folder("vectors"),
        out=output_folder("neighbours"),
    shell:
        JOBS["retrieve"].shell


localrules:
    fetch_generator,


rule fetch_generator:
    output:
        str(LAYOUT.fetched("generator-{generator}")),
    log:
        log_of("fetch_models", "generator-{generator}"),
    benchmark:
        benchmark_of("fetch_models", "generator-{generator}")
    conda:
        "../../envs/core.yaml"
    params:
        options=job_options("fetch_generator"),
    shell:
        JOBS["fetch_generator"].shell


rule generate:
    input:
        unpack(generate_input),
    output:
        directory(str(LAYOUT.generation("{subject}", "{fold}", "{feature}", "{generator}").path)),
    log:
        log_of("{subject}", "{fold}", "{feature}", "generate-{generator}"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "{feature}", "generate-{generator}")
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=grows_with_attempt(16000),
    params:
        options=job_options("generate"),
        captions=lambda wildcards, input: (
            ["--caption-features", input.caption_features, "--captions", input.captions]
            if "captions" in input.keys()
            else []
        ),
    shell:
        JOBS["generate"].shell


# Brain-scored reconstruction (`reconstruction.rerank`, `reconstruction.generation.select: brain`): the feature's
# encoding model, fit on the fold's training rows, scores each test clip's candidates (its top-k retrieved tracks,
# its generated samples) by its prediction of the clip's measured response; the best are methods of their own. Model
# spaces embed the candidates on a GPU where there is one: `brain_score_gpu`.
for on_gpu in (False, True):

    rule:
        name:
            twin_of("brain_score", on_gpu)
        input:
            unpack(brain_score_input),
            stimuli=STUDY.stimuli_folder(),
            bids=dataset_input(),
            clips=lambda wildcards: stimulus_files("test"),
        output:
            directory(str(LAYOUT.brain_score("{subject}", "{fold}", "{feature}").path)),
        log:
            log_of("{subject}", "{fold}", "{feature}", "brain_score"),
        benchmark:
            benchmark_of("{subject}", "{fold}", "{feature}", "brain_score")
        wildcard_constraints:
            feature=on_gpu_pattern("brain_score", on_gpu),
        conda:
            conda_env
        resources:
            mem_mb=grows_with_attempt(16000 if on_gpu else 8000),
        params:
            options=job_options("brain_score"),
            responses=input_folder("train"),
            retrieval=lambda wildcards, input: ["--retrieval", *input.retrieval] if input.retrieval else [],
            generated=lambda wildcards, input: ["--generated", *input.generated] if input.generated else [],
        shell:
            JOBS["brain_score"].shell


# Evaluations that embed generated audio or zero-shot prompts with a model run on a GPU where there is one.
for on_gpu in (False, True):

    rule:
        name:
            twin_of("evaluate_reconstruction", on_gpu)
        input:
            unpack(evaluate_input),
        output:
            str(LAYOUT.evaluation("{subject}", "{fold}", "{feature}")),
        log:
            log_of("{subject}", "{fold}", "{feature}", "evaluate_reconstruction"),
        benchmark:
            benchmark_of("{subject}", "{fold}", "{feature}", "evaluate_reconstruction")
        wildcard_constraints:
            feature=on_gpu_pattern("evaluate_reconstruction", on_gpu),
        conda:
            conda_env
        resources:
            mem_mb=grows_with_attempt(16000 if on_gpu else 8000),
        params:
            options=job_options("evaluate_reconstruction"),
            index=input_folder("vectors"),
            generated=lambda wildcards, input: ["--generated", *input.generated] if input.generated else [],
            brain=lambda wildcards, input: ["--brain", *input.brain] if input.brain else [],
        shell:
            JOBS["evaluate_reconstruction"].shell
