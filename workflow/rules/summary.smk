# Tables over every subject × fold × feature that was asked for: decoding scores (identification; label accuracy
# of the label spaces, a table of its own, written for every run and empty where no space is one), encoding
# summaries and the evaluation of reconstructions.
localrules:
    summarize_decoding,
    summarize_label_decoding,
    summarize_encoding,
    summarize_reconstruction,


for table, category, inputs in (
    ("decoding", "Decoding", decoding_scores),
    ("label_decoding", "Decoding", decoded("label_scores")),
    ("encoding", "Encoding", encoding_summaries),
    (
        "reconstruction",
        "Reconstruction",
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
            tsv=reported(LAYOUT.summary(SUMMARY_TABLES[table], ".tsv"), SUMMARY_TABLES[table], category),
        log:
            log_of(f"summarize_{table}"),
        benchmark:
            benchmark_of(f"summarize_{table}")
        conda:
            "../../envs/core.yaml"
        shell:
            JOBS[f"summarize_{table}"].shell
