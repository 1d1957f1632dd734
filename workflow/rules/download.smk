# The real study's download (dataset.download.enabled): a local rule, so on a cluster it runs on the login
# node, the one with internet. Only the config's subjects are fetched; adding one reruns it for the new files.
# With preprocessed input (fMRIPrep, the authors' arrays) only the events and sidecars are fetched.
if DOWNLOAD.get("enabled"):

    localrules:
        download_dataset,

    rule download_dataset:
        output:
            f"{BIDS}/.b2m-download.json",
        params:
            subjects=SUBJECTS,
            options=cli_options(DOWNLOAD, {"accession": "--dataset", "url": "--url"})
            + (" --metadata-only" if DATASET["input"] != "bids" else ""),
        log:
            f"{LOGS}/download_dataset.log",
        benchmark:
            f"{LOGS}/download_dataset.benchmark.tsv"
        conda:
            "../../envs/core.yaml"
        shell:
            "{B2M} download --out {BIDS:q} --subjects {params.subjects:q} {params.options} --marker {output:q} "
            "2> {log:q}"
