# Decoding (fMRI → embedding) per subject × fold × feature: whole mask and ROI ensemble, scored by
# identification accuracy and embedding correlation with bootstrap intervals and permutation chance.


rule decode:
    input:
        unpack(window_inputs),
        unpack(positions_input),
        features=str(LAYOUT.features("{feature}")),
    output:
        **outputs_of(LAYOUT.decoding("{subject}", "{fold}", "{feature}")),
    log:
        log_of("{subject}", "{fold}", "{feature}", "decode"),
    benchmark:
        benchmark_of("{subject}", "{fold}", "{feature}", "decode")
    conda:
        "../../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(10000),
    params:
        options=job_options("decode"),
        responses=input_folder("train"),
        positions=positions_option,
        out=output_folder("scores"),
    shell:
        "python -m b2m decode --options {params.options:q} --responses {params.responses:q} "
        "--features {input.features:q} {params.positions:q} --out {params.out:q} --subject {wildcards.subject} "
        "--fold {wildcards.fold} --feature {wildcards.feature} 2> {log:q}"
