# The demo's synthetic study (ds003720 layout + planted truth). The truth folder is made here and read
# by the tests only; no rule takes it as input.
if STUDY.simulated:

    localrules:
        simulate,

    checkpoint simulate:
        output:
            **simulated_outputs(),
        log:
            log_of("simulate"),
        benchmark:
            benchmark_of("simulate")
        conda:
            "../../envs/core.yaml"
        threads: 2
        resources:
            mem_mb=grows_with_attempt(2000),
        params:
            options=job_options("simulate"),
            out=output_folder("truth"),
        shell:
            JOBS["simulate"].shell
