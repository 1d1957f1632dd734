# Encoding (embedding → fMRI) per subject × fold × feature, and banded ridge over the `encoding.banded` spaces:
# voxelwise r, p, FDR q, noise ceiling, NIfTI maps of each in the subject's space.
ENC = config.get("encoding", {})
ENC_OPTIONS = cli_options(ENC, {"delays": "--delays", "n_permutations": "--n-permutations"})
BANDED = ENC.get("banded", [])
ENCODING_OUTPUTS = ["summary.parquet", "voxels.parquet", "alphas.npy"]


rule encode:
    input:
        responses=window_inputs,
        features=f"{RESULTS}/features/{{feature}}.parquet",
    output:
        summary=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/encoding/summary.parquet",
        voxels=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/encoding/voxels.parquet",
        alphas=f"{RESULTS}/{{subject}}/{{fold}}/{{feature}}/encoding/alphas.npy",
    params:
        responses=lambda wildcards: responses_dir(wildcards.subject, wildcards.feature),
        out=lambda wildcards, output: os.path.dirname(output.summary),
        options=RIDGE_OPTIONS + " " + ENC_OPTIONS,
    log:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/encode.log",
    benchmark:
        f"{LOGS}/{{subject}}/{{fold}}/{{feature}}/encode.benchmark.tsv"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(16000),
        runtime=grows_with_attempt(240),
        gpu=1,
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} encode --responses {params.responses:q} --features {input.features:q} --out {params.out:q} "
        "--subject {wildcards.subject} --fold {wildcards.fold} --feature {wildcards.feature} "
        "{params.options} 2> {log:q}"


rule encode_banded:
    input:
        responses=lambda wildcards: window_inputs(wildcards, BANDED[0]),
        features=expand(f"{RESULTS}/features/{{feature}}.parquet", feature=BANDED),
    output:
        summary=f"{RESULTS}/{{subject}}/{{fold}}/banded/encoding/summary.parquet",
        voxels=f"{RESULTS}/{{subject}}/{{fold}}/banded/encoding/voxels.parquet",
    params:
        responses=lambda wildcards: responses_dir(wildcards.subject, BANDED[0]),
        out=lambda wildcards, output: os.path.dirname(output.summary),
        spaces=lambda wildcards, input: quoted(f"{name}={path}" for name, path in zip(BANDED, input.features)),
        options=RIDGE_OPTIONS + " " + cli_options(ENC, {"n_iter": "--n-iter", "n_permutations": "--n-permutations"}),
    log:
        f"{LOGS}/{{subject}}/{{fold}}/banded/encode_banded.log",
    benchmark:
        f"{LOGS}/{{subject}}/{{fold}}/banded/encode_banded.benchmark.tsv"
    threads: 2
    resources:
        mem_mb=grows_with_attempt(32000),
        runtime=grows_with_attempt(720),
        gpu=1,
    conda:
        "../../envs/core.yaml"
    shell:
        "{B2M} encode-banded --responses {params.responses:q} --features {params.spaces} --out {params.out:q} "
        "--subject {wildcards.subject} --fold {wildcards.fold} {params.options} 2> {log:q}"
