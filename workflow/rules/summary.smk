# Tables over every subject × fold × feature that was asked for: decoding scores, encoding summaries and
# the evaluation of reconstructions.
localrules:
    summarize_decoding,
    summarize_encoding,
    summarize_reconstruction,


for table, inputs in (
    ("decoding", decoding_scores),
    ("encoding", encoding_summaries),
    (
        "reconstruction",
        lambda wildcards: every(LAYOUT.evaluation, list(STUDY.reconstructed), STUDY.reconstructed_folds),
    ),
):

    rule:
        name:
            f"summarize_{table}"
        input:
            inputs,
        output:
            table=str(LAYOUT.summary(SUMMARY_TABLES[table])),
            tsv=reported(LAYOUT.summary(SUMMARY_TABLES[table], ".tsv"), SUMMARY_TABLES[table], table.capitalize()),
        log:
            log_of(f"summarize_{table}"),
        benchmark:
            benchmark_of(f"summarize_{table}")
        conda:
            "../../envs/core.yaml"
        shell:
            "python -m b2m summarize {input:q} --out {output.table:q} --tsv {output.tsv:q} > {log:q} 2>&1"
