# The figures of `snakemake --report`: identification accuracy beside the paper's Table 2, encoding maps, a voxel
# scatter of two spaces (the paper's Figure 6), an ROI table and variance partitioning; and the listening page:
# each test clip's original beside its retrieved tracks and generated samples, for the `reconstruction.listening`
# subjects and spaces (default: all), on one fold (`test` when reconstructed); the listening test of those
# reconstructions (`reconstruction.listening_test.enabled`) and, once answer files lie in the folder
# `reconstruction.listening_test.answers` names, their scores.
localrules:
    listening_page,
    listening_test,
    report_figures,
    report_kshot,
    score_listening,


rule report_figures:
    input:
        unpack(figure_inputs),
    output:
        **figure_outputs(),
    log:
        log_of("report_figures"),
    benchmark:
        benchmark_of("report_figures")
    conda:
        "../../envs/core.yaml"
    params:
        options=job_options("report_figures"),
        out=output_folder("identification"),
        labels=lambda wildcards, input: ["--atlas-labels", input.labels[0]] if input.labels else [],
        encoding=keyed("encoding", figure_keys()["encoding"]),
        scans=keyed("positions", figure_keys()["scans"], folder=True),
        rois=keyed("rois", figure_keys()["rois"]),
    shell:
        JOBS["report_figures"].shell


# The k-shot curves (decoding.pooled.kshot_minutes): each subject left out of the pool, its identification
# against the minutes of its data it was aligned from, its zero-shot and full-data ends marked.
rule report_kshot:
    input:
        scores=str(LAYOUT.summary("kshot")),
    output:
        reported(LAYOUT.figures().kshot, "figure_kshot", "Decoding"),
    log:
        log_of("report_kshot"),
    benchmark:
        benchmark_of("report_kshot")
    conda:
        "../../envs/core.yaml"
    shell:
        JOBS["report_kshot"].shell


rule listening_page:
    input:
        unpack(listening_inputs),
    output:
        reported(LAYOUT.listening_page(), "listening", "Listening"),
    log:
        log_of("listening_page"),
    benchmark:
        benchmark_of("listening_page")
    conda:
        "../../envs/core.yaml"
    threads: 2
    params:
        options=job_options("listening_page"),
        audio=keyed("audio", listening_keys()["audio"]),
        generated=keyed("generated", listening_keys()["generated"]),
        brain=flagged("--brain", keyed("brain", listening_keys()["brain"])),
        predictions=keyed("predictions", listening_keys()["predictions"]),
    shell:
        JOBS["listening_page"].shell


rule listening_test:
    input:
        unpack(listening_audio),
        unpack(foil_label_inputs),
        duplicates=str(LAYOUT.duplicates().table),
    output:
        page=str(LAYOUT.listening_test().page),
        key=str(LAYOUT.listening_test().key),
    log:
        log_of("listening_test"),
    benchmark:
        benchmark_of("listening_test")
    conda:
        "../../envs/core.yaml"
    threads: 2
    params:
        options=job_options("listening_test"),
        audio=keyed("audio", listening_keys()["audio"]),
        generated=keyed("generated", listening_keys()["generated"]),
        brain=flagged("--brain", keyed("brain", listening_keys()["brain"])),
    shell:
        JOBS["listening_test"].shell


rule score_listening:
    input:
        key=str(LAYOUT.listening_test().key),
        answers=STUDY.answer_files(),
    output:
        table=str(LAYOUT.listening_test().scores),
        html=reported(LAYOUT.listening_test().scores_html, "listening_test_scores", "Listening"),
    log:
        log_of("score_listening"),
    benchmark:
        benchmark_of("score_listening")
    conda:
        "../../envs/core.yaml"
    shell:
        JOBS["score_listening"].shell
