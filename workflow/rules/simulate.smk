# The demo's synthetic study (ds003720 layout + planted truth). The truth folder is made here and read
# by the tests only; no rule takes it as input.
if SIMULATE:
    SIM = config["simulate"]

    localrules:
        simulate,

    rule simulate:
        output:
            bids=directory(BIDS),
            stimuli=directory(STIMULI),
            corpus=directory(f"{SIM['out']}/corpus"),
            captions=DATASET.get("captions", f"{SIM['out']}/captions.csv"),
            atlas=f"{SIM['out']}/atlas/atlas.nii.gz",
            atlas_labels=f"{SIM['out']}/atlas/atlas.tsv",
            mask=f"{SIM['out']}/atlas/cortex_mask.nii.gz",
            truth=directory(f"{SIM['out']}/truth"),
        params:
            out=SIM["out"],
            options=cli_options(
                SIM,
                {"n_subjects": "--subjects", "n_training_runs": "--training-runs", "n_test_runs": "--test-runs",
                 "shape": "--shape", "snr": "--snr", "seed": "--seed"},
            ),
        log:
            f"{LOGS}/simulate.log",
        benchmark:
            f"{LOGS}/simulate.benchmark.tsv"
        resources:
            mem_mb=grows_with_attempt(2000),
            runtime=grows_with_attempt(30),
        conda:
            "../../envs/core.yaml"
        shell:
            "{B2M} simulate {params.out:q} {params.options} > {log:q} 2>&1"
