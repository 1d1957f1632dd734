# Decoding (fMRI → embedding) per subject × fold × feature: whole mask and ROI ensemble, scored by
# identification accuracy and embedding correlation with bootstrap intervals and permutation chance.
RIDGE = config.get("ridge", {})
DEC = config.get("decoding", {})
RIDGE_OPTIONS = cli_options(
    {**RIDGE, "outer_folds": config.get("outer_folds")},
    {"backend": "--backend", "alpha_min_exp": "--alpha-min-exp", "alpha_max_exp": "--alpha-max-exp",
     "n_alphas": "--n-alphas", "cv_folds": "--cv-folds", "seed": "--seed", "outer_folds": "--outer-folds",
     "n_targets_batch": "--n-targets-batch", "n_alphas_batch": "--n-alphas-batch"},
) + (" --y-in-cpu" if RIDGE.get("y_in_cpu") else "")


def window_inputs(wildcards, feature=None):
    return expand(f"{responses_dir(wildcards.subject, feature or wildcards.feature)}/{{name}}", name=WINDOW_OUTPUTS)


rule decode:
    input:
        responses=window_inputs,
        features=f"{RESULTS}/features/{{feature}}.parquet",
    output:
        scores=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/scores.parquet",
        predictions=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/predictions.parquet",
        alphas=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/alphas.npy",
        target_scale=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/decoding/target_scale.npy",
    params:
        responses=lambda wildcards: responses_dir(wildcards.subject, wildcards.feature),
        out=lambda wildcards, output: os.path.dirname(output.scores),
        options=RIDGE_OPTIONS + " " + cli_options(
            DEC, {"roi_k": "--roi-k", "n_permutations": "--n-permutations", "n_bootstrap": "--n-bootstrap"}
        ),
    log:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/decode.log",
    benchmark:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/decode.benchmark.tsv"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(16000),
        runtime=grows_with_attempt(240),
        gpu=1,
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} decode --responses {params.responses:q} --features {input.features:q} --out {params.out:q} "
        "--subject {wildcards.subject} --fold {wildcards.fold} --feature {wildcards.feature} "
        "{params.options} 2> {log:q}"
