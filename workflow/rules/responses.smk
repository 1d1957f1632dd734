# fMRI responses: cleaned scans per subject (streamed run by run, from the raw BOLD or fMRIPrep's preprocessed
# BOLD), then averaged over each feature's lagged windows. With dataset.input = authors-arrays, the authors'
# preprocessed arrays replace both.
RESP = config["responses"]
WINDOW_OUTPUTS = ["train.npy", "train_rows.parquet", "test.npy", "test_rows.parquet"]


def subject_responses(subject):
    """The responses section with `{subject}` in the mask and atlas paths filled in (per-subject files)."""
    return {key: value.replace("{subject}", subject) if key in ("mask", "atlas") and value else value
            for key, value in RESP.items()}


FMRIPREP = DATASET.get("fmriprep", {})
if DATASET["input"] == "fmriprep" and not FMRIPREP:
    raise ValueError("config: dataset.input is fmriprep but dataset.fmriprep.root is not set; name fMRIPrep's "
                     "output folder there")
FMRIPREP_ARGS = (f"--fmriprep {shlex.quote(FMRIPREP['root'])} --space {shlex.quote(FMRIPREP.get('space', 'T1w'))}"
                 if DATASET["input"] == "fmriprep" else "")


def mask_and_atlas(wildcards):
    files = {"bids": BIDS_INPUT}
    if FMRIPREP_ARGS:
        files["fmriprep"] = FMRIPREP["root"]
    resp = subject_responses(wildcards.subject)
    if resp["mask"] != "compute":
        files["mask"] = resp["mask"]
    if resp.get("atlas"):
        files["atlas"] = resp["atlas"]
    return files


if DATASET["input"] in ("bids", "fmriprep"):

    rule clean_bold:
        input:
            unpack(mask_and_atlas),
        output:
            scans=f"{RESULTS}/{{subject}}/responses/scans.npy",
            table=f"{RESULTS}/{{subject}}/responses/scans.parquet",
            voxels=f"{RESULTS}/{{subject}}/responses/voxels.parquet",
            mask=f"{RESULTS}/{{subject}}/responses/mask.nii.gz",
        params:
            out=lambda wildcards, output: os.path.dirname(output.scans),
            options=lambda wildcards: cli_options(
                subject_responses(wildcards.subject),
                {"mask": "--mask", "atlas": "--atlas", "drift": "--drift", "drift_window_s": "--drift-window",
                 "polynomial_order": "--polynomial-order"},
            ),
        log:
            f"{LOGS}/{{subject}}/clean_bold.log",
        benchmark:
            f"{LOGS}/{{subject}}/clean_bold.benchmark.tsv"
        resources:
            mem_mb=grows_with_attempt(4000),
            runtime=grows_with_attempt(120),
        conda:
            "../../envs/core.yaml"
        shell:
            "{B2M} clean-bold {DATASET_ARGS} {FMRIPREP_ARGS} --subject {wildcards.subject} --out {params.out:q} "
            "{params.options} 2> {log:q}"

    rule window_responses:
        input:
            bids=BIDS_INPUT,
            scans=rules.clean_bold.output.scans,
            table=rules.clean_bold.output.table,
        output:
            expand(f"{RESULTS}/{{{{subject}}}}/responses/window-{{{{window}}}}s-stride-{{{{stride}}}}s/{{name}}",
                   name=WINDOW_OUTPUTS),
        params:
            clean=lambda wildcards, input: os.path.dirname(input.scans),
            out=lambda wildcards, output: os.path.dirname(output[0]),
        log:
            f"{LOGS}/{{subject}}/window_responses_{{window}}s_{{stride}}s.log",
        benchmark:
            f"{LOGS}/{{subject}}/window_responses_{{window}}s_{{stride}}s.benchmark.tsv"
        resources:
            mem_mb=grows_with_attempt(4000),
            runtime=grows_with_attempt(30),
        conda:
            "../../envs/core.yaml"
        shell:
            "{B2M} window-responses {DATASET_ARGS} --subject {wildcards.subject} --clean {params.clean:q} "
            "--out {params.out:q} --window {wildcards.window} --stride {wildcards.stride} "
            "--lag {RESP[lag_s]} 2> {log:q}"

else:

    rule authors_responses:
        input:
            bids=BIDS_INPUT,
            training=f"{DATASET['authors_arrays']}/{{subject}}_Resp_Training.npy",
            test=f"{DATASET['authors_arrays']}/{{subject}}_Resp_Test_Mean.npy",
        output:
            expand(f"{RESULTS}/{{{{subject}}}}/responses/window-{{{{window}}}}s-stride-{{{{stride}}}}s/{{name}}",
                   name=WINDOW_OUTPUTS),
        params:
            out=lambda wildcards, output: os.path.dirname(output[0]),
        log:
            f"{LOGS}/{{subject}}/authors_responses_{{window}}s_{{stride}}s.log",
        benchmark:
            f"{LOGS}/{{subject}}/authors_responses_{{window}}s_{{stride}}s.benchmark.tsv"
        resources:
            mem_mb=grows_with_attempt(8000),
            runtime=grows_with_attempt(30),
        conda:
            "../../envs/core.yaml"
        shell:
            "{B2M} authors-arrays {DATASET_ARGS} --subject {wildcards.subject} --training {input.training:q} "
            "--test {input.test:q} --out {params.out:q} --window {wildcards.window} --stride {wildcards.stride} "
            "--lag {RESP[lag_s]} 2> {log:q}"
