# Decoding (fMRI → embedding) per subject × fold × feature: whole mask, ROI ensemble and ROI-banded ridge, scored
# by identification accuracy and embedding correlation with bootstrap intervals and permutation chance. The
# decoders' stimulus sides depend on the responses alone: factorise makes them once per subject × fold × window
# for every feature space of that window (kept: decoding.keep_factors). factorise runs on two threads: its
# eigendecompositions are most of decoding's arithmetic, and its window's decoders wait for it. decode runs on
# one: its jobs are many and independent, and two one-thread jobs use two cores better than one two-thread job
# (a second BLAS thread speeds a demo-sized fit 1.3 times; raise them with --set-threads for large jobs).


rule factorise:
    input:
        unpack(factorised_responses),
        unpack(positions_input),
    output:
        factors=factors_output(),
    log:
        log_of("{subject}", "{fold}", "factorise_{window}s_{stride}s"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "factorise_{window}s_{stride}s")
    conda:
        "../../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(10000),
    params:
        options=job_options("factorise"),
        responses=input_folder("train"),
        positions=positions_option,
        out=output_folder("factors"),
    shell:
        JOBS["factorise"].shell


rule decode:
    input:
        unpack(window_inputs),
        factors=factors_input,
        features=str(LAYOUT.features("{feature}")),
    output:
        **decoding_files(),
    log:
        log_of("{subject}", "{fold}", "{feature}", "decode"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "{feature}", "decode")
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=grows_with_attempt(10000),
    params:
        options=job_options("decode"),
        responses=input_folder("train"),
        out=output_folder("scores"),
    shell:
        JOBS["decode"].shell


# The pooled decoder over subjects (decoding.models: pooled-aligned): every subject's responses of a fold aligned
# to a reference space and one ridge decoder on them all, per fold × feature. A job of its own, so the
# per-subject decoders above neither wait for it nor rerun when its options change. It holds every subject's
# responses (about 13 GB for ds003720's five subjects at 60,000 voxels) and a centred copy of one subject's at a
# time: some 18 GB (estimated, not measured).
rule decode_pooled:
    input:
        unpack(pooled_inputs),
    output:
        **outputs_of(LAYOUT.pooled("{fold}", "{feature}")),
    log:
        log_of("pooled", "{fold}", "{feature}", "decode_pooled"),
    benchmark:
        benchmark_of("pooled", "{fold}", "{feature}", "decode_pooled")
    conda:
        "../../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(24000),
    params:
        options=job_options("decode_pooled"),
        responses=pooled_responses,
        out=output_folder("scores"),
    shell:
        JOBS["decode_pooled"].shell


# A new subject from minutes of its data (decoding.pooled.kshot_minutes): per subject × fold × feature, the pooled
# decoder and its shared space fitted on every other subject, the subject aligned to it from the first m minutes
# of its training runs (0: anatomically), scored on its test rows beside its own whole-mask decoder (decode's
# scores). It holds every subject's responses, as decode_pooled does.
rule decode_kshot:
    input:
        unpack(kshot_inputs),
    output:
        **outputs_of(LAYOUT.kshot("{subject}", "{fold}", "{feature}")),
    log:
        log_of("{subject}", "{fold}", "{feature}", "decode_kshot"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "{feature}", "decode_kshot")
    conda:
        "../../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(24000),
    params:
        options=job_options("decode_kshot"),
        responses=pooled_responses,
        out=output_folder("scores"),
    shell:
        JOBS["decode_kshot"].shell


# All out-of-fold predictions together (fold cv-all), where `folds` hold two cv-<k> folds or more: each subject ×
# feature's cv folds' clip predictions brought back to the raw target space, standardised by one mean and sd of
# the true rows and scored among every stimulus (identification; label accuracy in a label space).
rule pool_folds:
    input:
        unpack(pooled_fold_inputs),
    output:
        **outputs_of(LAYOUT.pooled_folds("{subject}", "{feature}")),
    log:
        log_of("{subject}", CV_ALL, "{feature}", "pool_folds"),
    benchmark:
        benchmark_of("{subject}", CV_ALL, "{feature}", "pool_folds")
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=grows_with_attempt(4000),
    params:
        options=job_options("pool_folds"),
        folds=pooled_fold_folders,
        out=output_folder("scores"),
    shell:
        JOBS["pool_folds"].shell
