# Encoding (embedding → fMRI) per subject × fold × feature, and banded ridge over the `encoding.banded` spaces:
# voxelwise r, p, FDR q, noise ceiling, NIfTI maps of each in the subject's space. encode runs on one thread, as
# decode (see decoding.smk). Where `folds` hold two cv-<k> folds or more, fold cv-all is encoded too: the same job
# fits and predicts each cv fold in turn (its options name them) and scores every held-out row together, so its
# clip-block null exchanges every stimulus of the study (no prediction is kept between jobs).


rule encode:
    input:
        unpack(window_inputs),
        unpack(positions_input),
        features=str(LAYOUT.features("{feature}")),
    output:
        **outputs_of(LAYOUT.encoding("{subject}", "{fold}", "{feature}"), "alphas"),
    log:
        log_of("{subject}", "{fold}", "{feature}", "encode"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "{feature}", "encode")
    wildcard_constraints:
        fold=encoded_fold_pattern(),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=grows_with_attempt(10000),
    params:
        options=job_options("encode"),
        responses=input_folder("train"),
        positions=positions_option,
        out=output_folder("summary"),
    shell:
        JOBS["encode"].shell


rule encode_banded:
    input:
        unpack(banded_inputs),
        unpack(positions_input),
        unpack(banded_features),
    output:
        **outputs_of(LAYOUT.banded("{subject}", "{fold}")),
    log:
        log_of("{subject}", "{fold}", "banded", "encode_banded"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "banded", "encode_banded")
    wildcard_constraints:
        fold=encoded_fold_pattern(),
    conda:
        "../../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(10000),
    params:
        options=job_options("encode_banded"),
        responses=input_folder("train"),
        positions=positions_option,
        out=output_folder("summary"),
        spaces=lambda wildcards, input: [f"{name}={input[name]}" for name in STUDY.banded],
    shell:
        JOBS["encode_banded"].shell
