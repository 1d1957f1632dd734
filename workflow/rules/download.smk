# The real study's download (dataset.download.enabled): a local rule, so on a cluster it runs on the login
# node, the one with internet. Only the config's subjects are fetched; adding one reruns it for the new files.
# With preprocessed input (fMRIPrep, the authors' arrays) only the events and sidecars are fetched.
if STUDY.downloaded:

    localrules:
        download_dataset,

    checkpoint download_dataset:
        output:
            dataset_input(),
        log:
            log_of("download_dataset"),
        benchmark:
            benchmark_of("download_dataset")
        conda:
            "../../envs/core.yaml"
        params:
            options=job_options("download_dataset"),
            out=output_folder(0),
        shell:
            JOBS["download_dataset"].shell
