# Decoding (fMRI → embedding) per subject × fold × feature, scored by identification accuracy.
DEC = config["decoding"]


rule decode:
    input:
        responses=lambda wildcards: expand(
            f"{responses_dir(wildcards.subject, wildcards.feature)}/{{name}}", name=WINDOW_OUTPUTS
        ),
        features=f"{RESULTS}/features/{{feature}}.parquet",
    output:
        scores=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/scores.parquet",
        predictions=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/predictions.parquet",
        alphas=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/alphas.npy",
    params:
        responses=lambda wildcards: responses_dir(wildcards.subject, wildcards.feature),
        out=lambda wildcards, output: os.path.dirname(output.scores),
        options=cli_options(
            DEC,
            {"backend": "--backend", "alpha_min_exp": "--alpha-min-exp", "alpha_max_exp": "--alpha-max-exp",
             "n_alphas": "--n-alphas", "cv_folds": "--cv-folds", "n_permutations": "--n-permutations",
             "seed": "--seed"},
        ),
    log:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/decode.log",
    benchmark:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/decode.benchmark.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} decode --responses {params.responses} --features {input.features} --out {params.out} "
        "--subject {wildcards.subject} --fold {wildcards.fold} --feature {wildcards.feature} "
        "{params.options} 2> {log}"
