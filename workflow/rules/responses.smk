# fMRI responses: cleaned scans per subject (streamed run by run, from the raw BOLD or fMRIPrep's preprocessed
# BOLD), then averaged over each feature's lagged windows. With dataset.input = authors-arrays, the authors'
# preprocessed arrays replace both.


if "clean_bold" in STUDY.kind.response_rules:

    rule clean_bold:
        input:
            unpack(cleaning_inputs),
        output:
            **outputs_of(LAYOUT.scans("{subject}")),
        log:
            log_of("{subject}", "clean_bold"),
        benchmark:
            benchmark_of("{subject}", "clean_bold")
        conda:
            "../../envs/core.yaml"
        resources:
            mem_mb=grows_with_attempt(3000),
        params:
            options=job_options("clean_bold"),
            out=output_folder("scans"),
        shell:
            JOBS["clean_bold"].shell

    rule window_responses:
        input:
            **LAYOUT.scans("{subject}").outputs(),
            bids=dataset_input(),
            runs=subject_runs,
        output:
            **outputs_of(LAYOUT.windows("{subject}", "{window}", "{stride}"), *REPEATS),
        log:
            log_of("{subject}", "window_responses_{window}s_{stride}s"),
        benchmark:
            benchmark_of("{subject}", "window_responses_{window}s_{stride}s")
        conda:
            "../../envs/core.yaml"
        resources:
            mem_mb=grows_with_attempt(2000),
        params:
            options=job_options("window_responses"),
            clean=input_folder("scans"),
            out=output_folder("train"),
        shell:
            JOBS["window_responses"].shell

else:

    rule authors_responses:
        input:
            unpack(authors_arrays),
            runs=subject_runs,
            bids=dataset_input(),
        output:
            **outputs_of(LAYOUT.windows("{subject}", "{window}", "{stride}")),
        log:
            log_of("{subject}", "authors_responses_{window}s_{stride}s"),
        benchmark:
            benchmark_of("{subject}", "authors_responses_{window}s_{stride}s")
        conda:
            "../../envs/core.yaml"
        resources:
            mem_mb=grows_with_attempt(8000),
        params:
            options=job_options("authors_responses"),
            out=output_folder("train"),
        shell:
            JOBS["authors_responses"].shell
